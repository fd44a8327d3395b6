"""The card's win-back part: the current win-back list (data/artifacts/winback/list.parquet, the
winback stage's; its size, value and owners) and last period's win-back rates by value tier
against the domain brief's targets (reports/campaigns.json, "winback"), or what the data lacks.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

TIERS = ("all", "platinum", "gold", "silver", "regular", "unknown")


def read_winback_list(path: Path) -> pd.DataFrame | None:
    """The win-back list, or None when there is none (no winback stage run yet, or an older
    project): the card then says so instead of failing."""
    if not path.is_file():
        log.info("no win-back list at %s: the card says so", path)
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:  # a broken file is reported, not fatal to the card
        log.warning("win-back list %s cannot be read (%s): the card says so", path, e)
        return None


def _number(x: object) -> float | None:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def list_summary(df: pd.DataFrame | None) -> dict:
    """Size, total yearly value and expected value won back, and who owns the list (customers
    and value per owner, most valuable first); tolerant of missing columns."""
    if df is None:
        return {"available": False, "size": 0, "owners": [], "tiers": []}
    value = pd.to_numeric(df["value"], errors="coerce") if "value" in df else None
    expected = (
        pd.to_numeric(df["expected_value"], errors="coerce") if "expected_value" in df else None
    )
    owners = []
    if "owner" in df and len(df):
        g = df.assign(_v=0.0 if value is None else value.fillna(0)).groupby(
            df["owner"].astype(str), sort=False
        )
        table = g.agg(count=("_v", "size"), value=("_v", "sum")).sort_values(
            ["value", "count"], ascending=False
        )
        if "due_within_hours" in df:
            table["hours"] = g["due_within_hours"].min()
        owners = [
            {
                "owner": str(o),
                "count": int(r["count"]),
                "value": None if value is None else float(r["value"]),
                "hours": _number(r.get("hours")),
            }
            for o, r in table.iterrows()
        ]
    tiers = []
    if "value_tier" in df and len(df):
        counts = df["value_tier"].astype(str).value_counts()
        tiers = [{"tier": t, "count": int(counts[t])} for t in TIERS if t in counts]
    return {
        "available": True,
        "size": len(df),
        "value": None if value is None else float(value.sum()),
        "expected_value": None if expected is None else float(expected.clip(lower=0).sum()),
        "owners": owners,
        "tiers": tiers,
    }


def _rows(tiers: dict) -> list[dict]:
    out = []
    for tier in TIERS:
        r = tiers.get(tier)
        if r is None:
            continue
        out.append(
            {
                "tier": tier,
                "n_treatment": int(r.get("n_treatment") or 0),
                "n_control": int(r.get("n_control") or 0),
                "rate": _number(r.get("return_rate_treatment")),
                "rate_low": _number(r.get("return_rate_treatment_low")),
                "rate_high": _number(r.get("return_rate_treatment_high")),
                "rate_control": _number(r.get("return_rate_control")),
                "uplift": _number(r.get("uplift")),
                "low": _number(r.get("uplift_low")),
                "high": _number(r.get("uplift_high")),
                "value_saved": _number(r.get("value_saved")),
                "cost": _number(r.get("cost")),
                "roi": _number(r.get("roi")),
                "target": _number(r.get("target_rate")),
                "meets": r.get("meets_target"),
                "true_rate": _number(r.get("true_return_rate_treatment")),
                "true_uplift": _number(r.get("true_uplift")),
            }
        )
    return out


def winback_context(summary: dict | None, listed: pd.DataFrame | None) -> dict:
    """Everything the card's win-back part shows; every key present whatever is missing."""
    wb = summary or {}
    latest = wb.get("latest") or {}
    pooled = wb.get("pooled") or {}
    targets = wb.get("targets") or {}
    pooled_rows = _rows(pooled.get("tiers") or {})
    overall = next((r for r in pooled_rows if r["tier"] == "all"), {})
    return {
        "judged": bool(wb),  # the campaigns stage judged win-back (campaigns.kinds)
        "status": wb.get("status", "no win-back contacts logged"),
        "evaluated": wb.get("status") == "evaluated",
        "message": wb.get("message", ""),
        "missing": wb.get("missing", ""),
        "no_contacts": wb.get("status") == "no win-back contacts logged",
        "no_returns": wb.get("returns_seen") == 0,
        "n": int(wb.get("campaigns_evaluated") or 0),
        "window": wb.get("window_days"),
        "min_group": wb.get("min_group"),
        "confidence": _number(wb.get("confidence")),
        "latest_id": latest.get("campaign_id"),
        "latest_rows": _rows(latest.get("tiers") or {}),
        "pooled_rows": pooled_rows,
        "roi_pooled": overall.get("roi"),
        "roi_target": _number(targets.get("roi_target")),
        "truth": bool((wb.get("truth") or {}).get("available")),
        "skipped": sorted((wb.get("skipped") or {}).items()),
        "list": list_summary(listed),
    }
