"""Scores for models and rules alike: ranking, probability quality and the business cut, on the
out-of-time test cutoff, overall and by slice, with the curves behind `dvc plots`.

"Recall at capacity" is domain.md's early identification rate: of the customers who went on to
churn, the share that the top `capacity` of the ranking flagged in advance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)

from churnlight.models.train import Split

log = logging.getLogger(__name__)
SLICES = ("region", "industry", "value_tier")


def top_share_mask(score: np.ndarray, share: float) -> np.ndarray:
    """The top `share` of rows by score; ties at the cut resolved by order (stable)."""
    n = int(np.ceil(round(share * len(score), 9)))  # no float noise: 0.07 x 100 is 7
    mask = np.zeros(len(score), dtype=bool)
    mask[np.argsort(-np.asarray(score, dtype=float), kind="stable")[:n]] = True
    return mask


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean gap between predicted and observed churn over equal-count bins, weighted by size."""
    order = np.argsort(p, kind="stable")
    ece = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            ece += len(chunk) / len(p) * abs(p[chunk].mean() - y[chunk].mean())
    return float(ece)


def score_metrics(y: np.ndarray, p: np.ndarray, capacity: float) -> dict[str, float]:
    """Every metric for one scorer; `p` must be a probability (rules: colour -> churn rate)."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    flagged = top_share_mask(p, capacity)
    base = y.mean()
    precision = float(y[flagged].mean()) if flagged.any() else 0.0
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "recall_at_capacity": float(y[flagged].sum() / max(y.sum(), 1)),
        "precision_at_capacity": precision,
        "lift_at_capacity": float(precision / base) if base > 0 else 0.0,
    }


def bootstrap_auc(y: np.ndarray, p: np.ndarray, seed: int, n: int = 200) -> tuple[float, float]:
    """95% percentile interval of ROC-AUC over bootstrap resamples of the test rows."""
    rng = np.random.default_rng(seed)
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    stats = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            stats.append(roc_auc_score(y[idx], p[idx]))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def rule_probability(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Turn the rules into a probability: churn rate of each colour (and signal count) in training,
    so the rules are scored on the same footing as the models."""
    key = ["rule_colour", "rule_score"]
    rates = train.groupby(key, observed=True)["label"].mean().rename("p")
    colour = train.groupby("rule_colour", observed=True)["label"].mean().rename("p_colour")
    out = test[key].merge(rates, left_on=key, right_index=True, how="left")
    out = out.merge(colour, left_on="rule_colour", right_index=True, how="left")
    p = out["p"].fillna(out["p_colour"]).fillna(train["label"].mean()).to_numpy(dtype=float)
    # break ties inside a probability by the rule score, without changing the order of colours
    return p + 1e-6 * test["rule_score"].to_numpy(dtype=float)


# the BTYD baseline's churn probability, a feature when the data has transactions
BTYD_COLUMN = "btyd_p_no_purchase"


