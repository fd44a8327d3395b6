"""Did last month's actions work? Campaign outcomes from the contact log, treatment against the
control group that was deliberately not contacted.

A contact's outcome is the snapshot label at the cutoff that opens its month: the latest
labelled cutoff at or before the contact, at most `step_months` before it. A campaign is
evaluated once that cutoff's rows are labelled (its outcome window is fully observed).

Per campaign and pooled over campaigns, overall and per risk tier x value tier (and each tier
alone): churn rate in treatment and control, the uplift (control rate - treatment rate: the
share of churn prevented) with a stratified bootstrap interval, customers and yearly value
saved, cost, ROI, and the early identification rate (of the cutoff's actual churners, the share
the campaign's list flagged: treatment or control). With the synthetic world's truth, the mean
true uplift is set beside the estimate.

Pooled over campaigns, the treatment rate is the plain pooled rate and the control rate is each
campaign's control rate weighted by its treated customers, so that campaigns of different sizes
and churn levels do not bias the difference (each campaign is its own stratum).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnlight.models.contacts import (
    check_contacts,
    link_cutoffs,
    per_customer,
    what_to_log,
)

log = logging.getLogger(__name__)

ALL = "all"  # a tier column's value in a row over every tier
POOLED = "pooled"  # the campaign_id of the rows pooled over every evaluated campaign
NO_CAMPAIGNS = "no campaigns logged yet"
NOT_OBSERVED = "no campaign fully observed yet"
EVALUATED = "evaluated"
NO_CONTROL = "no control group: uplift cannot be estimated"
NO_TREATMENT = "no treatment group: nobody was contacted"
TIER_ORDER = {
    ALL: -1,
    "high": 0,
    "medium": 1,
    "low": 2,
    "platinum": 0,
    "gold": 1,
    "silver": 2,
    "regular": 3,
}

TABLE_COLUMNS = [
    "campaign_id",
    "cutoff",
    "risk_tier",
    "value_tier",
    "n_treatment",
    "n_control",
    "churn_rate_treatment",
    "churn_rate_control",
    "uplift",
    "uplift_low",
    "uplift_high",
    "customers_saved",
    "value_saved",
    "cost",
    "roi",
    "customers",
    "churners",
    "churners_flagged",
    "flagged_share",
    "early_identification_rate",
    "true_uplift",
    "covers_truth",
    "note",
]


@dataclass(frozen=True)
class CampaignEvaluation:
    table: pd.DataFrame  # reports/campaigns.csv: one row per campaign (or pooled) and tier
    summary: dict  # reports/campaigns.json: status, latest campaign, pooled, skipped, truth


def _uplift(strata: pd.DataFrame, draws: int, confidence: float, key: str, seed: int) -> dict:
    """Uplift over strata (columns n_t, k_t, n_c, k_c: sizes and churners per group), each a
    campaign: the treated-weighted control rate minus the pooled treatment rate, and a
    percentile interval from resampling each group of each stratum (a binomial draw of its
    churners is a bootstrap of its 0/1 outcomes, here around a rate shrunk by half a case)."""
    valid = strata[(strata["n_t"] > 0) & (strata["n_c"] > 0)]
    out = {
        "n_treatment": int(valid["n_t"].sum()),
        "n_control": int(valid["n_c"].sum()),
        "churn_rate_treatment": np.nan,
        "churn_rate_control": np.nan,
        "uplift": np.nan,
        "uplift_low": np.nan,
        "uplift_high": np.nan,
    }
    if valid.empty:
        return out
    n_t, k_t = valid["n_t"].to_numpy(float), valid["k_t"].to_numpy(float)
    n_c, k_c = valid["n_c"].to_numpy(float), valid["k_c"].to_numpy(float)
    w = n_t / n_t.sum()
    treat, control = k_t.sum() / n_t.sum(), float(w @ (k_c / n_c))
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    # each group's rate drawn around (k + 1/2) / (n + 1): a group with no churner (or only
    # churners) still varies, where the plain bootstrap would give a zero-width interval
    bt = rng.binomial(n_t.astype(np.int64), (k_t + 0.5) / (n_t + 1), size=(draws, len(n_t)))
    bc = rng.binomial(n_c.astype(np.int64), (k_c + 0.5) / (n_c + 1), size=(draws, len(n_c)))
    boot = (bc / n_c) @ w - bt.sum(axis=1) / n_t.sum()
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    out.update(
        churn_rate_treatment=float(treat),
        churn_rate_control=control,
        uplift=control - float(treat),
        uplift_low=float(lo),
        uplift_high=float(hi),
    )
    return out


def _cells(risk: pd.Series, value: pd.Series) -> list[tuple[str, str]]:
    """Overall, each risk tier, each value tier and each pair that occurs."""
    pairs = set(zip(risk, value, strict=True))
    keys = {(ALL, ALL)} | {(r, ALL) for r, _ in pairs} | {(ALL, v) for _, v in pairs} | pairs
    return sorted(keys, key=lambda k: (k[0] != ALL and k[1] != ALL, *map(_order, k)))


def _order(tier: str) -> tuple[int, str]:
    return TIER_ORDER.get(tier, 99), tier


def _in_cell(df: pd.DataFrame, risk: str, value: str) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    if risk != ALL:
        mask &= df["risk_tier"] == risk
    if value != ALL:
        mask &= df["value_tier"] == value
    return mask


def _stratum(rows: pd.DataFrame, base: pd.DataFrame) -> dict:
    """One campaign's numbers in one cell: `rows` its contacts, `base` the cutoff's snapshot."""
    t, c = rows[rows["group"] == "treatment"], rows[rows["group"] == "control"]
    churners = base["label"] == 1
    return {
        "n_t": len(t),
        "k_t": int(t["label"].sum()),
        "n_c": len(c),
        "k_c": int(c["label"].sum()),
        "value_t": float(t["value"].sum()) if t["value"].notna().any() else np.nan,
        "cost_t": float(t["cost"].sum()) if t["cost"].notna().any() else np.nan,
        "customers": len(base),
        "flagged": int(base["flagged"].sum()),
        "churners": int(churners.sum()),
        "churners_flagged": int((churners & base["flagged"]).sum()),
        "truth_sum": float(rows["true_uplift"].sum()),
        "truth_n": int(rows["true_uplift"].notna().sum()),
    }


def _row(
    strata: pd.DataFrame, draws: int, confidence: float, key: str, seed: int, min_group: int
) -> dict:
    """The table's numbers for one cell over one or more campaigns (`strata`); no interval when
    a group has fewer than `min_group` customers (a handful of outcomes cannot bound a rate)."""
    est = _uplift(strata, draws, confidence, key, seed)
    small = not np.isnan(est["uplift"]) and min(est["n_control"], est["n_treatment"]) < min_group
    if small:
        est.update(uplift_low=np.nan, uplift_high=np.nan)
    valid = (strata["n_t"] > 0) & (strata["n_c"] > 0)
    v = strata[valid]
    uplift = est["uplift"]
    value_t = v["value_t"].sum(min_count=1)
    cost = v["cost_t"].sum(min_count=1)
    saved_value = uplift * value_t
    truth = v["truth_sum"] / v["truth_n"].where(v["truth_n"] > 0)
    w = v["n_t"] / v["n_t"].sum() if len(v) else v["n_t"]
    true_uplift = float((w * truth).sum()) if len(v) and truth.notna().all() else np.nan
    low, high = est["uplift_low"], est["uplift_high"]
    covers = None if np.isnan(true_uplift) or np.isnan(low) else bool(low <= true_uplift <= high)
    notes = [f"fewer than {min_group} in a group: no interval"] if small else []
    if not valid.all():
        no_c = int(((strata["n_t"] > 0) & (strata["n_c"] == 0)).sum())
        no_t = int(((strata["n_c"] > 0) & (strata["n_t"] == 0)).sum())
        if len(strata) == 1:
            notes.append(NO_CONTROL if no_c else NO_TREATMENT)
        else:
            notes += [f"{no_c} campaign(s) without a control group left out"] if no_c else []
            notes += [f"{no_t} campaign(s) without a treatment group left out"] if no_t else []
    churners = int(strata["churners"].sum())
    return {
        **est,
        "customers_saved": uplift * est["n_treatment"],
        "value_saved": saved_value,
        "cost": cost,
        "roi": saved_value / cost if cost and cost > 0 else np.nan,
        "customers": int(strata["customers"].sum()),
        "churners": churners,
        "churners_flagged": int(strata["churners_flagged"].sum()),
        "flagged_share": float(strata["flagged"].sum() / max(strata["customers"].sum(), 1)),
        "early_identification_rate": (
            strata["churners_flagged"].sum() / churners if churners else np.nan
        ),
        "true_uplift": true_uplift,
        "covers_truth": covers,
        "note": "; ".join(notes),
    }


def _outcomes(
    per: pd.DataFrame, snapshots: pd.DataFrame, step_months: int, truth: pd.DataFrame | None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each contact with the label, value and tiers of its linked cutoff (and its true
    uplift); the campaigns that cannot be evaluated yet, with the reason."""
    labelled = snapshots.loc[snapshots["label"].notna(), "cutoff"]
    per = per.assign(cutoff=link_cutoffs(per["ts"], labelled, step_months))
    skipped = {}
    observed = per.groupby("campaign_id")["cutoff"].count()
    first = labelled.min() if len(labelled) else pd.NaT
    starts = per.groupby("campaign_id")["ts"].min()
    for cid in observed[observed == 0].index:
        skipped[cid] = (
            "before the first labelled snapshot cutoff: no features to judge it against"
            if pd.notna(first) and starts[cid] < first
            else "outcome window not fully observed yet (no labelled snapshot cutoff within "
            "features.step_months before its contacts)"
        )
    per = per[per["cutoff"].notna()]
    cols = ["customer_id", "cutoff", "label", "value", "value_tier", "risk_tier"]
    rows = per.merge(snapshots[cols], on=["customer_id", "cutoff"], how="inner")
    rows = rows[rows["label"].notna()]
    lost = len(per) - len(rows)
    if lost:
        log.warning(
            "campaigns: %d contact(s) have no labelled snapshot row at their cutoff "
            "(not a customer then): left out",
            lost,
        )
    if truth is not None and len(truth):
        t = truth.assign(
            customer_id=truth["customer_id"].astype(str),
            campaign_id=truth["campaign_id"].astype(str),
        ).drop_duplicates(["campaign_id", "customer_id"])
        cols = ["campaign_id", "customer_id", "true_uplift"]
        rows = rows.merge(t[cols], on=["campaign_id", "customer_id"], how="left")
    else:
        rows = rows.assign(true_uplift=np.nan)
    for cid in set(per["campaign_id"]) - set(rows["campaign_id"]):
        skipped[cid] = "none of its contacts was a customer at the campaign's cutoff"
    return rows, skipped


