"""Calibration that never makes things worse than none: none, Platt (sigmoid) or isotonic, chosen
per model on its out-of-fold scores by cross-fitted log loss.

Choosing on the same rows a calibrator was fitted on always favours isotonic (it memorises them),
so each method is scored on fold rows it did not see: on time-ordered folds, fitted on the older
folds' scores and scored on the next one (a calibrator must carry forward in time, as it will in
use); on random folds, fitted on the other folds. Ties, within `tie` of log loss, go to the simpler
method, and every probability stays inside [floor, 1 - floor], so no customer is ever "certain".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

METHODS = ("none", "sigmoid", "isotonic")  # simplest first: ties go to the earlier


class Calibrator:
    """Maps raw probabilities to calibrated ones: unchanged (`none`), Platt (sigmoid) on the
    log-odds, or isotonic; always clipped to [floor, 1 - floor]."""

    def __init__(self, method: str, floor: float = 1e-6):
        if method not in METHODS:
            raise ValueError(f"calibration must be one of {METHODS}, not {method!r}")
        self.method = method
        self.floor = floor

    def fit(self, p: np.ndarray, y: np.ndarray) -> Calibrator:
        p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=int)
        if self.method == "isotonic":
            self.model_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            self.model_.fit(p, y)
        elif self.method == "sigmoid":
            self.model_ = LogisticRegression().fit(_logit(p)[:, None], y)
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        if self.method == "isotonic":
            p = self.model_.predict(p)
        elif self.method == "sigmoid":
            p = self.model_.predict_proba(_logit(p)[:, None])[:, 1]
        return np.clip(p, self.floor, 1 - self.floor)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class CalibrationChoice:
    method: str
    log_loss: dict[str, float]  # cross-fitted log loss of every method tried
    rows: int  # out-of-fold rows the losses were measured on


def cross_fitted_log_loss(
    oof: pd.DataFrame, method: str, time_ordered: bool, floor: float
) -> tuple[float, int]:
    """Log loss of `method` on fold rows its calibrator did not see (`oof`: p, label, fold)."""
    folds = sorted(oof["fold"].unique())
    p_all, y_all = oof["p"].to_numpy(float), oof["label"].to_numpy(int)
    fold_of = oof["fold"].to_numpy()
    preds, ys = [], []
    for j in folds:
        fit_mask = fold_of < j if time_ordered else fold_of != j
        score_mask = fold_of == j
        if not fit_mask.any() or len(np.unique(y_all[fit_mask])) < 2:
            continue
        cal = Calibrator(method, floor).fit(p_all[fit_mask], y_all[fit_mask])
        preds.append(cal.transform(p_all[score_mask]))
        ys.append(y_all[score_mask])
    if not preds:
        return float("nan"), 0
    y, p = np.concatenate(ys), np.concatenate(preds)
    return float(log_loss(y, p, labels=[0, 1])), len(y)


def choose_calibration(
    oof: pd.DataFrame, methods: tuple[str, ...], time_ordered: bool, tie: float, floor: float
) -> CalibrationChoice:
    """The method with the lowest cross-fitted log loss, or a simpler one within `tie` of it.

    With a single fold (nothing to cross-fit on) or a single method, the simplest listed wins."""
    ordered = [m for m in METHODS if m in methods]
    losses: dict[str, float] = {}
    rows = 0
    for m in ordered:
        losses[m], rows = cross_fitted_log_loss(oof, m, time_ordered, floor)
    finite = {m: v for m, v in losses.items() if np.isfinite(v)}
    if not finite:
        return CalibrationChoice(ordered[0], losses, 0)
    best = min(finite.values())
    method = next(m for m in ordered if m in finite and finite[m] <= best + tie)
    return CalibrationChoice(method, losses, rows)
