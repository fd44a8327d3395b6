"""Behavioural tests: on the synthetic world the models find what the world planted.

The default world (20,000 customers, 24 months) goes through the real stages once;
the assertions are the product's promises: close to the oracle, better than the rules, better
calibrated after calibration, LightGBM ahead of the linear model, the planted drivers on top.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnlight.pipelines import evaluate, explain, features, generate, train, validate

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["base"]["log_level"] = "WARNING"
    params["generate"]["n_customers"] = 20_000
    params["train"]["n_trials"] = {"logreg": 4, "tree": 4, "lgbm": 8}
    params["train"]["timeout_s"] = 600  # trial counts, not the clock, end tuning: reproducible
    params["explain"]["global_sample"] = 1000
    return params


def _run(root: Path, params: dict, stages: tuple[str, ...]) -> None:
    raw, interim, processed = root / "raw", root / "interim", root / "processed"
    models, reports = root / "models", root / "reports"
    if "generate" in stages:
        generate.run(raw, params["generate"], seed=params["base"]["seed"])
        validate.run(raw, interim, validate.resolve_as_of({}, raw))
        features.run(interim, processed, params)
    train.run(processed, models, root / "tuning", params)
    evaluate.run(processed, models, reports, params, raw / "_truth")
    if "explain" in stages:
        explain.run(processed, models, reports, root / "explanations.parquet", params)


@pytest.fixture(scope="module")
def world_run(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("model")
    params = _params()
    _run(root, params, ("generate", "explain"))
    return root, json.loads((root / "reports" / "metrics.json").read_text())


def test_champion_reaches_95_percent_of_the_oracle(world_run):
    """The issue's promise. The champion is picked on the tuning folds, never on the test rows,
    so a failure shows the fold scores: was the pick or the model worse?"""
    root, m = world_run
    cv = json.loads((root / "models" / "train_report.json").read_text())["cv"]
    folds = {k: round(v["pr_auc"], 4) for k, v in cv.items()}
    assert m["champion_oracle_ratio"] >= 0.95, (m["champion"], m["champion_oracle_ratio"], folds)


def test_lightgbm_reaches_95_percent_of_the_oracle(world_run):
    _, m = world_run
    assert m["lgbm"]["roc_auc"] / m["oracle"]["roc_auc"] >= 0.95, m["lgbm"]["roc_auc"]


def test_oracle_difficulty_is_realistic(world_run):
    _, m = world_run
    assert 0.80 <= m["oracle"]["roc_auc"] <= 0.92


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


def test_calibration_lowers_ece(world_run):
    _, m = world_run
    champ = m["champion"]
    assert m[champ]["ece"] < m[champ]["ece_uncalibrated"]


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


def test_same_seed_same_metrics(world_run, tmp_path):
    """Training and evaluating again from the same features gives the same numbers."""
    root, first = world_run
    params = _params()
    again = tmp_path / "again"
    again.mkdir()
    (again / "processed").symlink_to(root / "processed")
    (again / "raw").symlink_to(root / "raw")
    _run(again, params, ())
    second = json.loads((again / "reports" / "metrics.json").read_text())
    for name in ("logreg", "tree", "lgbm", "rules"):
        assert second[name] == pytest.approx(first[name], abs=1e-9), name
