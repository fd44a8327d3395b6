"""Calibration is chosen on fold rows the calibrator did not see, ties go to the simpler method,
and no probability is ever 0 or 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnlight.models.calibration import Calibrator, choose_calibration, cross_fitted_log_loss

ALL = ("none", "sigmoid", "isotonic")


def _oof(p_true: np.ndarray, p_model: np.ndarray, folds: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(len(p_true)) < p_true).astype(int)
    return pd.DataFrame(
        {"p": p_model, "label": y, "fold": np.repeat(np.arange(folds), len(y) // folds)}
    )


def _risk(n: int, seed: int) -> np.ndarray:
    return 1 / (1 + np.exp(-np.random.default_rng(seed).normal(-1.5, 1.2, n)))


@pytest.mark.parametrize("time_ordered", [True, False])
def test_already_calibrated_scores_keep_none(time_ordered):
    p = _risk(30_000, 1)
    choice = choose_calibration(_oof(p, p, 3, 2), ALL, time_ordered, tie=0.001, floor=0.001)
    assert choice.method == "none"
    assert set(choice.log_loss) == set(ALL)


def test_overconfident_scores_get_calibrated():
    p = _risk(30_000, 3)
    logit = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-3 * logit))  # right order, far too extreme
    choice = choose_calibration(_oof(p, overconfident, 3, 4), ALL, True, tie=0.001, floor=0.001)
    assert choice.method in ("sigmoid", "isotonic")
    assert choice.log_loss[choice.method] < choice.log_loss["none"] - 0.01


def test_ties_go_to_the_simpler_method():
    p = _risk(30_000, 5)
    oof = _oof(p, 1 / (1 + np.exp(-1.05 * np.log(p / (1 - p)))), 3, 6)  # barely off
    loose = choose_calibration(oof, ALL, True, tie=1.0, floor=0.001)
    assert loose.method == "none"
    strict = choose_calibration(oof, ALL, True, tie=0.0, floor=0.001)
    best = min(strict.log_loss, key=strict.log_loss.get)
    assert strict.method == best


def test_the_choice_is_scored_on_rows_the_calibrator_never_saw():
    """Isotonic fitted and scored on the same rows always looks best; cross-fitted it does not
    beat the truth on random noise."""
    rng = np.random.default_rng(7)
    n = 6000
    oof = pd.DataFrame(
        {"p": rng.random(n), "label": rng.integers(0, 2, n), "fold": np.repeat([0, 1, 2], n // 3)}
    )
    in_sample = Calibrator("isotonic").fit(oof["p"], oof["label"]).transform(oof["p"])
    crossed, rows = cross_fitted_log_loss(oof, "isotonic", time_ordered=True, floor=0.001)
    assert rows == 4000  # folds 1 and 2, each from the folds before it
    assert crossed > -np.mean(
        oof["label"] * np.log(in_sample) + (1 - oof["label"]) * np.log(1 - in_sample)
    )


@pytest.mark.parametrize("method", ALL)
def test_probabilities_stay_strictly_inside_zero_and_one(method):
    p = np.r_[np.zeros(50), np.ones(50), np.linspace(0, 1, 100)]
    y = np.r_[np.zeros(50), np.ones(50), (np.linspace(0, 1, 100) > 0.5)].astype(int)
    out = Calibrator(method, floor=0.001).fit(p, y).transform(p)
    assert out.min() >= 0.001 and out.max() <= 0.999


def test_a_single_fold_cannot_cross_fit_so_the_simplest_wins():
    p = _risk(2000, 8)
    oof = _oof(p, p, 1, 9)
    choice = choose_calibration(oof, ("sigmoid", "isotonic"), True, tie=0.001, floor=0.001)
    assert choice.method == "sigmoid" and choice.rows == 0


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="calibration must be one of"):
        Calibrator("beta")


@pytest.mark.parametrize("method", ALL)
def test_calibration_never_changes_the_order_of_customers(method):
    """Isotonic's flat steps would tie customers the model tells apart and reorder the list at
    the capacity cut; every method must keep the raw order exactly above the floor."""
    rng = np.random.default_rng(3)
    p = _risk(20_000, 4)
    y = (rng.random(len(p)) < np.clip(p * 2, 0, 1)).astype(int)  # far off: big isotonic steps
    cal = Calibrator(method, floor=0.001).fit(p[:10_000], y[:10_000])
    q = cal.transform(p)
    if method == "isotonic":
        assert len(np.unique(cal.model_.predict(p))) < len(p) / 10  # the steps are really there
    order = np.argsort(p, kind="stable")
    inside = (q[order][1:] > 0.001) & (q[order][1:] < 0.999)  # clipping ties the floor only
    assert inside.mean() > 0.99
    assert (np.diff(q[order])[inside] > 0).all()
    assert (q > 0).all() and (q < 1).all()
