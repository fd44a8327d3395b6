"""Did the win-back offers work? Return rates of the leavers offered a "come back" against the
control group held out of the same campaign, per value tier (domain.md sections 3, 6 and 8).

A win-back contact's outcome: the leaver is back (an own event: a transaction or activity)
within `window_days` after the contact. A campaign is evaluated once every contact's window is
inside the data. The value tier is the leaver's at its last snapshot before leaving (the
features row at the latest cutoff at or before it left), cut as the segment stage cuts it.

Per campaign and pooled over campaigns, overall and per value tier: the return rate in
treatment and control with percentile intervals from a seeded bootstrap of each group of each
campaign, the uplift (treatment rate - control rate: the returns the offer caused), customers
and yearly value won back (uplift x treated, uplift x their yearly value), cost and ROI (value
won back / cost), and the brief's targets beside (win-back rate by tier, ROI). Pooled, the
control rate is each campaign's weighted by its treated, as for the retention campaigns. With
the synthetic world's truth, the true rates and uplift are set beside.
"""

from __future__ import annotations

import logging
import zlib

import numpy as np
import pandas as pd

from churnlight.models.campaigns import ALL, TIER_ORDER
from churnlight.models.contacts import per_customer

log = logging.getLogger(__name__)

KIND = "winback"
POOLED = "pooled-winback"  # the campaign_id of the rows pooled over every win-back campaign
UNKNOWN = "unknown"  # the value tier of a leaver without a snapshot before leaving
NO_CONTACTS = "no win-back contacts logged"
NOT_OBSERVED = "no win-back campaign fully observed yet"
EVALUATED = "evaluated"

COLUMNS = [
    "kind",
    "campaign_id",
    "cutoff",
    "risk_tier",
    "value_tier",
    "n_treatment",
    "n_control",
    "return_rate_treatment",
    "return_rate_treatment_low",
    "return_rate_treatment_high",
    "return_rate_control",
    "uplift",
    "uplift_low",
    "uplift_high",
    "customers_saved",
    "value_saved",
    "cost",
    "roi",
    "target_rate",
    "meets_target",
    "roi_target",
    "true_return_rate_treatment",
    "true_return_rate_control",
    "true_uplift",
    "covers_truth",
    "note",
]


def what_is_missing(has_contacts: bool, has_returns: bool) -> str:
    """What bring-your-own data lacks for a win-back evaluation, in words ("" if nothing)."""
    parts = []
    if not has_contacts:
        parts.append(
            'no win-back contacts: log each offer to a leaver in `contacts` with kind "winback", '
            'campaign_id "YYYY-MM-winback", group treatment or control (a random held-out share)'
        )
    if not has_returns:
        parts.append(
            "no returns: no own event (transaction or activity) after a customer left, so "
            "nobody can be seen coming back"
        )
    return "; ".join(parts)


