"""The train stage's library: hyperparameters come from params.yaml only, early stopping follows
`train.early_stopping_rounds`, and the champion is the best on the primary metric.

Small seeded tables; no MLflow and no Optuna storage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from churnlight.models import tune as tune_module
from churnlight.models.selection import TuningSpec, pick_champion, train_candidate
from churnlight.models.train import HYPERPARAMETERS, MODEL_NAMES, build_pipeline
from churnlight.models.tune import Fold, fit_fold

ROOT = Path(__file__).resolve().parents[2]
TRAIN: dict = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["train"]
FEATURES = ["a", "b", "plan"]


def _table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "plan": pd.Series(rng.choice(["basic", "plus"], n), dtype="str"),
            "cutoff": pd.Timestamp("2026-01-01"),
            "customer_id": [f"C{i:04d}" for i in range(n)],
        }
    )
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-(df["a"] - 1.5)))).astype(int)
    return df


@pytest.mark.parametrize("kind", MODEL_NAMES)
def test_params_yaml_gives_every_hyperparameter(kind):
    assert set(HYPERPARAMETERS[kind]) <= set(TRAIN[kind])
    build_pipeline(kind, ["a", "b"], ["plan"], TRAIN[kind], seed=0)


def test_a_missing_hyperparameter_is_named():
    params = {k: v for k, v in TRAIN["lgbm"].items() if k != "reg_lambda"}
    with pytest.raises(KeyError, match=r"train\.lgbm has no reg_lambda"):
        build_pipeline("lgbm", ["a", "b"], ["plan"], params, seed=0)


@pytest.mark.parametrize("rounds", [2, 7])
def test_lightgbm_stops_after_the_given_rounds_without_improvement(rounds):
    df = _table()
    params = {**TRAIN["lgbm"], "n_estimators": 600, "learning_rate": 0.2}
    pipe, best = fit_fold("lgbm", params, df.iloc[:400], df.iloc[400:], FEATURES, 0, rounds)
    model = pipe.named_steps["model"]
    evaluated = len(next(iter(model.evals_result_.values()))["binary_logloss"])
    assert best is not None and evaluated < 600
    assert evaluated - best == rounds


def test_early_stopping_on_a_fold_needs_its_rounds():
    df = _table()
    with pytest.raises(ValueError, match="early_stopping_rounds"):
        fit_fold("lgbm", TRAIN["lgbm"], df.iloc[:400], df.iloc[400:], FEATURES, 0)


def test_train_candidate_passes_early_stopping_rounds_to_every_fold(monkeypatch):
    seen = []

    def spy(*args, **kwargs):
        seen.append(args[6] if len(args) > 6 else kwargs.get("early_stopping_rounds"))
        return fit_fold(*args, **kwargs)

    monkeypatch.setattr(tune_module, "fit_fold", spy)
    df = _table()
    idx = np.arange(len(df))
    folds = [Fold(idx[:300], idx[300:450], df["cutoff"].iloc[0])]
    spec = TuningSpec(
        base={**TRAIN["lgbm"], "n_estimators": 50},
        space={"num_leaves": [7, 15]},
        n_trials=2,
        timeout_s=600,
        early_stopping_rounds=13,
        calibration=("none", "sigmoid", "isotonic"),
        calibration_tie=0.001,
        probability_floor=0.001,
    )
    cand = train_candidate("lgbm", df, folds, FEATURES, spec, seed=0, capacity=0.1)
    with_valid = [r for r in seen if r is not None]
    assert with_valid and set(with_valid) == {13}
    assert cand.best_params["n_estimators"] <= 50
    assert set(cand.cv) >= {"pr_auc", "ece", "ece_uncalibrated"}


def test_pick_champion_higher_or_lower_is_better_and_ties_go_to_the_first():
    cv = {
        "rules": {"pr_auc": 0.30, "log_loss": 0.50},
        "logreg": {"pr_auc": 0.40, "log_loss": 0.45},
        "tree": {"pr_auc": 0.40, "log_loss": 0.60},
        "lgbm": {"pr_auc": 0.35, "log_loss": 0.40},
    }
    kinds = ["logreg", "tree", "lgbm"]
    choice = pick_champion(cv, kinds, "pr_auc")
    assert (choice.champion, choice.beats_rules) == ("logreg", True)
    assert (choice.score, choice.rules_score) == (0.40, 0.30)
    assert pick_champion(cv, kinds, "log_loss").champion == "lgbm"
    worse = {**cv, "rules": {"pr_auc": 0.9, "log_loss": 0.1}}
    assert not pick_champion(worse, kinds, "pr_auc").beats_rules
    assert not pick_champion(worse, kinds, "log_loss").beats_rules
