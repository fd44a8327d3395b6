"""Behavioural tests on the default world, run once through every stage with the project's own
params.yaml (20,000 customers, 24 months; about 3 minutes on two cores).

Two kinds of promise. The product's: close to the oracle, better than the rules, better
calibrated after calibration, LightGBM ahead of the linear model, the planted drivers on top.
And the code's: every output equals the recorded reference (tests/reference/default_world.json:
rows, per column the count and sum or a digest of the text), so a refactoring that moves code
changes no result, and the same seed gives the same numbers. A change meant to move results
records a new reference (`dvc repro`, then `python -m tests.reference.fingerprint . >
tests/reference/default_world.json`) and says why in its commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from campaign_truth import check_against_truth  # tests/ is on sys.path (rootdir)
from reference.fingerprint import compare, fingerprint  # tests/ is on sys.path (rootdir)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "reference" / "default_world.json"
# Logistic regression's solver sums in BLAS, whose kernels differ between processors: its
# metrics moved by 2.4e-12 (relative) between two machines with the same packages. Counts,
# categories and text are compared exactly.
REL = 1e-9
pytestmark = pytest.mark.slow


def _params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["base"]["log_level"] = "WARNING"
    # trial counts, not the clock, end tuning (the reference finished every trial): reproducible
    params["train"]["timeout_s"] = 100_000
    params["report"]["screenshot"] = False  # a rendering of the card, not a result
    return params


@pytest.fixture(scope="module")
def world_run(tmp_path_factory, run_stages) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("default_world")
    run_stages(root, _params())
    return root, json.loads((root / "reports" / "metrics.json").read_text())


def test_every_output_equals_the_reference(world_run):
    root, _ = world_run
    differences = compare(fingerprint(root), json.loads(REFERENCE.read_text()), rel=REL)
    assert differences == [], "\n".join(differences[:40])


# Since issue 14 the world's company acts: its old process contacts the customers it sees at risk,
# and rows a contact changed leave training and the test (train.treated_rows: exclude). What is
# left to predict is the risk nobody acted on, harder for the oracle too (ROC-AUC 0.83 -> 0.73 on
# the default world) and for models that no longer learn from the flagged quarter of the rows:
# the champion's share of the oracle fell from 0.95 to 0.94. The bar is 93% here, with the
# measured figures in the issue-14 note.
ORACLE_SHARE = 0.93


def test_champion_reaches_most_of_the_oracle(world_run):
    """The champion is picked on the tuning folds, never on the test rows, so a failure shows
    the fold scores: was the pick or the model worse?"""
    root, m = world_run
    cv = json.loads((root / "data" / "artifacts" / "models" / "train_report.json").read_text())[
        "cv"
    ]
    folds = {k: round(v["pr_auc"], 4) for k, v in cv.items()}
    ratio = m["champion_oracle_ratio"]
    assert ratio >= ORACLE_SHARE, (m["champion"], ratio, folds)


def test_lightgbm_reaches_most_of_the_oracle(world_run):
    _, m = world_run
    assert m["lgbm"]["roc_auc"] / m["oracle"]["roc_auc"] >= ORACLE_SHARE, m["lgbm"]["roc_auc"]


def test_oracle_difficulty_is_realistic(world_run):
    _, m = world_run
    assert 0.70 <= m["oracle"]["roc_auc"] <= 0.92  # on the rows no contact changed


def test_lightgbm_beats_logistic_regression(world_run):
    _, m = world_run
    assert m["lgbm"]["roc_auc"] > m["logreg"]["roc_auc"]


def test_champion_beats_the_rules_at_capacity(world_run):
    _, m = world_run
    champ = m["champion"]
    assert m[champ]["recall_at_capacity"] > m["rules"]["recall_at_capacity"] + 0.05
    assert m["champion_beats_rules"] is True


def test_rules_catch_a_realistic_share(world_run):
    _, m = world_run
    assert 0.2 <= m["rules"]["recall_at_capacity"] <= 0.45


def test_calibration_never_raises_ece(world_run):
    _, m = world_run
    champ = m["champion"]
    assert m[champ]["ece"] <= m[champ]["ece_uncalibrated"]


def test_planted_drivers_rank_on_top(world_run):
    """The world makes leavers write vague replies, log in less and score NPS lower."""
    root, _ = world_run
    imp = pd.read_csv(root / "reports" / "importance_by_model.csv")
    imp = imp[imp["model"] == "lgbm"].sort_values("mean_abs_shap", ascending=False)
    top = set(imp["name"].head(12))
    assert "vague_replies_90d" in top
    assert top & {"login_30d", "activity_30d_vs_baseline", "activity_recency_days"}
    fam = imp.groupby("family")["mean_abs_shap"].sum()
    fam = fam / fam.sum()
    assert fam["behaviour"] > fam["external"]
    assert fam["attitude"] > 0.1


def test_estimated_uplift_covers_the_truth(world_run):
    """Issue 14: the campaigns stage's uplift beside the world's true uplift (a second seed in
    test_campaign_truth.py)."""
    root, _ = world_run
    check_against_truth(pd.read_csv(root / "reports" / "campaigns.csv"))
