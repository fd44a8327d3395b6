"""Stage `evaluate`: score every candidate and the three-colour rules on the out-of-time test
cutoff; on synthetic data also the oracle (the world's own risk). Writes reports/metrics.json
(DVC metrics), metrics by slice and the curve tables behind `dvc plots show`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from churnlight.models.evaluate import (
    bootstrap_auc,
    curves,
    expected_calibration_error,
    rule_probability,
    score_metrics,
)
from churnlight.models.train import time_split
from churnlight.pipelines.common import (
    atomic_dir,
    is_synthetic,
    load_model,
    load_params,
    load_train_report,
    read_snapshots,
    setup_logging,
    write_csv,
    write_json,
)

log = logging.getLogger("churnlight.evaluate")
SLICES = ("region", "industry", "value_tier")


def slice_metrics(test: pd.DataFrame, p, capacity: float) -> pd.DataFrame:
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


def oracle_metrics(test: pd.DataFrame, truth_dir: Path, capacity: float) -> dict | None:
    path = truth_dir / "risk.parquet"
    if not path.exists():
        return None
    truth = pd.read_parquet(path, columns=["customer_id", "cutoff", "true_risk"])
    m = test[["customer_id", "cutoff", "label"]].merge(truth, on=["customer_id", "cutoff"])
    if len(m) != len(test):
        log.warning("oracle: %d of %d test rows have a true risk", len(m), len(test))
    return score_metrics(m["label"].to_numpy(int), m["true_risk"].to_numpy(float), capacity)


def run(processed: Path, models: Path, reports: Path, params: dict, truth_dir: Path | None) -> dict:
    seed = params["base"]["seed"]
    capacity = float(params["evaluate"]["capacity"])
    df = read_snapshots(processed / "features.parquet")
    train_report = load_train_report(models)
    features = train_report["features"]
    split = time_split(
        df,
        int(params["features"]["label_window_days"]),
        int(params["train"]["test_months"]),
        seed=seed,
    )
    y = split.test["label"].to_numpy(int)
    metrics: dict = {}
    preds = {}
    for kind in params["train"]["models"]:
        model = load_model(models, kind)
        preds[kind] = model.predict_proba(split.test[features])[:, 1]
        raw = model.pipeline.predict_proba(split.test[features])[:, 1]
        metrics[kind] = score_metrics(y, preds[kind], capacity)
        metrics[kind]["ece_uncalibrated"] = expected_calibration_error(y, raw)
    preds["rules"] = rule_probability(split.train, split.test)
    metrics["rules"] = score_metrics(y, preds["rules"], capacity)
    champion = train_report["champion"]
    lo, hi = bootstrap_auc(y, preds[champion], seed=seed)
    metrics[champion]["roc_auc_ci_low"], metrics[champion]["roc_auc_ci_high"] = lo, hi
    metrics["champion"] = champion
    metrics["capacity"] = capacity
    metrics["test_cutoff"] = train_report["test_cutoffs"][-1]
    metrics["test_rows"] = len(y)
    metrics["test_churn_rate"] = float(y.mean())
    beats = metrics[champion]["recall_at_capacity"] > metrics["rules"]["recall_at_capacity"]
    metrics["champion_beats_rules"] = bool(beats)
    if truth_dir is not None and is_synthetic(params["data"]):
        oracle = oracle_metrics(split.test, truth_dir, capacity)
        if oracle:
            metrics["oracle"] = oracle
            metrics["champion_oracle_ratio"] = metrics[champion]["roc_auc"] / oracle["roc_auc"]
    if not beats:
        log.warning(
            "THE CHAMPION (%s) DOES NOT BEAT THE THREE-COLOUR RULES at capacity %.0f%%: "
            "recall %.3f vs %.3f",
            champion,
            100 * capacity,
            metrics[champion]["recall_at_capacity"],
            metrics["rules"]["recall_at_capacity"],
        )
    tables = curves(y, preds[champion])
    with atomic_dir(reports / "plots") as tmp:
        for name, table in tables.items():
            table.to_csv(tmp / f"{name}.csv", index=False)
    slices = slice_metrics(split.test, preds[champion], capacity)
    write_csv(slices, reports / "metrics_by_slice.csv")
    write_json(metrics, reports / "metrics.json")
    _log_to_mlflow(params, train_report, metrics, reports / "plots")
    for name in [*params["train"]["models"], "rules", "oracle"]:
        if name in metrics:
            m = metrics[name]
            log.info(
                "%-7s roc_auc=%.4f pr_auc=%.4f recall@%.0f%%=%.3f ece=%.4f",
                name,
                m["roc_auc"],
                m["pr_auc"],
                100 * capacity,
                m["recall_at_capacity"],
                m["ece"],
            )
    return metrics


def _log_to_mlflow(params: dict, train_report: dict, metrics: dict, plots: Path) -> None:
    """Test metrics go into each candidate's own run; the curves into the champion's."""
    import mlflow

    from churnlight.models import tracking

    tracking.configure(params["train"]["mlflow_experiment"])
    for kind, info in train_report["models"].items():
        with mlflow.start_run(run_id=info["run_id"]):
            mlflow.log_metrics({f"test_{k}": float(v) for k, v in metrics[kind].items()})
            mlflow.log_metric(
                "test_rules_recall_at_capacity", metrics["rules"]["recall_at_capacity"]
            )
            if "oracle" in metrics:
                mlflow.log_metric("test_oracle_roc_auc", metrics["oracle"]["roc_auc"])
            if kind == metrics["champion"]:
                mlflow.log_artifacts(str(plots), artifact_path="plots")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--models", default="data/artifacts/models")
    ap.add_argument("--reports", default="reports")
    ap.add_argument("--truth", default="data/raw/_truth")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(Path(args.processed), Path(args.models), Path(args.reports), params, Path(args.truth))


if __name__ == "__main__":
    main()
