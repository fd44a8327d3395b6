"""The control group (domain.md section 8): a random share of the customers flagged for action
is held out, not contacted, so that their churn over the same window shows what the contacted
customers' churn would have been without the contact. Without it "the contacted customers
stayed" proves nothing: many would have stayed anyway.

The draw is seeded and stable. Each customer gets a uniform number in [0, 1) from a keyed hash
of (seed, campaign id, customer id), which depends on nothing else: not on the run, the row
order or who else is on the list. Within each stratum (risk tier x value tier) the customers
with the lowest numbers, `round(share x n)` of them, are the control group, so that every
stratum holds the same share (a stratum of fewer than 1 / (2 x share) customers holds none).

So a customer's group stays the same as long as their stratum's membership does. When it
changes, only customers whose number lies near the stratum's cut (about the `share` quantile)
can change group: in a stratum of a few hundred, one drawn far below the share stays control
and one drawn far above stays treatment, and the lowest of a stratum that holds any is always
control. Another campaign id (or seed) gives a fresh, independent draw, so that no customer is
held out every month.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

TREATMENT, CONTROL = "treatment", "control"
# the risk tiers a retention campaign acts on ("low" is business as usual)
CAMPAIGN_TIERS = ("high", "medium")
CAMPAIGN_KIND = "retention"
CONTROL_ACTION = "Control group: do not contact (held out to measure whether acting works)"
STRATA = ["risk_tier", "value_tier"]


def campaign_id(configured: str | None, scoring_cutoff: pd.Timestamp | None) -> str:
    """The campaign's id: as configured, else from the scoring snapshot's month
    (2026-11-01 -> "2026-11-retention"), else (no dates: a flat table) plain "retention"."""
    if configured:
        return configured
    if scoring_cutoff is None or pd.isna(scoring_cutoff):
        return CAMPAIGN_KIND
    return f"{pd.Timestamp(scoring_cutoff):%Y-%m}-{CAMPAIGN_KIND}"


def draw(customer_ids: pd.Series, campaign: str, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per customer: BLAKE2b of "seed:campaign:customer_id",
    the same for the same three whatever else is drawn."""

    def one(cid: object) -> float:
        key = f"{seed}:{campaign}:{cid}".encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    return np.fromiter((one(c) for c in customer_ids.astype(str)), float, len(customer_ids))


def control_count(share: float, n: int) -> int:
    """round(share x n), halves up and without float noise (0.1 x 25 holds 2.5 -> 3)."""
    return int(np.floor(round(share * n, 9) + 0.5))


def assign_groups(
    customers: pd.DataFrame,
    candidate: np.ndarray,
    share: float,
    campaign: str,
    seed: int,
    strata: list[str] = STRATA,
) -> np.ndarray:
    """ "treatment", or "control" for the lowest draws of each stratum, per candidate row of
    `customers` (customer_id and the `strata` columns, by default `STRATA`); "" for the
    others."""
    candidate = np.asarray(candidate, dtype=bool)
    group = np.where(candidate, TREATMENT, "").astype(object)
    if share <= 0 or not candidate.any():
        return group
    rows = customers.loc[candidate, ["customer_id", *strata]].copy()
    rows["_u"] = draw(rows["customer_id"], campaign, seed)
    rows["_id"] = rows["customer_id"].astype(str)  # ties (never in practice) by id
    rows["_pos"] = np.flatnonzero(candidate)
    for _, g in rows.groupby(strata, sort=False, dropna=False):
        k = control_count(share, len(g))
        if k:
            lowest = g.sort_values(["_u", "_id"], kind="stable").head(k)
            group[lowest["_pos"].to_numpy()] = CONTROL
    return group


def campaign_candidates(seg: pd.DataFrame, no_contact_action: str) -> np.ndarray:
    """The customers a campaign would contact: a tier someone acts on, and worth the cost
    (those not worth contacting are not contacted anyway, so holding them out says nothing)."""
    return (seg["risk_tier"].isin(CAMPAIGN_TIERS) & seg["action"].ne(no_contact_action)).to_numpy()


def hold_out(
    seg: pd.DataFrame, share: float, campaign: str, seed: int, no_contact_action: str
) -> pd.DataFrame:
    """The segment table with `campaign_id` and `group` set: campaign candidates are treatment
    or control (`assign_groups`), the others are outside the campaign (both empty). Control
    customers keep their scores and value but get `CONTROL_ACTION`, no owner and no deadline,
    so that nobody contacts them from any list."""
    group = assign_groups(seg, campaign_candidates(seg, no_contact_action), share, campaign, seed)
    out = seg.copy()
    out["campaign_id"] = np.where(group != "", campaign, "").astype(object)
    out["group"] = group
    control = group == CONTROL
    out.loc[control, "action"] = CONTROL_ACTION
    out.loc[control, "owner"] = "none"
    out.loc[control, "due_within_hours"] = 0
    out.loc[control, "angle"] = ""
    return out


CONTROL_COLUMNS = ["campaign_id", "customer_id", "risk_tier", "value_tier", "group"]


def control_list(seg: pd.DataFrame) -> pd.DataFrame:
    """The held-out customers (`CONTROL_COLUMNS`), for the analyst to log as contacts with
    group "control": they are on no action list."""
    return seg.loc[seg["group"] == CONTROL, CONTROL_COLUMNS].reset_index(drop=True)


def action_list(seg: pd.DataFrame) -> pd.DataFrame:
    """The segment table without the control group: what the action lists hold."""
    return seg[seg["group"] != CONTROL]
