"""Data shaped like real exports, not like our synthetic world: a telecom customer table (one row
per customer, a Yes/No churn column, no dates) and a retail purchase log (transactions only, many
one-time buyers, bursts around sales, a data gap, a long tail of spend).

The retail log follows the BG/NBD story (each customer buys at their own Poisson rate and may drop
out after any purchase), so the BTYD baseline has something to find, while the
skew and the one-time buyers are what real exports look like. Both are seeded; nothing is read
from disk or the network.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def telecom_customers(n: int = 600, seed: int = 11) -> pd.DataFrame:
    """A Telco-churn-like flat table whose churn follows tenure, contract and charges."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 73, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.5, 0.3, 0.2])
    charges = np.round(rng.uniform(20, 120, n), 2)
    logit = (
        -0.5
        - 0.05 * tenure
        + np.select([contract == "Month-to-month", contract == "One year"], [1.5, 0.0], -1.0)
        + 0.01 * (charges - 70)
    )
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "tenure_months": tenure,
            "monthly_charges": charges,
            "contract": contract,
            "churn": np.where(churn, "Yes", "No"),
        }
    )


RETAIL_START = pd.Timestamp("2023-01-01")
RETAIL_END = pd.Timestamp("2024-12-31")  # the log's last day (as_of)
RETAIL_GAP = (pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-17"))  # an export outage


def retail_log(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """A transaction-only purchase log: customer_id, ts, amount, category.

    Customers arrive over the first 18 months. Each buys at a gamma-distributed rate and drops
    out after a purchase with a beta-distributed chance (so about a third buy once and never
    again); November sales triple the rate for two weeks; two weeks of March 2024 are missing
    from the export; spend per basket is lognormal around a gamma-distributed customer mean, so
    a few customers carry much of the revenue.
    """
    rng = np.random.default_rng(seed)
    days = (RETAIL_END - RETAIL_START).days + 1
    first = rng.integers(0, 540, n)
    rate = rng.gamma(0.6, 1 / 12.0, n)  # purchases a day: mean one every 20 days, very skewed
    drop = rng.beta(1.0, 2.5, n)  # chance to drop out after each purchase
    mean_spend = rng.gamma(1.2, 60.0, n) + 5.0
    day_index = np.arange(days)
    dates = RETAIL_START + pd.to_timedelta(day_index, unit="D")
    burst = np.where((dates.month == 11) & (dates.day >= 15), 3.0, 1.0)
    burst_cum = np.concatenate([[0.0], np.cumsum(burst)])  # sale days count three times
    rows_c, rows_d = [], []
    for c in range(n):
        t = first[c]
        while t < days:
            rows_c.append(c)
            rows_d.append(t)
            if rng.random() < drop[c]:
                break
            # the next purchase after an exponential wait in "burst time"
            target = burst_cum[t + 1] + rng.exponential(1 / max(rate[c], 1e-4))
            t = int(np.searchsorted(burst_cum, target, side="left"))
    cust = np.asarray(rows_c)
    day = np.asarray(rows_d)
    seconds = rng.integers(8 * 3600, 22 * 3600, len(day))
    ts = RETAIL_START + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")
    amount = np.round(mean_spend[cust] * rng.lognormal(-0.18, 0.6, len(cust)), 2)
    log = pd.DataFrame(
        {
            "customer_id": [f"R{c:05d}" for c in cust],
            "ts": ts,
            "amount": amount,
            "category": rng.choice(["grocery", "home", "apparel", "toys"], len(cust)),
        }
    )
    in_gap = (log["ts"] >= RETAIL_GAP[0]) & (log["ts"] < RETAIL_GAP[1] + pd.Timedelta(days=1))
    return log[~in_gap].sort_values(["ts", "customer_id"], kind="stable").reset_index(drop=True)