def returned_after(contacts: pd.DataFrame, events: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Per contact (customer_id, ts), the first own event strictly after it (`next_event`) and
    whether it falls within `window_days` (`returned`)."""
    c = contacts[["customer_id", "ts"]].copy()
    c["customer_id"] = c["customer_id"].astype(str)
    c["ts"] = pd.to_datetime(c["ts"]).astype("datetime64[ns]")
    c["_pos"] = np.arange(len(c))
    e = events[["customer_id", "ts"]].copy()
    e["customer_id"] = e["customer_id"].astype(str)
    e = e[e["customer_id"].isin(set(c["customer_id"]))]
    e = e.assign(next_event=pd.to_datetime(e["ts"]).astype("datetime64[ns]"))[
        ["customer_id", "next_event"]
    ]
    m = pd.merge_asof(
        c.sort_values("ts"),
        e.sort_values("next_event"),
        left_on="ts",
        right_on="next_event",
        by="customer_id",
        direction="forward",
        allow_exact_matches=False,
    ).sort_values("_pos")
    nxt = m["next_event"].to_numpy()
    returned = pd.notna(nxt) & (nxt <= (m["ts"] + pd.Timedelta(days=window_days)).to_numpy())
    return contacts.assign(next_event=nxt, returned=returned)


def leaver_snapshot(
    per: pd.DataFrame, snapshots: pd.DataFrame, left_date: pd.Series | None
) -> pd.DataFrame:
    """Each contact's value and value tier from its customer's last snapshot row at or before
    it left (`left_date`: customer_id -> date; missing: the contact's ts), NaN/unknown without
    one. `snapshots`: customer_id, cutoff, value, value_tier."""
    left = per["customer_id"].map(left_date) if left_date is not None else None
    ref = pd.to_datetime(per["ts"]).astype("datetime64[ns]")
    if left is not None:
        left = pd.to_datetime(left).astype("datetime64[ns]")
        ref = ref.where(left.isna() | (left > ref), left)
    q = per.assign(_ref=ref, _pos=np.arange(len(per)))
    s = snapshots[["customer_id", "cutoff", "value", "value_tier"]].copy()
    s["customer_id"] = s["customer_id"].astype(str)
    s["cutoff"] = pd.to_datetime(s["cutoff"]).astype("datetime64[ns]")
    m = pd.merge_asof(
        q.sort_values("_ref"),
        s.sort_values("cutoff"),
        left_on="_ref",
        right_on="cutoff",
        by="customer_id",
        direction="backward",
    ).sort_values("_pos")
    return per.assign(
        snapshot=m["cutoff"].to_numpy(),
        value=m["value"].to_numpy(dtype=float),
        value_tier=m["value_tier"].astype(object).fillna(UNKNOWN).to_numpy(),
    )


def _resample_rate(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Each stratum's rate to draw around: its own (the plain bootstrap, unbiased however small
    the campaign's group), or shrunk by half a case when the group has no return at all (or
    only returns) in every stratum, where the plain bootstrap has zero width."""
    if k.sum() == 0 or k.sum() == n.sum():
        return (k + 0.5) / (n + 1)
    return k / n


def _boot(strata: pd.DataFrame, draws: int, confidence: float, key: str, seed: int) -> dict:
    """Rates and uplift over strata (n_t, k_t, n_c, k_c: sizes and returns per group, one row
    per campaign) with percentile intervals; each group's returns drawn binomially around its
    rate (`_resample_rate`)."""
    v = strata[(strata["n_t"] > 0) & (strata["n_c"] > 0)]
    out = {
        "n_treatment": int(v["n_t"].sum()),
        "n_control": int(v["n_c"].sum()),
        **dict.fromkeys(
            (
                "return_rate_treatment",
                "return_rate_treatment_low",
                "return_rate_treatment_high",
                "return_rate_control",
                "uplift",
                "uplift_low",
                "uplift_high",
            ),
            np.nan,
        ),
    }
    if v.empty:
        return out
    n_t, k_t = v["n_t"].to_numpy(float), v["k_t"].to_numpy(float)
    n_c, k_c = v["n_c"].to_numpy(float), v["k_c"].to_numpy(float)
    w = n_t / n_t.sum()
    treat, control = k_t.sum() / n_t.sum(), float(w @ (k_c / n_c))
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    bt = rng.binomial(n_t.astype(np.int64), _resample_rate(k_t, n_t), size=(draws, len(n_t)))
    bc = rng.binomial(n_c.astype(np.int64), _resample_rate(k_c, n_c), size=(draws, len(n_c)))
    rate_t = bt.sum(axis=1) / n_t.sum()
    boot = rate_t - (bc / n_c) @ w
    a = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    rlo, rhi = np.quantile(rate_t, [a, 1 - a])
    out.update(
        return_rate_treatment=float(treat),
        return_rate_treatment_low=float(rlo),
        return_rate_treatment_high=float(rhi),
        return_rate_control=control,
        uplift=float(treat) - control,
        uplift_low=float(lo),
        uplift_high=float(hi),
    )
    return out


def _stratum(rows: pd.DataFrame) -> dict:
    t, c = rows[rows["group"] == "treatment"], rows[rows["group"] == "control"]
    return {
        "n_t": len(t),
        "k_t": int(t["returned"].sum()),
        "n_c": len(c),
        "k_c": int(c["returned"].sum()),
        "value_t": float(t["value"].sum()) if t["value"].notna().any() else np.nan,
        "cost_t": float(t["cost"].sum()) if t["cost"].notna().any() else np.nan,
        "p_offer_sum": float(t["p_return_offer"].sum()),
        "p_offer_n": int(t["p_return_offer"].notna().sum()),
        "p_control_sum": float(c["p_return_control"].sum()),
        "p_control_n": int(c["p_return_control"].notna().sum()),
        "uplift_sum": float((t["p_return_offer"] - t["p_return_control"]).sum()),
    }


def _row(
    strata: pd.DataFrame,
    tier: str,
    *,
    draws: int,
    confidence: float,
    key: str,
    seed: int,
    min_group: int,
    targets: dict[str, float],
    roi_target: float,
) -> dict:
    est = _boot(strata, draws, confidence, key, seed)
    small = not np.isnan(est["uplift"]) and min(est["n_control"], est["n_treatment"]) < min_group
    if small:
        for k in ("uplift_low", "uplift_high", "return_rate_treatment_low"):
            est[k] = np.nan
        est["return_rate_treatment_high"] = np.nan
    v = strata[(strata["n_t"] > 0) & (strata["n_c"] > 0)]
    uplift = est["uplift"]
    value_t, cost = v["value_t"].sum(min_count=1), v["cost_t"].sum(min_count=1)
    value_saved = uplift * value_t
    # truth: treated-weighted over campaigns, as the estimate
    known = len(v) and (v["p_offer_n"] == v["n_t"]).all() and (v["p_control_n"] == v["n_c"]).all()
    true_t = true_c = true_up = np.nan
    if known:
        w = v["n_t"] / v["n_t"].sum()
        true_t = float(v["p_offer_sum"].sum() / v["n_t"].sum())
        true_c = float(
            (w * (v["p_control_sum"] / v["n_c"])).sum()
        )  # control rate, treated-weighted
        true_up = float(v["uplift_sum"].sum() / v["n_t"].sum())
    low, high = est["uplift_low"], est["uplift_high"]
    covers = None if np.isnan(true_up) or np.isnan(low) else bool(low <= true_up <= high)
    target = targets.get(tier, np.nan) if tier != ALL else np.nan
    rate = est["return_rate_treatment"]
    notes = [f"fewer than {min_group} in a group: no interval"] if small else []
    no_c = int(((strata["n_t"] > 0) & (strata["n_c"] == 0)).sum())
    if no_c:
        notes.append(f"{no_c} campaign(s) without a control group left out")
    return {
        **est,
        "customers_saved": uplift * est["n_treatment"],
        "value_saved": value_saved,
        "cost": cost,
        "roi": value_saved / cost if cost and cost > 0 else np.nan,
        "target_rate": target,
        "meets_target": (None if np.isnan(target) or np.isnan(rate) else bool(rate >= target)),
        "roi_target": roi_target,
        "true_return_rate_treatment": true_t,
        "true_return_rate_control": true_c,
        "true_uplift": true_up,
        "covers_truth": covers,
        "note": "; ".join(notes),
    }


def _tier_order(t: str) -> tuple[int, str]:
    return (TIER_ORDER.get(t, 98 if t != UNKNOWN else 99), t)


def evaluate_winback(
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    snapshots: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    window_days: int,
    bootstrap: int,
    confidence: float,
    seed: int,
    targets: dict[str, float],
    roi_target: float,
    min_group: int = 20,
    left_date: pd.Series | None = None,
    truth: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The win-back campaigns of `contacts` (kind winback; the contract's columns) whose
    windows end by `data_end` (exclusive), per campaign and pooled, overall and per value tier.

    `events`: own events (customer_id, ts). `snapshots`: customer_id, cutoff, value,
    value_tier. `left_date`: customer_id -> the day each left (cancel_date), if known.
    `truth` (synthetic world): customer_id, campaign_id, p_return_control, p_return_offer.
    Returns the table (COLUMNS) and the summary."""
    if "kind" in contacts:
        contacts = contacts[contacts["kind"].astype(object) == KIND]
    base = {
        "window_days": window_days,
        "min_group": min_group,
        "confidence": confidence,
        "targets": {"winback_rate": dict(targets), "roi_target": roi_target},
        "campaigns_evaluated": 0,
        "latest": None,
        "pooled": None,
        "by_campaign": {},
        "skipped": {},
    }
    empty = pd.DataFrame(columns=COLUMNS)
    if contacts.empty:
        return empty, {**base, "status": NO_CONTACTS, "message": what_is_missing(False, True)}
    per = per_customer(contacts)
    end = per.groupby("campaign_id")["ts"].max() + pd.Timedelta(days=window_days)
    open_ = end[end > data_end].index
    skipped = {str(c): f"outcome window ({window_days} days) not fully observed yet" for c in open_}
    per = per[~per["campaign_id"].isin(open_)]
    per = returned_after(per, events, window_days)
    per = leaver_snapshot(per, snapshots, left_date)
    no_snap = per["snapshot"].isna()
    for cid, g in per.groupby("campaign_id"):
        if no_snap[g.index].all():
            skipped[str(cid)] = "its leavers have no features snapshot before leaving"
    if no_snap.any():
        log.info(
            "win-back: %d contact(s) of leavers without a snapshot before leaving: left out",
            int(no_snap.sum()),
        )
    per = per[~no_snap]
    if truth is not None and len(truth):
        t = truth.assign(
            customer_id=truth["customer_id"].astype(str),
            campaign_id=truth["campaign_id"].astype(str),
        ).dropna(subset=["campaign_id"])
        cols = ["campaign_id", "customer_id", "p_return_control", "p_return_offer"]
        per = per.merge(t[cols].drop_duplicates(cols[:2]), on=cols[:2], how="left")
    else:
        per = per.assign(p_return_control=np.nan, p_return_offer=np.nan)
    if per.empty:
        msg = "Win-back contacts are logged but none can be evaluated yet: " + "; ".join(
            f"{k}: {v}" for k, v in sorted(skipped.items())
        )
        return empty, {**base, "status": NOT_OBSERVED, "message": msg, "skipped": skipped}
    tiers = [ALL, *sorted(set(per["value_tier"]), key=_tier_order)]
    args = {
        "draws": bootstrap,
        "confidence": confidence,
        "seed": seed,
        "min_group": min_group,
        "targets": targets,
        "roi_target": roi_target,
    }
    records, strata = [], {t: [] for t in tiers}
    months = {}
    for cid, g in per.groupby("campaign_id", sort=True):
        month = pd.Timestamp(g["ts"].min()).to_period("M").to_timestamp()
        months[cid] = month
        for tier in tiers:
            rows = g if tier == ALL else g[g["value_tier"] == tier]
            if rows.empty:
                continue
            s = _stratum(rows)
            strata[tier].append(s)
            r = _row(pd.DataFrame([s]), tier, key=f"{cid}|{tier}", **args)
            records.append({"campaign_id": cid, "cutoff": month, "value_tier": tier} | r)
    for tier in tiers:
        r = _row(pd.DataFrame(strata[tier]), tier, key=f"{POOLED}|{tier}", **args)
        records.append({"campaign_id": POOLED, "cutoff": pd.NaT, "value_tier": tier} | r)
    table = pd.DataFrame(records).assign(kind=KIND, risk_tier=ALL)[COLUMNS]
    latest = max(months, key=lambda k: (months[k], k))
    summary = {
        **base,
        "status": EVALUATED,
        "message": (
            f"{len(months)} win-back campaign(s) evaluated; latest fully observed: {latest}"
        ),
        "campaigns_evaluated": len(months),
        "latest": {"campaign_id": latest, "tiers": _by_tier(table, latest)},
        "pooled": {"tiers": _by_tier(table, POOLED)},
        "by_campaign": {cid: _by_tier(table, cid)[ALL] for cid in sorted(months)},
        "skipped": dict(sorted(skipped.items())),
        "truth": {"available": bool(table["true_uplift"].notna().any())},
    }
    return table, summary


def _clean(x: object) -> object:
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, float | np.floating):
        return None if np.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, pd.Timestamp):
        return str(x.date())
    if x is pd.NaT:
        return None
    return x


def _by_tier(table: pd.DataFrame, campaign_id: str) -> dict:
    """One campaign's (or the pooled) rows as {tier: numbers}, JSON-safe."""
    keep = [c for c in COLUMNS if c not in ("kind", "campaign_id", "risk_tier", "value_tier")]
    rows = table[table["campaign_id"] == campaign_id]
    return {str(r["value_tier"]): {c: _clean(r[c]) for c in keep} for _, r in rows.iterrows()}