def _prepare_snapshots(snapshots: pd.DataFrame) -> pd.DataFrame:
    df = snapshots.assign(customer_id=snapshots["customer_id"].astype(str))
    for col in ("risk_tier", "value_tier"):
        df[col] = df[col].astype(object).fillna(ALL) if col in df else ALL
    df["value"] = pd.to_numeric(df["value"], errors="coerce") if "value" in df else np.nan
    df["cutoff"] = pd.to_datetime(df["cutoff"]).astype("datetime64[ns]")
    return df


def evaluate_campaigns(
    contacts: pd.DataFrame,
    snapshots: pd.DataFrame,
    *,
    step_months: int,
    bootstrap: int,
    confidence: float,
    seed: int,
    kinds: tuple[str, ...] = ("retention",),
    truth: pd.DataFrame | None = None,
    min_group: int = 20,
) -> CampaignEvaluation:
    """Every campaign of `kinds` in `contacts` (the contract's columns) whose outcome is
    observed, and all of them pooled, per tier cell and overall.

    `snapshots`: one row per customer and cutoff with `label` (churn in the window after the
    cutoff; missing where not yet known) and optionally `value` (yearly customer value),
    `value_tier` and `risk_tier` (the champion's tier at that cutoff); a missing tier column
    is the single tier "all". `truth` (synthetic world): customer_id, campaign_id,
    true_uplift. Cells with fewer than `min_group` treated or held-out customers get the
    estimate but no interval (and no verdict against the truth)."""
    if contacts.empty:
        return _empty(NO_CAMPAIGNS, what_to_log(), bootstrap, confidence, {})
    check_contacts(contacts)
    skipped: dict[str, str] = {}
    if "kind" in contacts:
        other = contacts[~contacts["kind"].isin(kinds)]
        for cid, kind in other.groupby("campaign_id")["kind"].first().items():
            skipped[str(cid)] = f"kind {kind!r}: not evaluated here (campaigns.kinds)"
        contacts = contacts[contacts["kind"].isin(kinds)]
    snaps = _prepare_snapshots(snapshots)
    rows, unobserved = _outcomes(per_customer(contacts), snaps, step_months, truth)
    skipped.update(unobserved)
    if rows.empty:
        message = "Campaigns are logged but none can be evaluated yet: " + "; ".join(
            f"{k}: {v}" for k, v in sorted(skipped.items())
        )
        return _empty(NOT_OBSERVED, message, bootstrap, confidence, skipped)
    records, strata_by_cell = [], {}
    cutoffs = {}
    cells = _cells(rows["risk_tier"], rows["value_tier"])
    for cid, crow in rows.groupby("campaign_id", sort=True):
        cutoff = crow["cutoff"].mode().iloc[0]
        cutoffs[cid] = cutoff
        base = snaps[snaps["cutoff"] == cutoff]
        flagged = set(crow.loc[crow["cutoff"] == cutoff, "customer_id"])
        base = base.assign(flagged=base["customer_id"].isin(flagged))
        own = set(_cells(crow["risk_tier"], crow["value_tier"]))
        for risk, value in cells:
            s = _stratum(crow[_in_cell(crow, risk, value)], base[_in_cell(base, risk, value)])
            # every campaign's churners count in the pooled early identification of a cell,
            # also where its list flagged nobody in it
            strata_by_cell.setdefault((risk, value), []).append(s)
            if (risk, value) not in own:
                continue
            key = f"{cid}|{risk}|{value}"
            records.append(
                {
                    "campaign_id": cid,
                    "cutoff": cutoff,
                    "risk_tier": risk,
                    "value_tier": value,
                    **_row(pd.DataFrame([s]), bootstrap, confidence, key, seed, min_group),
                }
            )
    for (risk, value), strata in strata_by_cell.items():
        key = f"{POOLED}|{risk}|{value}"
        pooled = _row(pd.DataFrame(strata), bootstrap, confidence, key, seed, min_group)
        records.append(
            {"campaign_id": POOLED, "cutoff": pd.NaT, "risk_tier": risk, "value_tier": value}
            | pooled
        )
    table = _sort(pd.DataFrame(records)[TABLE_COLUMNS])
    return CampaignEvaluation(table, _summary(table, cutoffs, skipped, bootstrap, confidence))


