"""Leavers, their returns and the win-back list (issue 15; domain.md sections 3, 5, 6 and 8).

Definitions (the shared interface of issue 15):
- own events: transactions and the customer's own activity (`OWN_ACTIVITY`);
- a leaver at cutoff k: cancellation: `cancel_date` before k (left_date = cancel_date);
  inactivity: the last own event before k is more than `inactivity_days` old
  (left_date = last own event + inactivity_days); on the list at k when left_date lies in
  [k - lookback_days, k) and the leaver has not come back before k;
- a return: the first own event after left_date (for a cancellation date, a day resolution:
  from the next day on, so the cancel day's own last events are no return); "returned within
  W days of k": an own event in [k, k + W days);
- the win-back offer at k: a `contacts` row of kind "winback", group "treatment", in the month
  k opens (the campaign "YYYY-MM-winback").

Point in time: a leaver's row at k holds its features from its last snapshot at or before
left_date (so before k), the days since leaving and the offer made at k (the treatment,
randomised by the company's control group); only the label looks past k.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from churnlight.features.activity import OWN_ACTIVITY
from churnlight.models.control import CONTROL, CONTROL_ACTION, assign_groups

CANCELLED, INACTIVE = "cancelled", "inactive"
WINBACK_KIND = "winback"
# columns the training table adds to the snapshot's features
LEAVER_COLUMNS = ["days_since_leaving", "snapshot_age_days"]
OFFER = "offer"
# the reason the leaver gave (customers.cancel_reason, blank if none): an input of the return
# model, so that leavers who cannot come back (moved away) sink down the list
STATED = "stated_reason"
LIST_COLUMNS = [
    "rank",
    "customer_id",
    "left_date",
    "days_since_leaving",
    "churn_kind",
    STATED,
    "value",
    "value_tier",
    "p_return_offer",
    "p_return_no_offer",
    "expected_value",
    *[f"reason_{j}" for j in (1, 2, 3)],
    *[f"reason_{j}_zh" for j in (1, 2, 3)],
    "action",
    "owner",
    "due_within_hours",
    "deadline",
    "cost",
]
LEAVER_KEYS = ["customer_id", "cutoff", "left_date", "churn_kind", STATED]


def _ns(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).astype("datetime64[ns]")


def own_events(transactions: pd.DataFrame | None, activity: pd.DataFrame | None) -> pd.DataFrame:
    """customer_id, ts of every own event: transactions and the customer's own activity (the
    stages read theirs from files with `pipelines.events.read_own_events`, the same table)."""
    parts = [pd.DataFrame({"customer_id": pd.Series(dtype=str), "ts": pd.Series(dtype="M8[ns]")})]
    if transactions is not None and len(transactions):
        parts.append(transactions[["customer_id", "ts"]])
    if activity is not None and len(activity) and "event_type" in activity:
        own = activity["event_type"].astype(str).isin(OWN_ACTIVITY)
        parts.append(activity.loc[own, ["customer_id", "ts"]])
    out = pd.concat([p.astype({"customer_id": str}) for p in parts], ignore_index=True)
    return out.assign(ts=_ns(out["ts"])).dropna(subset=["ts"])


def query_frames(sql: str, **tables: pd.DataFrame) -> pd.DataFrame:
    """`sql` over the frames `tables` (by name) in a fresh DuckDB, which reads them in place."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # no bars in the logs
    try:
        for name, df in tables.items():
            con.register(name, df)
        return con.sql(sql).df()
    finally:
        con.close()


