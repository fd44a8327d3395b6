"""Market shocks per region and industry and month: competitor launches, policy changes,
downturns and the industry index, plus the `market` raw table that shows them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlight.features.synthetic.config import WorldConfig


def simulate_market(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Monthly shocks: (region or industry, month) arrays of flags, the index and the months a
    launch (3) or a policy shock (6) keeps pushing customers after it fires."""
    t_n, n_r, n_k = cfg.months, len(cfg.regions), len(cfg.industries)
    launch = rng.random((n_r, t_n)) < cfg.competitor_launch_rate
    policy = rng.random((n_k, t_n)) < cfg.policy_shock_rate
    downturn_start = rng.random((n_k, t_n)) < cfg.downturn_rate
    downturn_len = rng.integers(3, 9, size=(n_k, t_n))
    downturn = np.zeros((n_k, t_n), dtype=bool)
    for k, t in zip(*np.nonzero(downturn_start), strict=True):
        downturn[k, t : t + downturn_len[k, t]] = True
    growth = 0.003 + 0.008 * rng.standard_normal((n_k, t_n)) - 0.03 * downturn
    index = 100.0 * np.cumprod(1.0 + growth, axis=1)
    return {
        "launch": launch,
        "policy": policy,
        "downturn": downturn,
        "index": index,
        "launch_effect": _recent(launch, 3),
        "policy_effect": _recent(policy, 6),
    }


def _recent(flags: np.ndarray, months: int) -> np.ndarray:
    """True where a flag fired in this month or the `months - 1` before."""
    t_n = flags.shape[1]
    out = np.zeros_like(flags)
    for lag in range(months):
        out[:, lag:] |= flags[:, : t_n - lag]
    return out


def market_table(cfg: WorldConfig, shocks: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per month, region and industry: the industry index and the month's shocks."""
    t_n, n_r, n_k = cfg.months, len(cfg.regions), len(cfg.industries)
    t, r, k = np.meshgrid(np.arange(t_n), np.arange(n_r), np.arange(n_k), indexing="ij")
    t, r, k = t.ravel(), r.ravel(), k.ravel()
    return pd.DataFrame(
        {
            "month": pd.date_range(cfg.start_ts, periods=t_n, freq="MS")[t],
            "region": np.array(cfg.regions)[r],
            "industry": np.array(cfg.industries)[k],
            "industry_index": np.round(shocks["index"][k, t], 3),
            "competitor_launch": shocks["launch"][r, t].astype(np.int8),
            "policy_shock": shocks["policy"][k, t].astype(np.int8),
        }
    )
