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

import numpy as np
import pandas as pd

from churnlight.features.params import Params
from churnlight.models.artifacts import load_champion, read_snapshots
from churnlight.models.campaigns import evaluate_campaigns, success_metrics
from churnlight.models.contacts import CONTACT_COLUMNS, campaign_cutoffs, risk_tiers_by_cutoff
from churnlight.models.value import ValueColumnError, customer_value, value_tiers
from churnlight.models.winback_campaigns import KIND as WINBACK
from churnlight.models.winback_campaigns import evaluate_winback, what_is_missing
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
    is_winback = (
        contacts["kind"].astype(object) == WINBACK
        if "kind" in contacts
        else pd.Series(False, index=contacts.index)
    ).to_numpy(dtype=bool)
    if WINBACK in cp.kinds:  # judged on their own below, per value tier
        winback_contacts, contacts = contacts[is_winback], contacts[~is_winback]
    else:
        winback_contacts = contacts.iloc[0:0]
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
            kinds=tuple(k for k in cp.kinds if k != WINBACK) or ("retention",),
            truth=truth,
        )
        wb_table, wb_summary = _winback(winback_contacts, df, paths, params)
    except ValueError as e:
        raise InputError(str(e)) from e
    metrics = json.loads((paths.reports / "metrics.json").read_text(encoding="utf-8"))
    targets = cp.targets.model_dump()
    summary = {
        **ev.summary,
        "success": success_metrics(ev.summary, metrics, targets),
    }
    if WINBACK in cp.kinds:
        summary["winback"] = wb_summary
    write_csv(_one_table(ev.table, wb_table), paths.reports / "campaigns.csv")
    write_json(summary, paths.reports / "campaigns.json")
    _log(summary)
    if WINBACK in cp.kinds:
        _log_winback(wb_summary)
    return summary


def _one_table(retention: pd.DataFrame, winback: pd.DataFrame) -> pd.DataFrame:
    """reports/campaigns.csv: the retention rows, then the win-back rows, every column of
    both (a `kind` column first says which)."""
    cols = ["kind", *retention.columns]
    cols += [c for c in winback.columns if c not in cols]
    frames = [f for f in (retention.assign(kind="retention"), winback) if len(f)]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True).reindex(columns=cols)


def _contacts(paths: Layout) -> pd.DataFrame:
    """validate's contacts table; none yet (an older validate): an empty log."""
    path = paths.interim / "contacts.parquet"
    if not path.exists():
        log.info("no %s: no campaigns logged", path)
        return pd.DataFrame(columns=list(CONTACT_COLUMNS))
    return pd.read_parquet(path)


def _winback(
    contacts: pd.DataFrame, df: pd.DataFrame, paths: Layout, params: Params
) -> tuple[pd.DataFrame, dict]:
    """The win-back campaigns: own events, each leaver's value tier before leaving, the truth
    on the synthetic world."""
    cp = params.campaigns
    events = _own_events(paths)
    snapshots, left = pd.DataFrame(columns=["customer_id", "cutoff", "value", "value_tier"]), None
    if len(contacts):
        ids = set(contacts["customer_id"].astype(str))
        snapshots = _values(df, ids, params)
        left = _left_dates(paths, params, contacts, events)
    truth_path = paths.truth / "winback.parquet"
    truth = (
        pd.read_parquet(truth_path) if is_synthetic(params.data) and truth_path.exists() else None
    )
    targets = cp.targets
    table, summary = evaluate_winback(
        contacts,
        events,
        snapshots,
        data_end=_data_end(paths, events),
        window_days=cp.winback_window_days,
        bootstrap=cp.bootstrap,
        confidence=cp.confidence,
        seed=params.base.seed,
        targets=dict(targets.winback_rate),
        roi_target=targets.winback_roi_target,
        min_group=cp.min_group,
        left_date=left,
        truth=truth,
    )
    returns = _returns_seen(paths, events)
    summary["returns_seen"] = returns
    summary["missing"] = what_is_missing(bool(len(contacts)), returns != 0)
    return table, summary


def _returns_seen(paths: Layout, events: pd.DataFrame) -> int | None:
    """How many customers have an own event after their cancel_date's day (came back); None
    when the data has no cancel dates (the inactivity definition)."""
    path = paths.interim / "customers.parquet"
    cust = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    if "cancel_date" not in cust or not len(events):
        return None if "cancel_date" not in cust else 0
    cancel = cust.set_index(cust["customer_id"].astype(str))["cancel_date"].dropna()
    ids = events["customer_id"].astype(str)
    left = pd.to_datetime(ids.map(cancel)).dt.normalize() + pd.Timedelta(days=1)
    return int(ids[pd.to_datetime(events["ts"]) >= left].nunique())