def _cutoffs(cutoffs: list[pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame({"cutoff": _ns(pd.Series(sorted(set(cutoffs)), dtype="M8[ns]"))})


def leavers(
    customers: pd.DataFrame,
    events: pd.DataFrame,
    cutoffs: list[pd.Timestamp],
    definition: str,
    inactivity_days: int,
    lookback_days: int,
) -> pd.DataFrame:
    """The leavers on the list at each cutoff (`LEAVER_KEYS`): left in the `lookback_days`
    before it and not come back since; only events before the cutoff are read."""
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in LEAVER_KEYS}).astype(
        {"cutoff": "M8[ns]", "left_date": "M8[ns]"}
    )
    if not cutoffs:
        return empty
    ks = _cutoffs(cutoffs)
    if definition == "cancellation":
        if "cancel_date" not in customers:
            return empty
        cust = customers.dropna(subset=["cancel_date"])
        cust = pd.DataFrame(
            {
                "customer_id": cust["customer_id"].astype(str),
                "cancel_date": _ns(cust["cancel_date"]),
                STATED: stated_reason(cust),
            }
        )
        back = int(lookback_days)
        out = query_frames(
            f"""
            SELECT c.customer_id, k.cutoff, c.cancel_date AS left_date, c.{STATED}
            FROM cust c JOIN ks k
              ON c.cancel_date < k.cutoff AND c.cancel_date >= k.cutoff - INTERVAL {back} DAY
            WHERE NOT EXISTS (
                SELECT 1 FROM events e WHERE e.customer_id = c.customer_id
                AND e.ts >= date_trunc('day', c.cancel_date) + INTERVAL 1 DAY AND e.ts < k.cutoff)
            """,
            cust=cust,
            ks=ks,
            events=events,
        )
        kind = CANCELLED
    elif definition == "inactivity":
        n = int(inactivity_days)
        out = query_frames(
            f"""
            WITH last AS (
                SELECT e.customer_id, k.cutoff, max(e.ts) AS last_ts
                FROM events e JOIN ks k ON e.ts < k.cutoff GROUP BY e.customer_id, k.cutoff)
            SELECT customer_id, cutoff, last_ts + INTERVAL {n} DAY AS left_date,
                   '' AS {STATED} FROM last
            WHERE last_ts + INTERVAL {n} DAY < cutoff
              AND last_ts + INTERVAL {n} DAY >= cutoff - INTERVAL {int(lookback_days)} DAY
            """,
            ks=ks,
            events=events,
        )
        kind = INACTIVE
    else:
        raise ValueError(f"unknown churn definition {definition!r}")
    if out.empty:
        return empty
    out = out.assign(cutoff=_ns(out["cutoff"]), left_date=_ns(out["left_date"]), churn_kind=kind)
    return out.sort_values(["cutoff", "customer_id"], ignore_index=True)[LEAVER_KEYS]


def stated_reason(customers: pd.DataFrame) -> pd.Series:
    """customers.cancel_reason as one spelling (trimmed, lower case), blank where none is
    recorded or the column is absent (same index)."""
    if "cancel_reason" not in customers:
        return pd.Series("", index=customers.index, dtype=object)
    text = customers["cancel_reason"].astype("string").str.strip().str.lower()
    return text.fillna("").astype(object)


def return_labels(
    rows: pd.DataFrame, events: pd.DataFrame, window_days: int, data_end: pd.Timestamp
) -> pd.Series:
    """1 if the leaver of a (customer_id, cutoff) row has an own event in [cutoff, cutoff +
    window_days), 0 if not, NaN where that window is not over by `data_end` (same index)."""
    if rows.empty:
        return pd.Series(np.nan, index=rows.index, dtype=float)
    keys = rows[["customer_id", "cutoff"]].reset_index(drop=True).assign(_i=np.arange(len(rows)))
    keys = keys.assign(customer_id=keys["customer_id"].astype(str), cutoff=_ns(keys["cutoff"]))
    w = int(window_days)
    hit = query_frames(
        f"""
        SELECT DISTINCT k._i FROM keys k JOIN events e
          ON e.customer_id = k.customer_id AND e.ts >= k.cutoff
         AND e.ts < k.cutoff + INTERVAL {w} DAY
        """,
        keys=keys,
        events=events,
    )["_i"]
    label = np.zeros(len(rows))
    label[hit.to_numpy(dtype=int)] = 1.0
    observed = keys["cutoff"] + pd.Timedelta(days=w) <= pd.Timestamp(data_end)
    label[~observed.to_numpy()] = np.nan
    return pd.Series(label, index=rows.index)


def offers(rows: pd.DataFrame, contacts: pd.DataFrame) -> pd.Series:
    """1 where a win-back treatment contact reached the leaver in the month its cutoff opens."""
    out = pd.Series(0, index=rows.index, dtype=int)
    need = {"customer_id", "ts", "kind", "group"}
    if rows.empty or not need <= set(contacts.columns):
        return out
    wb = contacts[
        contacts["kind"].astype(str).eq(WINBACK_KIND)
        & contacts["group"].astype(str).eq("treatment")
    ]
    if wb.empty:
        return out
    pairs = rows[["customer_id", "cutoff"]].assign(_i=np.arange(len(rows)))
    pairs["customer_id"] = pairs["customer_id"].astype(str)
    m = pairs.merge(
        wb[["customer_id", "ts"]].assign(customer_id=wb["customer_id"].astype(str)),
        on="customer_id",
    )
    ts, k = _ns(m["ts"]), _ns(m["cutoff"])
    inside = (ts >= k) & (ts < k + pd.DateOffset(months=1))
    out.iloc[m.loc[inside, "_i"].unique()] = 1
    return out