def btyd_probability(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """The BTYD baseline as a probability: BG/NBD's chance of no purchase in the window. A
    customer without a purchase before the cutoff has none: the training rows' churn rate of
    such customers stands in (the overall rate if training has none)."""
    p = test[BTYD_COLUMN].to_numpy(dtype=float)
    missing = train[BTYD_COLUMN].isna()
    fill = train.loc[missing if missing.any() else train.index, "label"].mean()
    return np.where(np.isnan(p), fill, p)


def gains_comparison(
    y: np.ndarray, preds: dict[str, np.ndarray], points: int = 101
) -> pd.DataFrame:
    """Cumulative gains of several scorers on the same rows: share_contacted, then the share
    of churners each finds (`dvc plots`: the champion against the baselines)."""
    y = np.asarray(y, dtype=int)
    idx = np.unique(np.linspace(0, len(y) - 1, points).astype(int))
    out = {"share_contacted": (idx + 1) / len(y)}
    for name, p in preds.items():
        hits = np.cumsum(y[np.argsort(-np.asarray(p, dtype=float), kind="stable")])
        out[name] = hits[idx] / max(y.sum(), 1)
    return pd.DataFrame(out)


def curves(y: np.ndarray, p: np.ndarray, points: int = 101) -> dict[str, pd.DataFrame]:
    """ROC, precision-recall, calibration and cumulative gains as tables for `dvc plots`."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points * 3, len(fpr))).astype(int))
    roc = pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]})
    order = np.argsort(-p, kind="stable")
    hits = np.cumsum(y[order])
    share = np.arange(1, len(y) + 1) / len(y)
    idx = np.unique(np.linspace(0, len(y) - 1, points).astype(int))
    gains = pd.DataFrame(
        {"share_contacted": share[idx], "share_of_churners": hits[idx] / max(y.sum(), 1)}
    )
    pr = pd.DataFrame({"recall": hits[idx] / max(y.sum(), 1), "precision": hits[idx] / (idx + 1)})
    bins = np.array_split(np.argsort(p, kind="stable"), 10)
    cal = pd.DataFrame(
        {"predicted": [p[b].mean() for b in bins], "observed": [y[b].mean() for b in bins]}
    )
    return {"roc": roc, "precision_recall": pr, "calibration": cal, "gains": gains}


def slice_metrics(test: pd.DataFrame, p: np.ndarray, capacity: float) -> pd.DataFrame:
    """Ranking and recall at capacity within each region, industry and value tier (slices with
    at least 50 rows and both outcomes)."""
    rows = []
    for col in SLICES:
        if col not in test.columns:
            continue
        for value, idx in test.groupby(col, observed=True).indices.items():
            y = test["label"].to_numpy(int)[idx]
            if len(idx) < 50 or y.min() == y.max():
                continue
            m = score_metrics(y, p[idx], capacity)
            rows.append(
                {
                    "slice": col,
                    "value": value,
                    "rows": len(idx),
                    "churn_rate": y.mean(),
                    "roc_auc": m["roc_auc"],
                    "pr_auc": m["pr_auc"],
                    "recall_at_capacity": m["recall_at_capacity"],
                }
            )
    return pd.DataFrame(rows)


def oracle_metrics(test: pd.DataFrame, truth: pd.DataFrame, capacity: float) -> dict[str, float]:
    """The ceiling: the synthetic world's own risk (`truth`: customer_id, cutoff, true_risk)
    scored like a model on the test rows."""
    m = test[["customer_id", "cutoff", "label"]].merge(
        truth[["customer_id", "cutoff", "true_risk"]], on=["customer_id", "cutoff"]
    )
    if len(m) != len(test):
        log.warning("oracle: %d of %d test rows have a true risk", len(m), len(test))
    return score_metrics(m["label"].to_numpy(int), m["true_risk"].to_numpy(float), capacity)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict  # reports/metrics.json
    slices: pd.DataFrame  # the champion by slice
    plots: dict[str, pd.DataFrame]  # the champion's curves


def evaluate_candidates(
    models: dict,
    split: Split,
    features: list[str],
    champion: str,
    capacity: float,
    seed: int,
    truth: pd.DataFrame | None = None,
    *,
    rules: bool = True,
    value_tier: pd.Series | None = None,
) -> Evaluation:
    """Every candidate (calibrated, plus the raw model's calibration error) and, where the
    data has events (`rules`), the three-colour rules on the test rows; the champion also gets
    a bootstrap interval for its ROC-AUC, a verdict against the rules at capacity, slices and
    curves; with `truth`, the oracle too. The training and test churn rates are reported side
    by side: calibration fitted on the training period is off by their difference.

    `value_tier` (indexed like the snapshots) replaces the features' own tier in the slices,
    so that they are the tiers the action lists use."""
    test = split.test
    y = test["label"].to_numpy(int)
    metrics: dict = {}
    preds = {}
    for kind, model in models.items():
        preds[kind] = model.predict_proba(test[features])[:, 1]
        raw = model.pipeline.predict_proba(test[features])[:, 1]
        metrics[kind] = score_metrics(y, preds[kind], capacity)
        metrics[kind]["ece_uncalibrated"] = expected_calibration_error(y, raw)
    if rules:
        preds["rules"] = rule_probability(split.train, test)
        metrics["rules"] = score_metrics(y, preds["rules"], capacity)
    if BTYD_COLUMN in test.columns:
        preds["btyd"] = btyd_probability(split.train, test)
        metrics["btyd"] = score_metrics(y, preds["btyd"], capacity)
    lo, hi = bootstrap_auc(y, preds[champion], seed=seed)
    metrics[champion]["roc_auc_ci_low"], metrics[champion]["roc_auc_ci_high"] = lo, hi
    recall = metrics[champion]["recall_at_capacity"]
    train_rate = float(split.train["label"].mean())
    last = split.test_cutoffs[-1] if split.test_cutoffs else None
    metrics.update(
        champion=champion,
        capacity=capacity,
        test_split=split.scheme,
        test_cutoff=None if last is None else str(last.date()),
        test_rows=len(y),
        test_churn_rate=float(y.mean()),
        train_churn_rate=train_rate,
        base_rate_shift=float(y.mean()) - train_rate,
        calibration={kind: model.calibrator.method for kind, model in models.items()},
        rules_available=rules,
        champion_beats_rules=(
            bool(recall > metrics["rules"]["recall_at_capacity"]) if rules else None
        ),
    )
    if truth is not None:
        metrics["oracle"] = oracle = oracle_metrics(test, truth, capacity)
        metrics["champion_oracle_ratio"] = metrics[champion]["roc_auc"] / oracle["roc_auc"]
    sliced = test if value_tier is None else test.assign(value_tier=value_tier.loc[test.index])
    plots = curves(y, preds[champion])
    baselines = {
        "champion": preds[champion],
        **{k: preds[k] for k in ("rules", "btyd") if k in preds},
    }
    plots["gains_baselines"] = gains_comparison(y, baselines)
    return Evaluation(metrics, slice_metrics(sliced, preds[champion], capacity), plots)