def _own_events(paths: Layout) -> pd.DataFrame:
    """customer_id and ts of every transaction and activity row validate kept."""
    frames = [
        pd.read_parquet(paths.interim / f"{name}.parquet", columns=["customer_id", "ts"])
        for name in ("transactions", "activity")
        if (paths.interim / f"{name}.parquet").exists()
    ]
    if not frames:
        return pd.DataFrame(
            {"customer_id": pd.Series(dtype=object), "ts": pd.Series(dtype="datetime64[ns]")}
        )
    return pd.concat(frames, ignore_index=True)


def _data_end(paths: Layout, events: pd.DataFrame) -> pd.Timestamp:
    """The exclusive end of the data: the day after validate's as_of (else the last event)."""
    report = paths.interim / "contract_report.json"
    as_of = json.loads(report.read_text(encoding="utf-8")).get("as_of") if report.exists() else None
    if as_of:
        return pd.Timestamp(as_of) + pd.Timedelta(days=1)
    return pd.to_datetime(events["ts"]).max() if len(events) else pd.Timestamp.max


def _values(df: pd.DataFrame, ids: set[str], params: Params) -> pd.DataFrame:
    """Value and value tier of the contacted customers' snapshot rows, tiers cut within each
    cutoff's whole snapshot as the segment stage cuts them."""
    dp = params.data
    try:
        value = customer_value(df, dp.value_column, dp.value_multiplier)
    except ValueColumnError as e:
        raise InputError(str(e)) from e
    tiers = value_tiers(
        df, value, rfm_scoring(params), dict(params.features.rfm.tiers), by="cutoff"
    )
    out = pd.DataFrame(
        {
            "customer_id": df["customer_id"].astype(str).to_numpy(),
            "cutoff": df["cutoff"].to_numpy(),
            "value": np.nan if value is None else value,
            "value_tier": tiers,
        }
    )
    return out[out["customer_id"].isin(ids)]


def _left_dates(
    paths: Layout, params: Params, contacts: pd.DataFrame, events: pd.DataFrame
) -> pd.Series | None:
    """customer_id -> the day each contacted leaver left: its cancel_date, or under the
    inactivity definition its last own event before the contact + inactivity_days."""
    fp = params.features
    if fp.churn_definition == "cancellation":
        path = paths.interim / "customers.parquet"
        if not path.exists():
            return None
        cust = pd.read_parquet(path)
        if "cancel_date" not in cust:
            return None
        return cust.set_index(cust["customer_id"].astype(str))["cancel_date"].dropna()
    c = contacts.assign(
        customer_id=contacts["customer_id"].astype(str),
        ts=pd.to_datetime(contacts["ts"]).astype("datetime64[ns]"),
    ).sort_values("ts")
    e = events.assign(
        customer_id=events["customer_id"].astype(str),
        last=pd.to_datetime(events["ts"]).astype("datetime64[ns]"),
    )[["customer_id", "last"]].sort_values("last")
    m = pd.merge_asof(c, e, left_on="ts", right_on="last", by="customer_id", direction="backward")
    left = m["last"] + pd.Timedelta(days=fp.inactivity_days)
    return pd.Series(left.to_numpy(), index=m["customer_id"]).groupby(level=0).min().dropna()


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


def _log_winback(summary: dict) -> None:
    if summary.get("status") != "evaluated":
        log.info("win-back: %s", summary.get("message") or summary.get("status"))
        return
    tiers = summary["pooled"]["tiers"]
    log.info(
        "win-back: %d campaign(s) evaluated; pooled return rate %s treated vs %s control, "
        "uplift %s [%s, %s]; by tier: %s",
        summary["campaigns_evaluated"],
        *(_pct(tiers["all"][k]) for k in ("return_rate_treatment", "return_rate_control")),
        *(_pct(tiers["all"][k]) for k in ("uplift", "uplift_low", "uplift_high")),
        ", ".join(
            f"{t} {_pct(v['return_rate_treatment'])} (target {_pct(v['target_rate'])})"
            for t, v in tiers.items()
            if t != "all"
        ),
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
