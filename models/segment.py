"""From probabilities to action lists: risk tiers, the likely kind of churn and the playbook."""

from __future__ import annotations

import numpy as np
import pandas as pd


def risk_tiers(p: np.ndarray, policy: str, params: dict) -> np.ndarray:
    """high/medium/low by capacity (top shares of the ranking) or by probability thresholds."""
    p = np.asarray(p, dtype=float)
    if policy == "capacity":
        order = np.argsort(-p, kind="stable")
        rank = np.empty(len(p), dtype=np.int64)
        rank[order] = np.arange(len(p))
        n_high = int(np.ceil(float(params["high_share"]) * len(p)))
        n_med = int(np.ceil(float(params["medium_share"]) * len(p)))
        return np.where(rank < n_high, "high", np.where(rank < n_high + n_med, "medium", "low"))
    if policy == "threshold":
        hi, med = float(params["high_threshold"]), float(params["medium_threshold"])
        if med > hi:
            raise ValueError("segment.medium_threshold must not exceed segment.high_threshold")
        return np.where(p >= hi, "high", np.where(p >= med, "medium", "low"))
    raise ValueError(f"unknown segment.policy {policy!r}: use 'capacity' or 'threshold'")


def churn_kind(reason_families: pd.DataFrame, complaints_open: pd.Series | None) -> np.ndarray:
    """Likely kind of churn (domain.md section 4) from the families of the top reasons:
    attitude or external reasons point to an active decision; behaviour alone with no open
    complaint to silent fading; profile alone to circumstances (passive)."""
    fams = reason_families.fillna("").to_numpy(dtype=object)
    has = {f: (fams == f).any(axis=1) for f in ("attitude", "external", "behaviour", "profile")}
    quiet = (
        np.ones(len(fams), dtype=bool)
        if complaints_open is None
        else (complaints_open.fillna(0).to_numpy() == 0)
    )
    return np.select(
        [has["attitude"] | has["external"], has["behaviour"] & quiet, has["behaviour"]],
        ["active", "silent", "active"],
        "passive",
    )


def apply_playbook(
    risk: np.ndarray, value: np.ndarray, care: np.ndarray, playbook: list[dict]
) -> pd.DataFrame:
    """First matching playbook row per customer: action, owner and deadline in hours."""
    n = len(risk)
    action = np.full(n, "", dtype=object)
    owner = np.full(n, "", dtype=object)
    hours = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    for row in playbook:
        m = ~done & (risk == row["risk"])
        vals, cares = row.get("value") or [], row.get("care") or []
        if vals or cares:
            m &= np.isin(value, vals) | np.isin(care, cares)
        action[m], owner[m], hours[m] = row["action"], row["owner"], int(row["due_within_hours"])
        done |= m
    if not done.all():
        missing = sorted(
            {(r, v, c) for r, v, c, d in zip(risk, value, care, done, strict=True) if not d}
        )
        raise ValueError(f"segment.playbook has no row for (risk, value, care) = {missing[:5]}")
    return pd.DataFrame({"action": action, "owner": owner, "due_within_hours": hours})
