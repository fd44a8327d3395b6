"""The card's section "Did last month's actions work?": the campaign evaluation (the campaigns
stage's reports/campaigns.json and .csv) as rows for the template, and the success metrics
beside the domain brief's targets.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from churnlight.models.campaigns import ALL, NO_CONTROL, NO_TREATMENT, POOLED

EARLY_KEYS = (
    "campaigns_latest",
    "campaigns_pooled",
    "campaigns_pooled_flagged_share",
    "model",
    "before",
    "target",
)
TIER_ORDER = ("high", "medium", "low", "platinum", "gold", "silver", "regular")


def _number(x: object) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _covers(x: object) -> bool | None:
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, str) and x in ("True", "False"):
        return x == "True"
    return None


def _notes(note: str) -> dict:
    """The stage's note as flags the template words in the card's language."""
    left = re.search(r"(\d+) campaign\(s\) without a control group", note)
    return {
        "no_control": NO_CONTROL in note,
        "no_treatment": NO_TREATMENT in note,
        "left_out": int(left.group(1)) if left else 0,
    }


def campaign_rows(table: pd.DataFrame, campaign_id: str) -> list[dict]:
    """One campaign's (or the pooled) rows for the card: overall, then each risk tier, then
    each value tier (the risk x value cells stay in reports/campaigns.csv)."""
    if table is None or table.empty:
        return []
    t = table[table["campaign_id"].astype(str) == campaign_id]
    t = t[(t["risk_tier"] == ALL) | (t["value_tier"] == ALL)]
    rank = {k: i for i, k in enumerate(TIER_ORDER)}

    def order(r: pd.Series) -> tuple:
        # overall, then the risk tiers, then the value tiers
        level = 0 if r["risk_tier"] == r["value_tier"] == ALL else 1 + (r["risk_tier"] == ALL)
        tier = r["value_tier"] if r["risk_tier"] == ALL else r["risk_tier"]
        return level, rank.get(tier, 99), str(tier)

    rows = sorted((r for _, r in t.iterrows()), key=order)
    return [
        {
            "tier": r["value_tier"] if r["risk_tier"] == ALL else r["risk_tier"],
            "n_treatment": int(r["n_treatment"]),
            "n_control": int(r["n_control"]),
            "rate_treatment": _number(r["churn_rate_treatment"]),
            "rate_control": _number(r["churn_rate_control"]),
            "uplift": _number(r["uplift"]),
            "low": _number(r["uplift_low"]),
            "high": _number(r["uplift_high"]),
            "saved": _number(r["customers_saved"]),
            "value_saved": _number(r["value_saved"]),
            "cost": _number(r["cost"]),
            "roi": _number(r["roi"]),
            "early": _number(r["early_identification_rate"]),
            "true_uplift": _number(r["true_uplift"]),
            "covers": _covers(r["covers_truth"]),
            **_notes("" if pd.isna(r["note"]) else str(r["note"])),
        }
        for r in rows
    ]


def chart_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows the chart draws: overall and each risk tier (each value tier when the
    risk tiers are unknown), with both churn rates."""
    if table is None or table.empty:
        return pd.DataFrame()
    pooled = table[table["campaign_id"].astype(str) == POOLED]
    by_risk = pooled[(pooled["value_tier"] == ALL) & (pooled["risk_tier"] != ALL)]
    tiers = (
        by_risk.assign(tier=by_risk["risk_tier"])
        if len(by_risk)
        else pooled[(pooled["risk_tier"] == ALL) & (pooled["value_tier"] != ALL)].assign(
            tier=lambda d: d["value_tier"]
        )
    )
    overall = pooled[(pooled["risk_tier"] == ALL) & (pooled["value_tier"] == ALL)].assign(tier=ALL)
    rank = {k: i for i, k in enumerate(TIER_ORDER)}
    tiers = tiers.assign(_r=tiers["tier"].map(lambda k: rank.get(k, 99))).sort_values("_r")
    out = pd.concat([overall, tiers.drop(columns="_r")], ignore_index=True)
    cols = ["tier", "churn_rate_treatment", "churn_rate_control", "uplift", "n_treatment"]
    return out[cols].dropna(subset=["churn_rate_treatment", "churn_rate_control"])


def campaign_context(summary: dict, table: pd.DataFrame) -> dict:
    """Section "Did last month's actions work?": the status, the latest fully observed
    campaign and the pooled rows, the campaigns left out and why, the success metrics."""
    summary = summary or {}
    latest = summary.get("latest") or {}
    success = summary.get("success") or {}
    early = success.get("early_identification") or {}
    truth = summary.get("truth") or {}
    return {
        "available": bool(summary),
        "status": summary.get("status", "no campaigns logged yet"),
        "evaluated": summary.get("status") == "evaluated",
        "n": int(summary.get("campaigns_evaluated") or 0),
        "latest_id": latest.get("campaign_id"),
        "latest_cutoff": latest.get("cutoff"),
        "latest_rows": campaign_rows(table, str(latest.get("campaign_id"))),
        "pooled_rows": campaign_rows(table, POOLED),
        "skipped": _grouped(summary.get("skipped") or {}),
        "confidence": summary.get("confidence"),
        "truth": bool(truth.get("available")),
        "coverage": truth.get("coverage"),
        "cells_judged": truth.get("cells_judged", 0),
        "cells_covered": truth.get("cells_covered", 0),
        # every key, so that a card without the campaigns stage's file still renders
        "early": {k: _number(early.get(k)) for k in EARLY_KEYS},
        "roi": {
            k: _number((success.get("roi") or {}).get(k)) for k in ("latest", "pooled", "target")
        },
        "rules_early": _number((success.get("model") or {}).get("rules_early_identification_rate")),
    }


def _grouped(skipped: dict[str, str]) -> list[tuple[str, str]]:
    """Campaigns skipped for the same reason on one line (a long history has a dozen from before
    the first snapshot): "first ... last (n)" with its reason."""
    by_reason: dict[str, list[str]] = {}
    for cid, why in sorted(skipped.items()):
        by_reason.setdefault(why, []).append(cid)
    out = []
    for why, ids in by_reason.items():
        if len(ids) == 1:
            out.append((ids[0], why))
        else:  # the card puts the label in backticks: `first` … `last`
            out.append((f"{ids[0]}` … `{ids[-1]}", f"{len(ids)} campaigns: {why}"))
    return out
