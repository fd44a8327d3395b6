"""Stage `campaigns`: did last month's actions work? Links the contact log to the snapshot
labels, compares treatment with control per campaign and tier (risk tiers from the champion at
each campaign's cutoff, value tiers as the action lists cut them), and sets the early
identification rate beside the model's and the domain brief's targets. With `winback` among
campaigns.kinds, the win-back campaigns too (kind winback: return rates by value tier against
the control group and the brief's win-back targets; models/winback_campaigns.py). Writes
reports/campaigns.csv (a `kind` column) and reports/campaigns.json (DVC metrics; the win-back
part under "winback"). Without contacts both say "no campaigns logged yet" and what to log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from churnlight.features.params import Params
from churnlight.models.artifacts import load_champion, read_snapshots, scored_rows
from churnlight.models.campaigns import evaluate_campaigns, success_metrics
from churnlight.models.contacts import CONTACT_COLUMNS, campaign_cutoffs, campaign_tiers
from churnlight.models.value import (
    ValueColumnError,
    customer_value,
    value_columns,
)
from churnlight.models.winback_campaigns import KIND as WINBACK
from churnlight.models.winback_inputs import campaigns_table, judge_winback, split_kinds
from churnlight.pipelines.common import (
    InputError,
    Layout,
    is_synthetic,
    rfm_scoring,
    write_csv,
    write_json,
)
from churnlight.pipelines.events import read_own_events

log = logging.getLogger("churnlight.campaigns")


def run(paths: Layout, params: Params) -> dict:
    cp, step = params.campaigns, params.features.step_months
    contacts, winback_contacts = split_kinds(_contacts(paths), cp.kinds)
    path = paths.processed / "features.parquet"
    # only the rows and columns each part needs: at 1M customers the whole table beside every
    # event took 15 GiB (issue 17)
    at = campaign_cutoffs(contacts, pd.read_parquet(path, columns=["cutoff"])["cutoff"], step)
    try:
        # the win-back part first: its own events are the stage's largest table, and the memory
        # they free is what the retention part then reuses
        wb_table, wb_summary = _winback(winback_contacts, path, paths, params)
        ev = evaluate_campaigns(
            contacts,
            _tiers(path, at, paths, params),
            step_months=step,
            bootstrap=cp.bootstrap,
            confidence=cp.confidence,
            min_group=cp.min_group,
            seed=params.base.seed,
            kinds=tuple(k for k in cp.kinds if k != WINBACK) or ("retention",),
            truth=_truth(paths, params, "contacts"),
        )
    except ValueError as e:
        raise InputError(str(e)) from e
    metrics = json.loads((paths.reports / "metrics.json").read_text(encoding="utf-8"))
    summary = {
        **ev.summary,
        "success": success_metrics(ev.summary, metrics, cp.targets.model_dump()),
    }
    if WINBACK in cp.kinds:
        summary["winback"] = wb_summary
    write_csv(campaigns_table(ev.table, wb_table), paths.reports / "campaigns.csv")
    write_json(summary, paths.reports / "campaigns.json")
    _log(summary)
    return summary


def _contacts(paths: Layout) -> pd.DataFrame:
    """validate's contacts table; none yet (an older validate): an empty log."""
    path = paths.interim / "contacts.parquet"
    if not path.exists():
        log.info("no %s: no campaigns logged", path)
        return pd.DataFrame(columns=list(CONTACT_COLUMNS))
    return pd.read_parquet(path)


def _winback(
    contacts: pd.DataFrame, path: Path, paths: Layout, params: Params
) -> tuple[pd.DataFrame, dict]:
    """The win-back campaigns on own events, cancel dates and the data end validate wrote, and
    the snapshots' values (`path`: features.parquet; only the columns values need)."""
    names = set(pq.read_schema(path).names)
    df = read_snapshots(path, [c for c in value_columns(params.data.value_column) if c in names])
    read = paths.interim
    events = read_own_events(read)
    customers = pd.read_parquet(read / "customers.parquet")
    as_of = json.loads((read / "contract_report.json").read_text(encoding="utf-8")).get("as_of")
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1) if as_of else pd.Timestamp(events["ts"].max())
    return judge_winback(
        contacts,
        events,
        customers,
        df,
        params,
        scoring=rfm_scoring(params),
        data_end=end,
        truth=_truth(paths, params, "winback"),
    )


def _truth(paths: Layout, params: Params, name: str) -> pd.DataFrame | None:
    """The synthetic world's truth table `name`, shown beside the estimates; none otherwise."""
    path = paths.truth / f"{name}.parquet"
    return pd.read_parquet(path) if is_synthetic(params.data) and path.exists() else None


def _tiers(path: Path, cutoffs: list[pd.Timestamp], paths: Layout, params: Params) -> pd.DataFrame:
    """The campaign cutoffs' rows with value, value tier and the champion's risk tier."""
    keys = ["customer_id", "cutoff", "label"]
    if not cutoffs:
        return read_snapshots(path, keys, filters=[("cutoff", "in", [])])
    _, model, features = load_champion(paths.models)
    dp, sp = params.data, params.segment
    rows = scored_rows(path, cutoffs, model, features, [*keys, *value_columns(dp.value_column)])
    try:
        value = customer_value(rows, dp.value_column, dp.value_multiplier)
    except ValueColumnError as e:
        raise InputError(str(e)) from e
    tiers = dict(params.features.rfm.tiers)
    scoring = rfm_scoring(params)
    return campaign_tiers(rows, value, scoring, tiers, sp.policy, **sp.tier_policy())


def _log(summary: dict) -> None:
    if summary["pooled"] is None:
        log.info("campaigns: %s", summary["status"])
        return
    p, e = summary["pooled"], summary["success"]["early_identification"]
    log.info(
        "campaigns: %d evaluated; pooled uplift %s [%s, %s], value saved %s, ROI %s; "
        "early identification: campaigns %s, model %s (target %s)",
        summary["campaigns_evaluated"],
        *(_pct(p[k]) for k in ("uplift", "uplift_low", "uplift_high")),
        "n/a" if p["value_saved"] is None else f"{p['value_saved']:,.0f}",
        "n/a" if p["roi"] is None else f"{p['roi']:.1f}x",
        *(_pct(e[k]) for k in ("campaigns_pooled", "model", "target")),
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
