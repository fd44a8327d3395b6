"""Calibration that never makes things worse than none: none, Platt (sigmoid) or isotonic, chosen
per model on its out-of-fold scores by cross-fitted log loss.

Choosing on the same rows a calibrator was fitted on always favours isotonic (it memorises them),
so each method is scored on fold rows it did not see: on time-ordered folds, fitted on the older
folds' scores and scored on the next one (a calibrator must carry forward in time, as it will in
use); on random folds, fitted on the other folds. Ties, within `tie` of log loss, go to the simpler
method (a more complex one must win by more than the tie and two standard errors), and every
probability stays inside [floor, 1 - floor], so no customer is ever "certain".

Calibration changes probabilities, never the order of customers: isotonic regression's flat steps
would tie customers the model tells apart (LightGBM's PR-AUC on the default world's test cutoff
was 0.533 with the ties, 0.545 without), so it gets a slope of `ISOTONIC_SLOPE` within its steps
and is squeezed, not clipped, into the bounds (the other methods are clipped, which ties only
customers below the floor). The list a calibrated model makes is the raw model's list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

METHODS = ("none", "sigmoid", "isotonic")  # simplest first: ties go to the earlier
# Added slope (probability per unit of raw score) that makes isotonic strictly increasing: far
# below any difference a probability is read at, far above float resolution.
ISOTONIC_SLOPE = 1e-6


class Calibrator:
    """Maps raw probabilities to calibrated ones: as they are (`none`), Platt (sigmoid) on the
    log-odds, or isotonic (kept strictly increasing); always inside [floor, 1 - floor]."""

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
            p = (self.model_.predict(p) + ISOTONIC_SLOPE * p) / (1 + ISOTONIC_SLOPE)
            # squeezed, not clipped: isotonic reaches 0 and 1 on whole steps of customers
            return self.floor + (1 - 2 * self.floor) * p
        if self.method == "sigmoid":
            p = self.model_.predict_proba(_logit(p)[:, None])[:, 1]
        return np.clip(p, self.floor, 1 - self.floor)  # `none` stays exactly as it was inside


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class CalibrationChoice:
    method: str
    log_loss: dict[str, float]  # cross-fitted log loss of every method tried
    rows: int  # out-of-fold rows the losses were measured on


def cross_fitted_losses(
    oof: pd.DataFrame, method: str, time_ordered: bool, floor: float
) -> np.ndarray:
    """Per-row log loss of `method` on fold rows its calibrator did not see (`oof`: p, label,
    fold); the same rows for every method (empty with nothing to cross-fit on)."""
    folds = sorted(oof["fold"].unique())
    p_all, y_all = oof["p"].to_numpy(float), oof["label"].to_numpy(int)
    fold_of = oof["fold"].to_numpy()
    parts = []
    for j in folds:
        fit_mask = fold_of < j if time_ordered else fold_of != j
        score_mask = fold_of == j
        if not fit_mask.any() or len(np.unique(y_all[fit_mask])) < 2:
            continue
        cal = Calibrator(method, floor).fit(p_all[fit_mask], y_all[fit_mask])
        p = cal.transform(p_all[score_mask])
        y = y_all[score_mask]
        parts.append(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return np.concatenate(parts) if parts else np.empty(0)


def cross_fitted_log_loss(
    oof: pd.DataFrame, method: str, time_ordered: bool, floor: float
) -> tuple[float, int]:
    """Log loss of `method` on fold rows its calibrator did not see, and how many rows."""
    losses = cross_fitted_losses(oof, method, time_ordered, floor)
    return (float(losses.mean()) if len(losses) else float("nan")), len(losses)


def choose_calibration(
    oof: pd.DataFrame, methods: tuple[str, ...], time_ordered: bool, tie: float, floor: float
) -> CalibrationChoice:
    """The simplest method unless a more complex one is clearly better: lower cross-fitted log
    loss by more than `tie` AND by more than two standard errors of the paired per-row
    difference (an improvement within noise would not carry to new data).

    With a single fold (nothing to cross-fit on) or a single method, the simplest listed wins."""
    ordered = [m for m in METHODS if m in methods]
    rows_of = {m: cross_fitted_losses(oof, m, time_ordered, floor) for m in ordered}
    losses = {m: (float(v.mean()) if len(v) else float("nan")) for m, v in rows_of.items()}
    rows = len(rows_of[ordered[0]])
    chosen = ordered[0]
    if rows < 2:
        return CalibrationChoice(chosen, losses, 0)
    for m in ordered[1:]:
        gain = rows_of[chosen] - rows_of[m]
        se = float(gain.std(ddof=1) / np.sqrt(len(gain)))
        if gain.mean() > tie and gain.mean() > 2 * se:
            chosen = m
    return CalibrationChoice(chosen, losses, rows)
