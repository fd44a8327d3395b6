"""Stage `evaluate`: score every candidate and the three-colour rules on the out-of-time test
cutoff; on synthetic data also the oracle (the world's own risk). Writes reports/metrics.json
(DVC metrics), metrics by slice and the curve tables behind `dvc plots show`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from churnlight.features.params import Params
from churnlight.models import tracking
from churnlight.models.artifacts import (
    load_features_report,
    load_model,
    load_train_report,
    read_contacts,
    read_training_snapshots,
)
from churnlight.models.evaluate import evaluate_candidates
from churnlight.models.train import time_split
from churnlight.models.treatment import untouched_split
from churnlight.models.value import ValueColumnError, customer_value, value_tiers
from churnlight.pipelines.common import (
    InputError,
    Layout,
    atomic_dir,
    is_synthetic,
    rfm_scoring,
    write_csv,
    write_json,
)

log = logging.getLogger("churnlight.evaluate")


def run(paths: Layout, params: Params) -> dict:
    seed, tp, capacity = params.base.seed, params.train, params.evaluate.capacity
    models, reports = paths.models, paths.reports
    report = load_train_report(models)
    # the features as training held them (float32): at 1M customers the float64 table and its
    # split copies took over 10 GiB (issue 17)
    df, _ = read_training_snapshots(paths.processed / "features.parquet", report["features"])
    window = params.features.label_window_days
    contacts = read_contacts(paths.interim / "contacts.parquet")
    split = time_split(df, window, tp.test_months, seed=seed)
    # the rules learn from the rows the models trained on; the test rows are the untreated ones
    ts = untouched_split(df, split, contacts, tp, window)
    split = ts.split
    fitted = {kind: load_model(models, kind) for kind in tp.models}
    truth = _truth(paths.truth) if is_synthetic(params.data) else None
    has_events = load_features_report(paths.processed)["mode"] == "events"
    ev = evaluate_candidates(
        *(fitted, split, report["features"], report["champion"], capacity, seed, truth),
        rules=has_events,
        value_tier=_value_tiers(df, params),
    )
    ev.metrics["treated_rows_excluded"] = ts.excluded
    ev.metrics["winback"] = _winback_metrics(paths.winback / "metrics.json")
    # issue 17: the rows the champion was tuned and fitted on (train.tune_rows, train.max_rows)
    ev.metrics["training_rows"] = {
        k: report[f"{k}_rows"] for k in ("train", "tune", "refit") if f"{k}_rows" in report
    }
    if ev.metrics["champion_beats_rules"] is False:
        _warn_rules_win(ev.metrics)
    with atomic_dir(reports / "plots") as tmp:
        for name, table in ev.plots.items():
            table.to_csv(tmp / f"{name}.csv", index=False)
    write_csv(ev.slices, reports / "metrics_by_slice.csv")
    write_json(ev.metrics, reports / "metrics.json")
    tracking.configure(tp.mlflow_experiment)
    tracking.log_test_metrics(report, ev.metrics, reports / "plots")
    _log_metrics(ev.metrics, [*tp.models, "rules", "btyd", "oracle"])
    return ev.metrics


def _value_tiers(df: pd.DataFrame, params: Params) -> pd.Series:
    """The value tiers of the action lists, per cutoff's customer base, for the slices."""
    dp = params.data
    try:
        value = customer_value(df, dp.value_column, dp.value_multiplier)
    except ValueColumnError as e:
        raise InputError(str(e)) from e
    tiers = dict(params.features.rfm.tiers)
    return pd.Series(value_tiers(df, value, rfm_scoring(params), tiers, by="cutoff"), df.index)


def _winback_metrics(path: Path) -> dict | None:
    """The winback stage's held-out figures (issue 15), copied under "winback"; None (and a
    warning) when that stage has not run."""
    if not path.exists():
        log.warning("no win-back metrics (%s): run stage winback first", path)
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _truth(truth_dir: Path) -> pd.DataFrame | None:
    """The synthetic world's true risk per customer and cutoff, if the generate stage wrote it."""
    path = truth_dir / "risk.parquet"
    if not path.exists():
        return None
    return pd.read_parquet(path, columns=["customer_id", "cutoff", "true_risk"])


def _warn_rules_win(metrics: dict) -> None:
    champion, capacity = metrics["champion"], metrics["capacity"]
    log.warning(
        "THE CHAMPION (%s) DOES NOT BEAT THE THREE-COLOUR RULES at capacity %.0f%%: "
        "recall %.3f vs %.3f",
        champion,
        100 * capacity,
        metrics[champion]["recall_at_capacity"],
        metrics["rules"]["recall_at_capacity"],
    )


def _log_metrics(metrics: dict, names: list[str]) -> None:
    for name in names:
        if name in metrics:
            m = metrics[name]
            log.info(
                "%-7s roc_auc=%.4f pr_auc=%.4f recall@%.0f%%=%.3f ece=%.4f",
                name,
                m["roc_auc"],
                m["pr_auc"],
                100 * metrics["capacity"],
                m["recall_at_capacity"],
                m["ece"],
            )