def _sort(table: pd.DataFrame) -> pd.DataFrame:
    """Campaigns by cutoff, pooled last; within each, overall, risk tiers, value tiers, cells."""
    t = table.assign(
        _pooled=table["campaign_id"] == POOLED,
        _level=(table["risk_tier"] != ALL).astype(int) * 2 + (table["value_tier"] != ALL),
        _r=table["risk_tier"].map(lambda x: _order(x)[0]),
        _v=table["value_tier"].map(lambda x: _order(x)[0]),
    )
    t["_level"] = t["_level"].map({0: 0, 2: 1, 1: 2, 3: 3})
    order = ["_pooled", "cutoff", "campaign_id", "_level", "_r", "_v", "risk_tier", "value_tier"]
    return (
        t.sort_values(order, kind="stable")
        .drop(columns=["_pooled", "_level", "_r", "_v"])[TABLE_COLUMNS]
        .reset_index(drop=True)
    )


def _clean(value: Any) -> Any:
    """JSON-safe: NaN becomes null (DVC reads metrics as strict JSON), numpy numbers plain."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, pd.Timestamp):
        return str(value.date())
    if value is pd.NaT:
        return None
    return value


def _overall(table: pd.DataFrame, campaign_id: str) -> dict:
    row = table[
        (table["campaign_id"] == campaign_id)
        & (table["risk_tier"] == ALL)
        & (table["value_tier"] == ALL)
    ].iloc[0]
    keep = [c for c in TABLE_COLUMNS if c not in ("risk_tier", "value_tier")]
    return {c: _clean(row[c]) for c in keep}


def _summary(
    table: pd.DataFrame,
    cutoffs: dict[str, pd.Timestamp],
    skipped: dict[str, str],
    bootstrap: int,
    confidence: float,
) -> dict:
    latest = max(cutoffs, key=lambda k: (cutoffs[k], k))
    judged = table["covers_truth"].dropna()
    return {
        "status": EVALUATED,
        "message": f"{len(cutoffs)} campaign(s) evaluated; latest fully observed: {latest}",
        "bootstrap": bootstrap,
        "confidence": confidence,
        "campaigns_evaluated": len(cutoffs),
        "latest": _overall(table, latest),
        "pooled": _overall(table, POOLED),
        "by_campaign": {cid: _overall(table, cid) for cid in sorted(cutoffs)},
        "skipped": dict(sorted(skipped.items())),
        "truth": {
            "available": bool(table["true_uplift"].notna().any()),
            "cells_judged": len(judged),
            "cells_covered": int(judged.astype(bool).sum()),
            "coverage": float(judged.astype(bool).mean()) if len(judged) else None,
        },
    }


def _empty(
    status: str, message: str, bootstrap: int, confidence: float, skipped: dict[str, str]
) -> CampaignEvaluation:
    summary = {
        "status": status,
        "message": message,
        "bootstrap": bootstrap,
        "confidence": confidence,
        "campaigns_evaluated": 0,
        "latest": None,
        "pooled": None,
        "by_campaign": {},
        "skipped": dict(sorted(skipped.items())),
        "truth": {"available": False, "cells_judged": 0, "cells_covered": 0, "coverage": None},
    }
    return CampaignEvaluation(pd.DataFrame(columns=TABLE_COLUMNS), summary)


def success_metrics(
    summary: dict, model_metrics: dict | None, targets: dict[str, float]
) -> dict[str, Any]:
    """The brief's measures of success beside its targets: the early identification rate of
    the logged campaigns' lists (latest and pooled) and of the champion's list at capacity on
    the test cutoff (reports/metrics.json), and the campaigns' ROI."""
    model = None
    if model_metrics and model_metrics.get("champion") in model_metrics:
        champion = model_metrics["champion"]
        model = {
            "champion": champion,
            "capacity": model_metrics.get("capacity"),
            "test_cutoff": model_metrics.get("test_cutoff"),
            "early_identification_rate": model_metrics[champion].get("recall_at_capacity"),
        }
        if "rules" in model_metrics:
            model["rules_early_identification_rate"] = model_metrics["rules"].get(
                "recall_at_capacity"
            )
    latest, pooled = summary.get("latest") or {}, summary.get("pooled") or {}
    return {
        "early_identification": {
            "campaigns_latest": latest.get("early_identification_rate"),
            "campaigns_latest_flagged_share": latest.get("flagged_share"),
            "campaigns_pooled": pooled.get("early_identification_rate"),
            "campaigns_pooled_flagged_share": pooled.get("flagged_share"),
            "model": None if model is None else model["early_identification_rate"],
            "before": targets["early_identification_before"],
            "target": targets["early_identification_target"],
        },
        "roi": {
            "latest": latest.get("roi"),
            "pooled": pooled.get("roi"),
            "target": targets["roi_target"],
        },
        "model": model,
    }
