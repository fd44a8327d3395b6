"""Customer value and value tiers: quintiles of the customer base fill every tier on skewed,
real-shaped spend; fixed thresholds keep the features' own tier; no value is invented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnlight.models.value import (
    ValueColumnError,
    customer_value,
    quintile_score,
    value_columns,
    value_tiers,
)
from tests.shapes import RETAIL_END, retail_log
from tests.unit.helpers import FEATURE_PARAMS

TIERS = dict(FEATURE_PARAMS.rfm.tiers)


def _retail_customers() -> pd.DataFrame:
    """Per-customer recency, frequency and yearly spend of the retail log at its end."""
    log = retail_log()
    end = RETAIL_END + pd.Timedelta(days=1)
    year = log[log["ts"] >= end - pd.Timedelta(days=365)]
    out = pd.DataFrame(
        {
            "recency_days": (end - log.groupby("customer_id")["ts"].max()).dt.days,
            "frequency_per_year": year.groupby("customer_id").size(),
            "monetary_per_year": year.groupby("customer_id")["amount"].sum(),
        }
    ).fillna(0)
    return out.reset_index()


def test_every_tier_populated_on_skewed_real_shaped_spend():
    df = _retail_customers()
    spend = df["monetary_per_year"]
    assert spend.quantile(0.99) > 10 * spend[spend > 0].median()  # a long tail
    assert (df["frequency_per_year"] <= 1).mean() > 0.4  # many one-time or lapsed buyers
    value = customer_value(df, None, 1)
    tiers = pd.Series(value_tiers(df, value, "quantile", TIERS))
    counts = tiers.value_counts()
    assert set(counts.index) == {"platinum", "gold", "silver", "regular"}, counts.to_dict()
    assert counts.min() >= 0.03 * len(df)
    median = pd.Series(value).groupby(tiers).median()
    assert median["platinum"] > median["gold"] > median["regular"]


def test_value_alone_gives_quintile_tiers():
    """A flat table with only a value column: the top fifth platinum, the next gold, the next
    silver, the bottom two fifths regular."""
    df = pd.DataFrame({"monthly_charges": np.linspace(20, 120, 100)})
    value = customer_value(df, "monthly_charges", 12)
    assert value[-1] == pytest.approx(1440.0)
    tiers = pd.Series(value_tiers(df, value, "quantile", TIERS)).value_counts()
    assert tiers.to_dict() == {"regular": 40, "platinum": 20, "gold": 20, "silver": 20}


def test_quantile_tiers_are_per_cutoff():
    """Each cutoff's customers are scored against their own base, not against later ones."""
    spend = np.r_[np.arange(50.0), np.arange(50) * 1000.0]  # the later base spends far more
    df = pd.DataFrame({"cutoff": np.repeat(["a", "b"], 50), "monetary_per_year": spend})
    tiers = value_tiers(df, customer_value(df, None, 1), "quantile", TIERS, by="cutoff")
    assert list(tiers[:50]) == list(tiers[50:])


def test_ties_share_a_score_and_lower_recency_is_better():
    assert quintile_score(pd.Series([0, 0, 0, 0, 10]), True).tolist() == [3, 3, 3, 3, 5]
    assert quintile_score(pd.Series([1, 400]), False).tolist() == [5, 3]


def test_fixed_keeps_the_features_tier():
    df = pd.DataFrame({"value_tier": ["gold", None, "platinum"], "monetary_per_year": [1, 2, 3]})
    assert list(value_tiers(df, np.ones(3), "fixed", TIERS)) == ["gold", "regular", "platinum"]


def test_nothing_to_tell_customers_apart_is_all_regular():
    df = pd.DataFrame({"monetary_per_year": np.zeros(10)})
    assert set(value_tiers(df, customer_value(df, None, 1), "quantile", TIERS)) == {"regular"}


def test_no_value_is_invented_and_a_wrong_column_is_named():
    df = pd.DataFrame({"logins": [1, 2], "tenure": [3.0, 4.0]})
    assert customer_value(df, None, 1) is None
    with pytest.raises(ValueColumnError, match=r"'charges'.*tenure"):
        customer_value(df, "charges", 12)


@pytest.mark.parametrize("scoring", ["quantile", "fixed"])
@pytest.mark.parametrize("column", [None, "monthly_charges"])
def test_value_columns_are_all_that_value_and_tiers_read(scoring, column):
    # the campaigns stage reads only these columns of the snapshots (issue 17): the values and
    # tiers must be those of the whole table
    rng = np.random.default_rng(7)
    n = 900
    df = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "cutoff": pd.to_datetime("2026-01-01") + pd.to_timedelta(30 * (np.arange(n) % 3), "D"),
            "recency_days": rng.integers(0, 400, n),
            "frequency_per_year": rng.poisson(3, n).astype(float),
            "monetary_per_year": rng.lognormal(5, 1.5, n),
            "monthly_charges": rng.uniform(20, 120, n),
            "value_tier": rng.choice(["platinum", "gold", "silver", None], n),
            "login_30d": rng.poisson(4, n),
        }
    )
    narrow = df[[c for c in value_columns(column) if c in df]]
    assert "login_30d" not in narrow
    want = customer_value(df, column, 12)
    got = customer_value(narrow, column, 12)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        value_tiers(narrow, got, scoring, TIERS, by="cutoff"),
        value_tiers(df, want, scoring, TIERS, by="cutoff"),
    )
