"""Stage `campaigns`: did last month's actions work? Links the contact log to the snapshot
labels, compares treatment with control per campaign and tier (risk tiers from the champion at
each campaign's cutoff, value tiers as the action lists cut them), and sets the early
identification rate beside the model's and the domain brief's targets. Writes
reports/campaigns.csv and reports/campaigns.json (DVC metrics). Without contacts both say
"no campaigns logged yet" and what to log.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from churnlight.features.params import Params
from churnlight.models.artifacts import load_champion, read_snapshots
from churnlight.models.campaigns import evaluate_campaigns, success_metrics
from churnlight.models.contacts import CONTACT_COLUMNS, campaign_cutoffs, risk_tiers_by_cutoff
from churnlight.models.value import ValueColumnError, customer_value, value_tiers
from churnlight.pipelines.common import (
    InputError,
    Layout,
    is_synthetic,
    rfm_scoring,
    write_csv,
    write_json,
)

log = logging.getLogger("churnlight.campaigns")


def run(paths: Layout, params: Params) -> dict:
    cp, step = params.campaigns, params.features.step_months
    contacts = _contacts(paths)
    df = read_snapshots(paths.processed / "features.parquet")
    rows = df[df["cutoff"].isin(campaign_cutoffs(contacts, df["cutoff"], step))]
    truth_path = paths.truth / "contacts.parquet"
    truth = (
        pd.read_parquet(truth_path) if is_synthetic(params.data) and truth_path.exists() else None
    )
    try:
        ev = evaluate_campaigns(
            contacts,
            _tiers(rows, paths, params),
            step_months=step,
            bootstrap=cp.bootstrap,
            confidence=cp.confidence,
            min_group=cp.min_group,
            seed=params.base.seed,
            kinds=cp.kinds,
            truth=truth,
        )
    except ValueError as e:
        raise InputError(str(e)) from e
    metrics = json.loads((paths.reports / "metrics.json").read_text(encoding="utf-8"))
    summary = {
        **ev.summary,
        "success": success_metrics(ev.summary, metrics, cp.targets.model_dump()),
    }
    write_csv(ev.table, paths.reports / "campaigns.csv")
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


def _tiers(rows: pd.DataFrame, paths: Layout, params: Params) -> pd.DataFrame:
    """The campaign cutoffs' rows with value, value tier and the champion's risk tier."""
    out = rows[["customer_id", "cutoff", "label"]].copy()
    if rows.empty:
        return out
    dp = params.data
    try:
        value = customer_value(rows, dp.value_column, dp.value_multiplier)
    except ValueColumnError as e:
        raise InputError(str(e)) from e
    tiers = dict(params.features.rfm.tiers)
    out["value_tier"] = value_tiers(rows, value, rfm_scoring(params), tiers, by="cutoff")
    if value is not None:
        out["value"] = value
    _, model, features = load_champion(paths.models)
    p = model.predict_proba(rows[features])[:, 1]
    sp = params.segment
    out["risk_tier"] = risk_tiers_by_cutoff(p, rows["cutoff"], sp.policy, **sp.tier_policy())
    return out


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
