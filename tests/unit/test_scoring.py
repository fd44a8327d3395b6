"""The feature check of `churnlight score` and the summary page's tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnlight.models.scoring import (
    FeatureMismatchError,
    check_features,
    feature_kinds,
    trained_features,
)
from churnlight.models.scoring_page import actions_due, tier_counts
from churnlight.models.train import build_pipeline
from churnlight.pipelines.common import load_params

ROOT = Path(__file__).resolve().parents[2]

TRAINED = {"recency_days": "numeric", "plan": "categorical", "spend_90d": "numeric"}


def test_matching_features_pass():
    check_features(dict(TRAINED), TRAINED)


def test_every_missing_extra_and_retyped_feature_is_named():
    built = {"recency_days": "categorical", "spend_90d": "numeric", "region": "categorical"}
    with pytest.raises(FeatureMismatchError) as err:
        check_features(built, TRAINED)
    lines = str(err.value).splitlines()
    assert any(line.strip().startswith("missing") and "plan" in line for line in lines)
    assert any(line.strip().startswith("extra") and "region" in line for line in lines)
    assert any(
        "retyped" in line and "recency_days (trained numeric, now categorical)" in line
        for line in lines
    )
    assert not any("spend_90d" in line for line in lines)


def test_kinds_follow_dtypes_as_training_splits_them():
    df = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", None], "c": [1, 2]})
    assert feature_kinds(df, ["a", "b", "c", "absent"]) == {
        "a": "numeric",
        "b": "categorical",
        "c": "numeric",
    }


@pytest.mark.parametrize("kind", ["logreg", "tree", "lgbm"])
def test_trained_features_read_from_the_fitted_pipeline(kind):
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {
            "spend": rng.normal(size=60),
            "plan": rng.choice(["a", "b"], size=60).astype(object),
            "days": rng.integers(0, 30, size=60),
        }
    )
    y = (x["spend"] > 0).astype(int)
    params = load_params(ROOT / "params.yaml").train.hyperparameters(kind)
    pipe = build_pipeline(kind, ["spend", "days"], ["plan"], params, seed=0).fit(x, y)
    assert trained_features(pipe) == {"spend": "numeric", "plan": "categorical", "days": "numeric"}


def test_tier_counts_and_actions_due():
    seg = pd.DataFrame(
        {
            "risk_tier": ["high", "high", "medium", "low"],
            "group": ["treatment", "control", "treatment", ""],
            "churn_probability": [0.9, 0.8, 0.5, 0.1],
            "action": ["call", "Control: do not contact", "mail", "as usual"],
            "owner": ["sales", "none", "crm", "none"],
            "due_within_hours": [48, 0, 168, 0],
        }
    )
    counts = tier_counts(seg).set_index("risk_tier")
    assert counts.loc["high", "customers"] == 2 and counts.loc["high", "control"] == 1
    due = actions_due(seg, "none", pd.Timestamp("2026-08-03 09:00", tz="UTC"))
    assert due["action"].tolist() == ["call", "mail", "as usual"]
    assert due["due_by"].tolist() == ["2026-08-05 09:00", "2026-08-10 09:00", ""]
    assert actions_due(seg, "as usual", pd.Timestamp("2026-08-03", tz="UTC"))[
        "action"
    ].tolist() == ["call", "mail"]