def leaver_rows(leaving: pd.DataFrame, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Each leaver's row at its cutoff: the snapshot at or before left_date (its last as a
    customer; `snapshot_cutoff`) with every column of `snapshots`, the days since leaving
    at the cutoff and the snapshot's age at leaving. Leavers without a snapshot are dropped."""
    if leaving.empty:
        cols = [*LEAVER_KEYS, *LEAVER_COLUMNS, "snapshot_cutoff"]
        cols += [c for c in snapshots.columns if c not in ("customer_id", "cutoff")]
        return pd.DataFrame(columns=cols)
    snap = snapshots.rename(columns={"cutoff": "snapshot_cutoff"})
    snap = snap.assign(
        snapshot_cutoff=_ns(snap["snapshot_cutoff"]), customer_id=snap["customer_id"].astype(str)
    ).sort_values("snapshot_cutoff", kind="stable")
    left = leaving.assign(
        customer_id=leaving["customer_id"].astype(str), left_date=_ns(leaving["left_date"])
    ).sort_values("left_date", kind="stable")
    out = pd.merge_asof(
        left,
        snap,
        left_on="left_date",
        right_on="snapshot_cutoff",
        by="customer_id",
        direction="backward",
    )
    out = out.dropna(subset=["snapshot_cutoff"])
    day = pd.Timedelta(days=1)
    out["days_since_leaving"] = ((out["cutoff"] - out["left_date"]) / day).astype(float)
    out["snapshot_age_days"] = ((out["left_date"] - out["snapshot_cutoff"]) / day).astype(float)
    return out.sort_values(["cutoff", "customer_id"], kind="stable", ignore_index=True)


def training_table(
    leaving: pd.DataFrame,
    snapshots: pd.DataFrame,
    events: pd.DataFrame,
    contacts: pd.DataFrame,
    window_days: int,
    data_end: pd.Timestamp,
) -> pd.DataFrame:
    """`leaver_rows` with the offer made at the cutoff and the label (returned within
    `window_days`; NaN while the window is open at `data_end`)."""
    rows = leaver_rows(leaving, snapshots)
    rows[OFFER] = offers(rows, contacts).to_numpy()
    rows["label"] = return_labels(rows, events, window_days, data_end).to_numpy()
    return rows


def rank_leavers(
    rows: pd.DataFrame,
    p_offer: np.ndarray | None,
    p_no_offer: np.ndarray | None,
    playbook: dict,
    scoring_date: pd.Timestamp,
    no_offer_action: str,
) -> pd.DataFrame:
    """The win-back list (`LIST_COLUMNS`): expected value = P(return | offer) x value - the
    tier's offer cost; those worth an offer first, by expected value, then the rest (no
    offer). Without probabilities (no return model) the list goes by value, highest first.
    `rows` holds `value`, `value_tier` and `reason_*` besides the leaver's keys; `playbook`
    maps a value tier to its play (action, owner, due_within_hours, cost)."""
    df = rows.reset_index(drop=True).copy()
    play = df["value_tier"].map(lambda t: playbook[t])
    df["action"] = [p.action for p in play]
    df["owner"] = [p.owner for p in play]
    df["due_within_hours"] = np.array([p.due_within_hours for p in play], dtype=int)
    df["cost"] = np.array([p.cost for p in play], dtype=float)
    value = df["value"].to_numpy(dtype=float)
    if p_offer is None or p_no_offer is None:
        df["p_return_offer"] = df["p_return_no_offer"] = df["expected_value"] = np.nan
        worth = np.ones(len(df), dtype=bool)
        key = value
    else:
        df["p_return_offer"] = np.round(np.asarray(p_offer, dtype=float), 4)
        df["p_return_no_offer"] = np.round(np.asarray(p_no_offer, dtype=float), 4)
        ev = np.asarray(p_offer, dtype=float) * value - df["cost"].to_numpy()
        df["expected_value"] = np.round(ev, 2)
        worth = ev > 0
        key = ev
    hours = pd.to_timedelta(df["due_within_hours"], unit="h")
    df["deadline"] = pd.Timestamp(scoring_date) + hours
    df.loc[~worth, ["action", "owner"]] = [no_offer_action, "none"]
    df.loc[~worth, "due_within_hours"] = 0
    df.loc[~worth, "deadline"] = pd.NaT
    df = df.assign(_skip=~worth, _key=key).sort_values(
        ["_skip", "_key", "value", "customer_id"],
        ascending=[True, False, False, True],
        kind="stable",
    )
    df["rank"] = np.arange(1, len(df) + 1)
    df["value"] = np.round(value[df.index], 2)
    return df.reset_index(drop=True)[LIST_COLUMNS]


