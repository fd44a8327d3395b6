"""Tiny hand-made tables and one call that turns them into feature rows.

Every unit test builds a handful of events relative to one cutoff (`CUTOFF`, 2026-01-01 00:00),
registers them as DuckDB views on an in-memory connection and runs the library's SQL on them
(aggregates, then the column definitions and the rules, written to Parquet and read back),
exactly as the features stage does over Parquet files.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from churnlight.features.aggregates import aggregate_select, prepare, relation_types
from churnlight.features.config import FeatureConfig, load_lexicon
from churnlight.features.derived import event_columns, profile_columns
from churnlight.features.params import parse_params
from churnlight.features.ranges import EventPlan, snapshot_tables

from .reference_derivation import aggregate_frame

ROOT = Path(__file__).resolve().parents[2]
with (ROOT / "params.yaml").open(encoding="utf-8") as _fh:
    PARAMS: dict = yaml.safe_load(_fh)
FEATURE_PARAMS = parse_params(PARAMS).features
CFG = FeatureConfig.from_params(FEATURE_PARAMS)
SIGNALS: dict = dict(CFG.signals)
LEXICON = load_lexicon()

CUTOFF = pd.Timestamp("2026-01-01")
# exclusive end of the data: every label window of a cutoff up to 2026-04-02 is fully observed
DATA_END = pd.Timestamp("2026-07-01")
EVENT_TABLES = ("activity", "transactions", "feedback", "market")
SIGNUP = "2024-01-01"


def days_before(d: float, cutoff: pd.Timestamp = CUTOFF) -> pd.Timestamp:
    """`d` days before the cutoff (negative: after it)."""
    return cutoff - pd.Timedelta(days=d)


def config(**changes) -> FeatureConfig:
    """The params.yaml feature config with some fields replaced."""
    return dataclasses.replace(CFG, **changes)


def _ts(values: Iterable) -> pd.Series:
    return pd.Series([pd.Timestamp(v) for v in values], dtype="datetime64[us]")


def customers(
    ids: Sequence[str],
    signup: str | pd.Timestamp | Sequence | None = SIGNUP,
    cancel: str | pd.Timestamp | Sequence | None = None,
    region: str = "north",
    industry: str = "retail",
    geo: bool = True,
) -> pd.DataFrame:
    """One row per id; scalars apply to every customer, sequences give one value per id."""
    n = len(ids)

    def per_id(v):
        if isinstance(v, list | tuple):
            return list(v)
        return [v] * n

    df = pd.DataFrame({"customer_id": pd.Series(list(ids), dtype="str")})
    df["signup_date"] = _ts(per_id(signup))
    if geo:
        df["region"] = pd.Series([region] * n, dtype="str")
        df["industry"] = pd.Series([industry] * n, dtype="str")
    df["cancel_date"] = _ts(per_id(cancel))
    return df


def activity(rows: Sequence[tuple[str, pd.Timestamp, str]]) -> pd.DataFrame:
    """rows of (customer_id, ts, event_type)"""
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": _ts(r[1] for r in rows),
            "event_type": pd.Series([r[2] for r in rows], dtype="str"),
        }
    )


def transactions(rows: Sequence[tuple[str, pd.Timestamp, float]]) -> pd.DataFrame:
    """rows of (customer_id, ts, amount[, category])"""
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": _ts(r[1] for r in rows),
            "amount": pd.Series([float(r[2]) for r in rows], dtype="float64"),
            "category": pd.Series([r[3] if len(r) > 3 else "service" for r in rows], dtype="str"),
        }
    )


def feedback(rows: Sequence[dict]) -> pd.DataFrame:
    """rows of dicts with customer_id, ts, kind and optional score, text, ticket_id"""
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r["customer_id"] for r in rows], dtype="str"),
            "ts": _ts(r["ts"] for r in rows),
            "kind": pd.Series([r["kind"] for r in rows], dtype="str"),
            "score": pd.Series([r.get("score", np.nan) for r in rows], dtype="float64"),
            "text": pd.Series([r.get("text") for r in rows], dtype="string"),
            "ticket_id": pd.Series([r.get("ticket_id") for r in rows], dtype="string"),
        }
    )


def market(rows: Sequence[tuple]) -> pd.DataFrame:
    """rows of (month, region, industry, industry_index, competitor_launch, policy_shock)"""
    return pd.DataFrame(
        {
            "month": _ts(r[0] for r in rows),
            "region": pd.Series([r[1] for r in rows], dtype="str"),
            "industry": pd.Series([r[2] for r in rows], dtype="str"),
            "industry_index": pd.Series([float(r[3]) for r in rows], dtype="float64"),
            "competitor_launch": pd.Series([int(r[4]) for r in rows], dtype="int8"),
            "policy_shock": pd.Series([int(r[5]) for r in rows], dtype="int8"),
        }
    )


def connect(tables: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, df in tables.items():
        con.register(f"{name}_df", df)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_df")
    return con


def aggregates(
    tables: dict[str, pd.DataFrame],
    cutoffs: Sequence[pd.Timestamp] = (CUTOFF,),
    data_end: pd.Timestamp = DATA_END,
    cfg: FeatureConfig = CFG,
) -> pd.DataFrame:
    """The aggregates of every (customer, cutoff), typed as the pandas reference reads them."""
    con = connect(tables)
    try:
        has_geo = prepare(con, set(tables), list(cutoffs), data_end, LEXICON)
        return aggregate_frame(con, aggregate_select(con, cfg, has_geo))
    finally:
        con.close()


def plan(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    cutoffs: Sequence[pd.Timestamp] = (CUTOFF,),
    data_end: pd.Timestamp = DATA_END,
    cfg: FeatureConfig = CFG,
    profile: bool = False,
) -> EventPlan:
    """The stage's plan for these tables (every cutoff kept; the profile only if asked)."""
    customer_types = relation_types(con, "customers") if "customers" in present else {}
    prof = profile_columns(customer_types) if profile else {}
    tables = {t: t in present for t in EVENT_TABLES}
    tables["market"] &= {"region", "industry"} <= set(customer_types)
    return EventPlan(
        cfg=cfg,
        present=frozenset(present),
        cutoffs=tuple(cutoffs),
        data_end=data_end,
        lexicon=LEXICON,
        profile=prof,
        columns=tuple(event_columns(cfg, tables, prof)),
    )


def build(
    tables: dict[str, pd.DataFrame],
    cutoffs: Sequence[pd.Timestamp] = (CUTOFF,),
    data_end: pd.Timestamp = DATA_END,
    cfg: FeatureConfig = CFG,
    profile: bool = False,
) -> pd.DataFrame:
    """Feature rows as the stage writes and pandas reads them back: aggregates, derived
    features, (profile), rules; in (customer_id, cutoff) order."""
    con = connect(tables)
    try:
        run = plan(con, set(tables), cutoffs, data_end, cfg, profile)
        buf = io.BytesIO()
        with pq.ParquetWriter(buf, run.schema) as writer:
            for table in snapshot_tables(con, run, partitions=1):
                writer.write_table(table)
    finally:
        con.close()
    feats = pd.read_parquet(io.BytesIO(buf.getvalue()))
    return feats.sort_values(["customer_id", "cutoff"], ignore_index=True)


def by_customer(feats: pd.DataFrame, cutoff: pd.Timestamp = CUTOFF) -> pd.DataFrame:
    """The rows of one cutoff, indexed by customer_id."""
    return feats[feats["cutoff"] == cutoff].set_index("customer_id")
