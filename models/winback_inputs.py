"""What the win-back evaluation needs, from the tables the campaigns stage reads: the contact log
split by kind, each leaver's value and value tier at its snapshots, the day each left, whether
the data shows any return at all; and `judge_winback`, which runs the evaluation with params.yaml's
settings and logs its line. Pure functions: DataFrames in, DataFrames out.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from churnlight.features.params import Params
from churnlight.models.value import customer_value, value_tiers
from churnlight.models.winback import query_frames
from churnlight.models.winback_campaigns import KIND, evaluate_winback, what_is_missing

log = logging.getLogger("churnlight.campaigns")


def split_kinds(contacts: pd.DataFrame, kinds: tuple[str, ...]) -> tuple[pd.DataFrame, ...]:
    """The retention log and the win-back log (judged on their own, per value tier) when
    `winback` is among campaigns.kinds; else every contact stays in the first."""
    if KIND not in kinds or "kind" not in contacts:
        return contacts, contacts.iloc[0:0]
    is_winback = (contacts["kind"].astype(object) == KIND).to_numpy(dtype=bool)
    return contacts[~is_winback], contacts[is_winback]


def campaigns_table(retention: pd.DataFrame, winback: pd.DataFrame) -> pd.DataFrame:
    """reports/campaigns.csv: the retention rows, then the win-back rows, every column of
    both (a `kind` column first says which)."""
    cols = ["kind", *retention.columns]
    cols += [c for c in winback.columns if c not in cols]
    frames = [f for f in (retention.assign(kind="retention"), winback) if len(f)]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True).reindex(columns=cols)


def snapshot_values(
    df: pd.DataFrame,
    ids: set[str],
    value_column: str | None,
    multiplier: float,
    scoring: str,
    tiers: dict[str, int],
) -> pd.DataFrame:
    """Value and value tier of the `ids` customers' snapshot rows, tiers cut within each
    cutoff's whole snapshot as the segment stage cuts them."""
    value = customer_value(df, value_column, multiplier)
    tier = value_tiers(df, value, scoring, tiers, by="cutoff")
    out = pd.DataFrame(
        {
            "customer_id": df["customer_id"].astype(str).to_numpy(),
            "cutoff": df["cutoff"].to_numpy(),
            "value": np.nan if value is None else value,
            "value_tier": tier,
        }
    )
    return out[out["customer_id"].isin(ids)]


def left_dates(
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    customers: pd.DataFrame | None,
    churn_definition: str,
    inactivity_days: int,
) -> pd.Series | None:
    """customer_id -> the day each contacted leaver left: its cancel_date, or under the
    inactivity definition its last own event before the contact + inactivity_days."""
    if churn_definition == "cancellation":
        if customers is None or "cancel_date" not in customers:
            return None
        ids = customers["customer_id"].astype(str)
        return customers.set_index(ids)["cancel_date"].dropna()
    c = contacts.assign(
        customer_id=contacts["customer_id"].astype(str),
        ts=pd.to_datetime(contacts["ts"]).astype("datetime64[ns]"),
    ).sort_values("ts")
    e = events.assign(
        customer_id=events["customer_id"].astype(str),
        last=pd.to_datetime(events["ts"]).astype("datetime64[ns]"),
    )[["customer_id", "last"]].sort_values("last")
    m = pd.merge_asof(c, e, left_on="ts", right_on="last", by="customer_id", direction="backward")
    left = m["last"] + pd.Timedelta(days=inactivity_days)
    return pd.Series(left.to_numpy(), index=m["customer_id"]).groupby(level=0).min().dropna()


def returns_seen(customers: pd.DataFrame | None, events: pd.DataFrame) -> int | None:
    """How many customers have an own event after their cancel_date's day (came back); None
    when the data has no cancel dates (the inactivity definition has no fixed leaving day).
    Counted by DuckDB on the frames as they are: no copy of the events (issue 17)."""
    if customers is None or "cancel_date" not in customers:
        return None
    if not len(events):
        return 0
    cancel = customers.loc[customers["cancel_date"].notna(), ["customer_id", "cancel_date"]]
    cancel = pd.DataFrame(
        {
            "customer_id": cancel["customer_id"].astype(str).to_numpy(),
            "back_from": pd.to_datetime(cancel["cancel_date"]).dt.normalize().astype("M8[ns]")
            + pd.Timedelta(days=1),
        }
    )
    found = query_frames(
        """
        SELECT COUNT(DISTINCT e.customer_id) AS n FROM events e JOIN cancel c
          ON CAST(e.customer_id AS VARCHAR) = c.customer_id
         AND CAST(e.ts AS TIMESTAMP) >= c.back_from
        """,
        events=events[["customer_id", "ts"]],
        cancel=cancel,
    )
    return int(found["n"].iloc[0])


def judge_winback(
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    customers: pd.DataFrame | None,
    snapshots: pd.DataFrame,
    params: Params,
    *,
    scoring: str,
    data_end: pd.Timestamp,
    truth: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The win-back evaluation under params.yaml (campaigns, features, data sections) on the
    stage's tables: `events` own events, `customers` with cancel_date, `snapshots` the
    features; `scoring` the resolved segment.rfm_scoring. Logs one line."""
    cp, fp, dp = params.campaigns, params.features, params.data
    values, left = pd.DataFrame(columns=["customer_id", "cutoff", "value", "value_tier"]), None
    ids = set(contacts["customer_id"].astype(str))
    # only the contacted leavers' events matter to them (at 1M customers, tens of millions of
    # rows otherwise copied as they are compared)
    mine = events[events["customer_id"].astype(str).isin(ids)] if len(events) else events
    if len(contacts):
        tiers = dict(fp.rfm.tiers)
        values = snapshot_values(
            snapshots, ids, dp.value_column, dp.value_multiplier, scoring, tiers
        )
        left = left_dates(contacts, mine, customers, fp.churn_definition, fp.inactivity_days)
    table, summary = evaluate_winback(
        contacts,
        mine,
        values,
        data_end=data_end,
        window_days=params.winback.window_days,
        bootstrap=cp.bootstrap,
        confidence=cp.confidence,
        seed=params.base.seed,
        targets=dict(cp.targets.winback_rate),
        roi_target=cp.targets.winback_roi_target,
        min_group=cp.min_group,
        left_date=left,
        truth=truth,
    )
    summary["returns_seen"] = returns_seen(customers, events)
    summary["missing"] = what_is_missing(bool(len(contacts)), summary["returns_seen"] != 0)
    _log(summary)
    return table, summary


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _log(summary: dict) -> None:
    if summary.get("status") != "evaluated":
        log.info("win-back: %s", summary.get("missing") or summary.get("message"))
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