def empty_list() -> pd.DataFrame:
    """The list with its columns and no row (no leavers, or data without events)."""
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in LIST_COLUMNS})
    floats = ["value", "p_return_offer", "p_return_no_offer", "expected_value", "cost"]
    return out.astype(
        {
            **dict.fromkeys(floats, float),
            "rank": int,
            "due_within_hours": int,
            "days_since_leaving": float,
            "left_date": "M8[ns]",
            "deadline": "M8[ns]",
        }
    )


# --- the list's control group and summary (exported by the segment stage) ---------------------

WINBACK_STRATA = ["value_tier"]
WINBACK_CONTROL_COLUMNS = ["campaign_id", "customer_id", "value_tier", "left_date", "group"]


def winback_campaign_id(configured: str | None, scoring_cutoff: pd.Timestamp | None) -> str:
    """winback.campaign_id, else from the scoring month (2026-11-01 -> "2026-11-winback")."""
    if configured:
        return configured
    if scoring_cutoff is None or pd.isna(scoring_cutoff):
        return WINBACK_KIND
    return f"{pd.Timestamp(scoring_cutoff):%Y-%m}-{WINBACK_KIND}"


def hold_out_leavers(
    wb: pd.DataFrame, share: float, campaign: str, seed: int, no_offer_action: str
) -> pd.DataFrame:
    """The list with `campaign_id` and `group`: the leavers worth an offer are treatment, or
    control for a seeded `share` of each value tier (`assign_groups`); control leavers keep
    their place and scores but get the control action, no owner, deadline or cost."""
    candidate = wb["action"].ne(no_offer_action).to_numpy()
    group = assign_groups(wb, candidate, share, campaign, seed, strata=WINBACK_STRATA)
    out = wb.copy()
    out["campaign_id"] = np.where(group != "", campaign, "").astype(object)
    out["group"] = group
    control = group == CONTROL
    out.loc[control, ["action", "owner"]] = [CONTROL_ACTION, "none"]
    out.loc[control, "due_within_hours"] = 0
    out.loc[control, "deadline"] = pd.NaT
    out.loc[control, "cost"] = 0.0
    return out


def winback_action_list(wb: pd.DataFrame) -> pd.DataFrame:
    """The list the team works: without the control group."""
    return wb[wb["group"] != CONTROL].reset_index(drop=True)


def winback_control_list(wb: pd.DataFrame) -> pd.DataFrame:
    """The held-out leavers, to log as win-back contacts with group "control"."""
    return wb.loc[wb["group"] == CONTROL, WINBACK_CONTROL_COLUMNS].reset_index(drop=True)


def winback_summary(wb: pd.DataFrame, no_offer_action: str) -> pd.DataFrame:
    """Per value tier: leavers, those offered, held out, not worth an offer, their value and
    expected win-back value."""
    tiers = ["platinum", "gold", "silver", "regular"]
    rows = []
    for tier in tiers:
        g = wb[wb["value_tier"] == tier]
        offered = g["group"].eq("treatment")
        rows.append(
            {
                "value_tier": tier,
                "leavers": len(g),
                "offered": int(offered.sum()),
                "control": int(g["group"].eq(CONTROL).sum()),
                "no_offer": int(g["action"].eq(no_offer_action).sum()),
                "value": round(float(g["value"].sum()), 2),
                "expected_value_offered": round(
                    float(g.loc[offered, "expected_value"].fillna(0).sum()), 2
                ),
                "offer_cost": round(float(g.loc[offered, "cost"].sum()), 2),
            }
        )
    return pd.DataFrame(rows)
