"""The warning signals (domain.md section 1) and the three-colour rule (section 2), as SQL.

Each signal is a condition on derived features that fires at its threshold from
params.yaml `features.signals`; a signal whose input is missing never fires. Signals are
counted per family (behaviour, attitude, external). The colour: red when two or more families
fire or spend is down 70%+ on its own, yellow with one family, green with none. `rule_score`
orders colours first, then the number of signals, so that the rules can be ranked at capacity
like a model.
"""

from __future__ import annotations

import dataclasses

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from churnlight.features.columns import (
    DERIVED,
    FLAG,
    INTEGER,
    NUMBER,
    TEXT,
    Column,
    arrow_schema,
    ref,
    snapshot_select,
    source,
)
from churnlight.features.sql import ident
from churnlight.features.sql import number as num

FAMILIES = ("behaviour", "attitude", "external")


def _signals(s: dict) -> dict[str, dict[str, list[tuple[tuple[str, ...], str]]]]:
    """family -> signal -> its conditions (inputs, SQL over `ref(input)`); a signal fires when
    one of its conditions holds."""

    def le(name: str, x: str) -> list[tuple[tuple[str, ...], str]]:
        return [((name,), f"{ref(name)} <= {x}")]

    def ge(name: str, x: str) -> list[tuple[tuple[str, ...], str]]:
        return [((name,), f"{ref(name)} >= {x}")]

    def gt(name: str, x: str) -> list[tuple[tuple[str, ...], str]]:
        return [((name,), f"{ref(name)} > {x}")]

    reply = ("reply_rate_90d", "reply_rate_before")
    drop = num(1 - s["reply_rate_drop"])
    return {
        "behaviour": {
            "activity_drop": le("activity_30d_vs_baseline", num(1 - s["activity_drop"])),
            "no_purchase": ge("months_without_purchase", num(s["months_without_purchase"])),
            "gap": gt("gap_ratio", num(s["gap_ratio"])),
            "reply_drop": [(reply, f"{ref(reply[0])} <= {drop} * {ref(reply[1])}")],
            "cancellations": ge("booking_cancelled_90d", num(s["booking_cancellations"])),
            "service_overdue": ge("service_overdue_days", num(s["service_overdue_days"])),
        },
        "attitude": {
            "vague": ge("vague_replies_90d", num(s["vague_replies"])),
            "csat_low": le("csat_last", num(s["csat_low_max"])),
            "nps_low": le("nps_last", num(s["nps_detractor_max"]))
            + le("nps_change", num(-s["nps_drop"])),
            "complaint_open": gt("complaints_open", "0"),
            "silence": gt("silent_days_after_complaint", "0"),
            "competitor": ge("competitor_mentions_90d", num(s["competitor_mentions"])),
        },
        "external": {
            "industry_decline": le("industry_index_change_6m", num(s["industry_decline_6m"])),
            "competitor_launch": gt("competitor_launch_90d", "0"),
            "policy": gt("policy_shock_180d", "0"),
        },
    }


def _fires(conditions: list[tuple[tuple[str, ...], str]], names: set[str]) -> str:
    """A condition list as one never-missing boolean: conditions on missing inputs are false."""
    held = [f"coalesce({sql}, false)" for inputs, sql in conditions if set(inputs) <= names]
    return " OR ".join(held) or "false"


def rule_inputs(signals: dict) -> list[str]:
    """The derived features the signals read."""
    conditions = [c for family in _signals(signals).values() for cs in family.values() for c in cs]
    conditions += _spend_drop(signals)
    return list(dict.fromkeys(name for inputs, _ in conditions for name in inputs))


def _spend_drop(s: dict) -> list[tuple[tuple[str, ...], str]]:
    name = "spend_90d_vs_baseline"
    return [((name,), f"{ref(name)} <= {num(1 - s['spend_drop'])}")]


def rule_columns(names: set[str], signals: dict) -> list[Column]:
    """The signals (`signal_<name>`, each a step), their count per family
    (`rule_<family>_signals`) and spend drop (`rule_spend_drop`), and the written outputs
    `rule_colour`, `rule_families` and `rule_score`, over the derived features `names`."""
    out: list[Column] = []
    for family, conditions in _signals(signals).items():
        fired = [
            Column(f"signal_{n}", _fires(c, names), FLAG, False) for n, c in conditions.items()
        ]
        count = " + ".join(f"CAST({ref(c.name)} AS BIGINT)" for c in fired)
        out += [*fired, Column(f"rule_{family}_signals", count, INTEGER, False)]
    out.append(Column("rule_spend_drop", _fires(_spend_drop(signals), names), FLAG, False))
    counts = [ref(f"rule_{f}_signals") for f in FAMILIES]
    families = ref("rule_families")
    colour = (
        f"CASE WHEN {families} >= 2 OR {ref('rule_spend_drop')} THEN 'red' "
        f"WHEN {families} >= 1 THEN 'yellow' ELSE 'green' END"
    )
    level = f"CASE {ref('rule_colour')} WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 ELSE 0 END"
    return [
        *out,
        Column("rule_colour", colour, TEXT),
        Column("rule_families", " + ".join(f"CAST(({n}) > 0 AS BIGINT)" for n in counts), INTEGER),
        Column("rule_score", f"{level} + least({' + '.join(counts)}, 9) / {num(10)}", NUMBER),
    ]


def apply_rules(features: pd.DataFrame, signals: dict) -> pd.DataFrame:
    """The rules over a frame of derived features (e.g. read back from features.parquet), with
    the same SQL the features stage runs: every signal, the counts per family, spend drop,
    colour, families and score, one row per row of `features` (same index)."""
    inputs = [c for c in rule_inputs(signals) if c in features.columns]
    columns = [dataclasses.replace(c, written=True) for c in rule_columns(set(inputs), signals)]
    table = pa.table(
        {
            "row_key": np.arange(len(features)),
            **{c: pa.array(features[c], from_pandas=True) for c in inputs},
        }
    )
    renamed = "".join(f", {ident(c)} AS {ident(DERIVED + c)}" for c in inputs)
    relation = f"(SELECT row_key{renamed} FROM rules_input)"
    con = duckdb.connect()
    try:
        con.register("rules_input", table)
        sql = snapshot_select(columns, relation, order_by=source("row_key"))
        out = con.sql(sql).to_arrow_table().cast(arrow_schema(columns)).to_pandas()
    finally:
        con.close()
    out.index = features.index
    return out
