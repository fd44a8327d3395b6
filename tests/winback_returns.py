"""A constructed win-back world for the tests of issue 15, until the synthetic world has its
own returns: leavers of a world's tables come back (a transaction after cancel_date) with a
known probability that rises with value and with a win-back offer, falls with the days since
leaving, and is zero for leavers who moved away; the company's offers are logged as
`contacts` of kind "winback" with a 10% control group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def true_p_return(value_rank: np.ndarray, days: np.ndarray, offer: np.ndarray, moved: np.ndarray):
    """The constructed truth: P(return within 90 days of the cutoff)."""
    p = (0.05 + 0.35 * value_rank + 0.30 * offer) * (1 - days / 60)
    return np.where(moved, 0.0, np.clip(p, 0, 1))


def add_returns(
    tables: dict[str, pd.DataFrame],
    reasons: pd.Series | None,
    as_of: str,
    seed: int,
    lookback_days: int = 30,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Copies of `tables` with returns and win-back contacts added, and the truth per leaver
    (customer_id, cutoff, p_return, offer, returned). `reasons`: churn reason by customer_id
    ("moved" never returns)."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in tables.items()}
    cust = out["customers"].dropna(subset=["cancel_date"]).copy()
    cust["cancel_date"] = pd.to_datetime(cust["cancel_date"])
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    tx = out["transactions"]
    spend = tx.assign(ts=pd.to_datetime(tx["ts"])).groupby("customer_id")["amount"].sum()
    rank = spend.rank(pct=True).reindex(cust["customer_id"]).fillna(0).to_numpy()
    first = cust["cancel_date"].min().to_period("M").to_timestamp()
    rows, contacts, returns = [], [], []
    for k in pd.date_range(first, end, freq="MS"):
        since = k - pd.Timedelta(days=lookback_days)
        m = (cust["cancel_date"] < k) & (cust["cancel_date"] >= since)
        if not m.any():
            continue
        g = cust[m.to_numpy()]
        days = ((k - g["cancel_date"]) / pd.Timedelta(days=1)).to_numpy()
        control = rng.random(len(g)) < 0.1
        moved = (
            g["customer_id"].map(reasons).eq("moved").to_numpy()
            if reasons is not None
            else (np.zeros(len(g), bool))
        )
        p = true_p_return(rank[m.to_numpy()], days, (~control).astype(float), moved)
        back = rng.random(len(g)) < p
        when = k + pd.to_timedelta(rng.uniform(1, 85, len(g)), unit="D")
        each = zip(g["customer_id"], control, back, when, p, moved, strict=True)
        for cid, c, b, w, pr, mv in each:
            ts = k + pd.Timedelta(hours=float(rng.uniform(1, 40)))
            if ts < end:
                contacts.append(
                    {
                        "customer_id": cid,
                        "ts": ts,
                        "campaign_id": f"{k:%Y-%m}-winback",
                        "kind": "winback",
                        "group": "control" if c else "treatment",
                        "action": "" if c else "come-back offer",
                        "channel": "" if c else "phone",
                        "owner": "" if c else "marketing",
                        "cost": 0.0 if c else 5.0,
                    }
                )
            if b and w < end:
                returns.append({"customer_id": cid, "ts": w, "amount": 500.0})
            rows.append(
                {
                    "customer_id": cid,
                    "cutoff": k,
                    "p_return": pr,
                    "offer": int(not c),
                    "returned": bool(b),
                    "moved": bool(mv),
                }
            )
    if returns:
        extra = pd.DataFrame(returns)
        for col in tx.columns:
            if col not in extra:
                extra[col] = "service" if col == "category" else None
        out["transactions"] = pd.concat([tx, extra[tx.columns]], ignore_index=True)
    old = out.get("contacts")
    new = pd.DataFrame(contacts)
    out["contacts"] = new if old is None or old.empty else pd.concat([old, new], ignore_index=True)
    return out, pd.DataFrame(rows)
