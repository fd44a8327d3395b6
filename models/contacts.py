"""The contact log read for evaluation: which campaign and group each contact belongs to, and
which snapshot cutoff holds its outcome (the cutoff that opens the contact's month).

The contract's `contacts` table: customer_id, ts, campaign_id, kind (retention or winback),
group (treatment, or control: flagged but deliberately not contacted), action, channel, owner,
and an optional cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlight.models.segment import risk_tiers
from churnlight.models.value import value_tiers

CONTACT_COLUMNS = (
    "customer_id",
    "ts",
    "campaign_id",
    "kind",
    "group",
    "action",
    "channel",
    "owner",
    "cost",
)
REQUIRED_COLUMNS = ("customer_id", "ts", "campaign_id", "group")
GROUPS = ("treatment", "control")


def what_to_log() -> str:
    """The message for a project without contacts: what to log, and where."""
    return (
        "Log every contact of a campaign as a `contacts` table in the data folder (CSV or "
        "Parquet, like the other tables): customer_id, ts (when the contact was made), "
        "campaign_id, kind (retention or winback), group (treatment, or control for a flagged "
        "customer deliberately not contacted), action, channel, owner and optionally cost. "
        "Hold out a random control group (segment writes it beside the action lists): without "
        "it nobody can tell whether an action worked."
    )


def link_cutoffs(ts: pd.Series, cutoffs: pd.Series | np.ndarray, step_months: int) -> pd.Series:
    """Per contact, the latest of `cutoffs` at or before `ts` and less than `step_months`
    before it (the cutoff that opens the contact's month); NaT where there is none."""
    grid = pd.DatetimeIndex(pd.to_datetime(pd.Series(cutoffs)).dropna().unique()).sort_values()
    when = pd.to_datetime(pd.Series(ts)).reset_index(drop=True)
    out = pd.Series(pd.NaT, index=when.index, dtype="datetime64[ns]")
    if len(grid) == 0:
        return out.set_axis(pd.Series(ts).index)
    grid_ns = grid.as_unit("ns")
    pos = grid_ns.searchsorted(when.to_numpy(dtype="datetime64[ns]"), side="right") - 1
    ok = pos >= 0
    found = pd.Series(pd.NaT, index=when.index, dtype="datetime64[ns]")
    found[ok] = grid_ns[pos[ok]]
    within = when < found + pd.DateOffset(months=step_months)
    out[ok & within.to_numpy()] = found[ok & within.to_numpy()]
    return out.set_axis(pd.Series(ts).index)


def campaign_cutoffs(
    contacts: pd.DataFrame, cutoffs: pd.Series | np.ndarray, step_months: int
) -> list[pd.Timestamp]:
    """The labelled cutoffs the contacts link to: the snapshots to score for risk tiers."""
    if contacts.empty:
        return []
    linked = link_cutoffs(contacts["ts"], cutoffs, step_months).dropna()
    return sorted(pd.Timestamp(c) for c in linked.unique())


def risk_tiers_by_cutoff(
    p: np.ndarray, cutoff: pd.Series, policy: str, **tier_policy: float
) -> np.ndarray:
    """The segment stage's risk tiers, cut within each cutoff's snapshot (its customer base)."""
    out = np.empty(len(p), dtype=object)
    for _, idx in pd.Series(np.arange(len(p))).groupby(cutoff.to_numpy()).indices.items():
        out[idx] = risk_tiers(np.asarray(p)[idx], policy, **tier_policy)
    return out


def campaign_tiers(
    rows: pd.DataFrame,
    value: np.ndarray | None,
    scoring: str,
    tiers: dict[str, int],
    policy: str,
    **tier_policy: float,
) -> pd.DataFrame:
    """customer_id, cutoff, label of the campaign cutoffs' `rows` (`scored_rows`: with the
    champion's probability `p`) with value tier, value and risk tier, both tiers cut within
    each cutoff's snapshot as the segment stage cuts them."""
    out = rows[["customer_id", "cutoff", "label"]].copy()
    out["value_tier"] = value_tiers(rows, value, scoring, tiers, by="cutoff")
    if value is not None:
        out["value"] = value
    p = rows["p"].to_numpy(dtype=float)
    out["risk_tier"] = risk_tiers_by_cutoff(p, rows["cutoff"], policy, **tier_policy)
    return out


def check_contacts(contacts: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in contacts.columns]
    if missing:
        raise ValueError(
            f"table 'contacts': missing column(s) {missing}; expected {list(CONTACT_COLUMNS)}"
        )
    bad = contacts[~contacts["group"].isin(GROUPS)]
    if len(bad):
        raise ValueError(
            f"table 'contacts', column 'group': {len(bad)} row(s) not in {list(GROUPS)}, e.g.\n"
            + bad.head(5).to_string()
        )


def per_customer(contacts: pd.DataFrame) -> pd.DataFrame:
    """One row per campaign and customer: the earliest contact, its group, the summed cost. A
    customer in both groups of one campaign is an error (the comparison would be broken)."""
    df = contacts.assign(
        customer_id=contacts["customer_id"].astype(str),
        campaign_id=contacts["campaign_id"].astype(str),
        ts=pd.to_datetime(contacts["ts"]),
        cost=pd.to_numeric(contacts["cost"], errors="coerce") if "cost" in contacts else np.nan,
    )
    key = ["campaign_id", "customer_id"]
    groups = df.groupby(key)["group"].nunique()
    both = groups[groups > 1]
    if len(both):
        examples = df.set_index(key).loc[both.index[:5]].reset_index()
        raise ValueError(
            f"table 'contacts': {len(both)} customer(s) are both treatment and control in the "
            f"same campaign, e.g.\n{examples.head(10).to_string()}"
        )
    return (
        df.sort_values("ts", kind="stable")
        .groupby(key, sort=False)
        .agg(
            ts=("ts", "min"), group=("group", "first"), cost=("cost", lambda s: s.sum(min_count=1))
        )
        .reset_index()
    )
