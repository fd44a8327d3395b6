"""The return model of issue 15: P(a leaver returns within the window), with and without a
win-back offer, fitted on earlier cutoffs' leavers and judged on the newest fully labelled
ones against the simple orderings a team would otherwise use ("most recent leavers first",
"highest value first").

One calibrated model (LightGBM or logistic regression, the hyperparameters of params.yaml's
`winback` section) with the offer as an input: setting it to 1 or 0 gives P(return | offer)
and P(return | no offer). The offer is randomised by the company's control group, so its
effect is learnt from a comparison, not from whom the company chose to contact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from churnlight.models.calibration import Calibrator, choose_calibration
from churnlight.models.explain.workflow import customer_reasons
from churnlight.models.segment import share_count
from churnlight.models.train import time_split
from churnlight.models.tune import CalibratedModel, fit_fold, out_of_fold, rolling_folds
from churnlight.models.winback import LEAVER_COLUMNS, OFFER, STATED

log = logging.getLogger(__name__)


def model_features(churn_features: list[str]) -> list[str]:
    """The return model's inputs: the churn features at the last snapshot, the days since
    leaving, the snapshot's age, the reason the leaver stated and the offer."""
    return [*churn_features, *LEAVER_COLUMNS, STATED, OFFER]


@dataclass(frozen=True)
class ReturnModel:
    model: CalibratedModel
    features: list[str]
    calibration: dict  # method chosen, each method's cross-fitted log loss


def fit_return_model(
    train: pd.DataFrame,
    features: list[str],
    kind: str,
    hyperparameters: dict,
    *,
    folds: int,
    window_days: int,
    calibration: tuple[str, ...],
    tie: float,
    floor: float,
    seed: int,
) -> ReturnModel:
    """Fit on all of `train` (rows with a 0/1 `label`), calibrated on rolling out-of-fold
    scores as the churn candidates are; too few cutoffs or one class in a fold: none."""
    train = train.reset_index(drop=True)
    method, losses = "none", {}
    try:
        cv = rolling_folds(train, window_days, folds)
        cv = [f for f in cv if train["label"].iloc[f.train_idx].nunique() == 2]
        if cv:
            oof = out_of_fold(kind, train, cv, features, hyperparameters, seed)
            choice = choose_calibration(oof, calibration, True, tie, floor)
            method, losses = choice.method, choice.log_loss
    except ValueError as err:  # no fold with training data
        log.info("return model: no calibration folds (%s): calibration none", err)
        oof = None
    pipe, _ = fit_fold(kind, hyperparameters, train, None, features, seed)
    cal = Calibrator(method, floor)
    if method != "none":
        cal.fit(oof["p"].to_numpy(), oof["label"].to_numpy())
    calib = {"method": method, "log_loss": {m: round(v, 5) for m, v in losses.items()}}
    return ReturnModel(CalibratedModel(pipe, cal), features, calib)


def return_probabilities(rm: ReturnModel, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """P(return | offer) and P(return | no offer) per row: the offer set to 1, then to 0."""
    x = rows[rm.features]
    p_offer = rm.model.predict_proba(x.assign(**{OFFER: 1}))[:, 1]
    p_none = rm.model.predict_proba(x.assign(**{OFFER: 0}))[:, 1]
    return p_offer, p_none


def split_leavers(table: pd.DataFrame, window_days: int, test_months: int, seed: int):
    """Train on earlier cutoffs, test on the newest fully labelled one(s) (`time_split`: no
    training window reaches into the test cutoff)."""
    return time_split(table, window_days, test_months, seed)


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return round(float(roc_auc_score(y, score)), 4)


def _pr_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return round(float(average_precision_score(y, score)), 4)


def compare_orderings(
    test: pd.DataFrame, p_observed: np.ndarray, expected_value: np.ndarray, capacity: float
) -> dict:
    """On held-out leavers (label, value, days_since_leaving): ROC-AUC and PR-AUC of the
    model's probability (at the offer each got) and of the simple orderings, and the value of
    the returned leavers among the top `capacity` share of each ordering (the model ranks by
    expected win-back value, as the list does)."""
    y = test["label"].to_numpy(dtype=int)
    value = test["value"].to_numpy(dtype=float)
    scores = {
        "model": (np.asarray(p_observed, dtype=float), np.asarray(expected_value, dtype=float)),
        "most_recent_first": (-test["days_since_leaving"].to_numpy(dtype=float),) * 2,
        "highest_value_first": (value, value),
    }
    n = share_count(capacity, len(y))
    total = float((value * y).sum())
    out: dict = {}
    for name, (score, order_key) in scores.items():
        top = np.argsort(-order_key, kind="stable")[:n]
        won = float((value[top] * y[top]).sum())
        out[name] = {
            "roc_auc": _auc(y, score),
            "pr_auc": _pr_auc(y, score),
            "value_won_back_at_capacity": round(won, 2),
            "share_of_value_won_back": round(won / total, 4) if total else None,
            "returned_at_capacity": int(y[top].sum()),
        }
    return out


def leaver_reasons(
    pipe, x: pd.DataFrame, registry: pd.DataFrame, k: int, background: pd.DataFrame | None
) -> pd.DataFrame:
    """The churn champion's top `k` reasons at each leaver's last snapshot, in English
    (`reason_j`) and Chinese (`reason_j_zh`), with the families behind them."""
    cols = {}
    if len(x):
        found = customer_reasons(pipe, x, registry, k, background=background).reasons
    else:
        found = pd.DataFrame(index=x.index)
    for j in range(1, k + 1):
        for src, dst in ((f"reason_{j}_en", f"reason_{j}"), (f"reason_{j}_zh", f"reason_{j}_zh")):
            cols[dst] = found.get(src, pd.Series("", index=x.index)).fillna("").to_numpy()
        fam = found.get(f"reason_{j}_family", pd.Series(None, index=x.index))
        cols[f"reason_{j}_family"] = fam.to_numpy()
    return pd.DataFrame(cols, index=x.index)
