"""Stage `winback` (issue 15): the customers who left in the last `winback.lookback_days`,
ranked by expected win-back value = P(return | offer) x value - offer cost, with the churn
champion's reasons and the play of their value tier; the return model behind it, trained on
earlier leavers and judged against "most recent first" and "highest value first".

Writes data/artifacts/winback/: list.parquet, metrics.json (evaluate copies it into
reports/metrics.json) and model.joblib. Data without events, leavers or returns still gets
every file, empty where nothing could be computed, and the log says what is missing.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from churnlight.features.params import Params
from churnlight.models import tracking
from churnlight.models.artifacts import (
    load_champion,
    read_contacts,
    read_training_snapshots,
    save_model,
)
from churnlight.models.value import ValueColumnError, customer_value, value_tiers
from churnlight.models.winback_workflow import (
    TIER,
    VALUE,
    Settings,
    WinbackData,
    build_winback,
)
from churnlight.pipelines.common import InputError, Layout, atomic_dir, rfm_scoring, write_json
from churnlight.pipelines.events import read_own_events

log = logging.getLogger("churnlight.winback")


def run(paths: Layout, params: Params) -> dict:
    wp, fp, tp = params.winback, params.features, params.train
    _, champion, features = load_champion(paths.models)
    # the features as training held them (float32): half the memory at 1M customers (issue 17)
    snapshots, _ = read_training_snapshots(paths.processed / "features.parquet", features)
    snapshots = _with_value(snapshots, params)
    as_of = json.loads((paths.interim / "contract_report.json").read_text("utf-8"))["as_of"]
    data_end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    cutoffs = sorted({*pd.to_datetime(snapshots["cutoff"].dropna().unique()), data_end})
    data = WinbackData(
        snapshots=snapshots,
        customers=pd.read_parquet(paths.interim / "customers.parquet"),
        events=read_own_events(paths.interim),
        contacts=read_contacts(paths.interim / "contacts.parquet"),
        cutoffs=cutoffs,
        data_end=data_end,
        definition=fp.churn_definition,
        inactivity_days=fp.inactivity_days,
        churn_pipe=champion.pipeline,
        churn_features=features,
        registry=pd.read_csv(paths.processed / "feature_registry.csv"),
    )
    how = Settings(
        *(tp.calibration, tp.folds, tp.calibration_tie, tp.probability_floor),
        *(params.explain.top_reasons, params.base.seed),
    )
    res = build_winback(data, wp, how)
    with atomic_dir(paths.winback) as tmp:
        res.winback_list.to_parquet(tmp / "list.parquet", index=False)
        write_json(res.metrics, tmp / "metrics.json")
        if res.model is not None:
            save_model(res.model.model, tmp, "model")
    if res.model is not None:
        _track(tp.mlflow_experiment, res.metrics)
    _log(res.metrics)
    return res.metrics


def _with_value(snapshots: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The snapshots with each row's customer value and value tier (per cutoff's base), as the
    segment stage computes them (data.value_column, segment.rfm_scoring)."""
    dp = params.data
    try:
        value = customer_value(snapshots, dp.value_column, dp.value_multiplier)
    except ValueColumnError as e:
        raise InputError(str(e)) from e
    tiers = dict(params.features.rfm.tiers)
    tier = value_tiers(snapshots, value, rfm_scoring(params), tiers, by="cutoff")
    if value is None:
        log.warning("no customer value (no transactions): the win-back list's values are 0")
        value = 0.0
    snapshots[VALUE], snapshots[TIER] = value, tier  # the stage's own read: no copy of it
    return snapshots


def _track(experiment: str, metrics: dict) -> None:
    """A `winback` run in the project's MLflow experiment with the held-out figures."""
    import mlflow

    tracking.configure(experiment)
    flat = {
        f"{name}_{m}": v
        for name, row in (metrics.get("orderings") or {}).items()
        for m, v in row.items()
        if isinstance(v, int | float)
    }
    with mlflow.start_run(run_name="winback"):
        mlflow.log_params({"model": metrics.get("model"), "window_days": metrics["window_days"]})
        mlflow.log_metrics({**flat, "n_train": metrics.get("n_train", 0)})


def _log(metrics: dict) -> None:
    for why in metrics["missing"]:
        log.warning("win-back: %s", why)
    for name, row in (metrics.get("orderings") or {}).items():
        log.info(
            "win-back %-19s roc_auc=%s value won back at %.0f%%: %.0f",
            name,
            row["roc_auc"],
            100 * metrics["capacity"],
            row["value_won_back_at_capacity"],
        )
    s = metrics["list"]
    log.info(
        "win-back list: %d leavers, %d worth an offer, value %.0f, expected win-back value %.0f",
        s["leavers"],
        s["worth_an_offer"],
        s["value"],
        s["expected_value"],
    )
