"""Stage `train`: tune, calibrate and pick the champion among logistic regression, a decision tree
and LightGBM, tracking everything in MLflow.

Per candidate: an Optuna study on rolling-origin folds inside the training period (stored in
SQLite under data/artifacts/tuning and resumed if interrupted), out-of-fold scores for the
calibrator and for choosing the champion, then a final fit on the whole training period. The
test cutoff is never touched here.

Scale (issue 17): the table is read once and its features held as float32; the trials, folds and
calibration see a stratified sample of `train.tune_rows` rows, the final fit all training rows
(or `train.max_rows` of them). Each candidate's fits show as progress; the peak RSS is logged
and reported.
"""

from __future__ import annotations

import logging
from functools import partial

import pandas as pd

from churnlight.features.params import Params, TrainParams
from churnlight.models import tracking
from churnlight.models.artifacts import (
    load_features_report,
    read_contacts,
    read_training_snapshots,
    save_model,
)
from churnlight.models.selection import (
    Choice,
    TrainingRows,
    TuningSpec,
    best_params,
    pick_champion,
    rules_on_folds,
    train_all,
    train_summary,
    training_rows,
)
from churnlight.models.train import time_split, tree_rules
from churnlight.models.treatment import untouched_split
from churnlight.pipelines.common import Layout, atomic_dir, peak_rss_gb, write_json
from churnlight.pipelines.progress import progress

log = logging.getLogger("churnlight.train")


def run(paths: Layout, params: Params) -> dict:
    seed, tp, window = params.base.seed, params.train, params.features.label_window_days
    capacity, primary = params.evaluate.capacity, params.evaluate.primary_metric
    features = pd.read_csv(paths.processed / "feature_registry.csv")["name"].tolist()
    # features in float32; the models' signatures from rows in the dtypes scoring sends
    df, example = read_training_snapshots(paths.processed / "features.parquet", features)
    contacts = read_contacts(paths.interim / "contacts.parquet")
    split = time_split(df, window, tp.test_months, seed=seed)
    ts = untouched_split(df, split, contacts, tp, window)
    del df
    split = ts.split
    train = split.train.reset_index(drop=True)
    rows = training_rows(train, tp.tune_rows, tp.max_rows, window, tp.folds, seed)
    paths.tuning.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(paths.tuning / 'optuna.db').as_posix()}"
    uri = tracking.configure(tp.mlflow_experiment)
    _log_start(rows, uri)
    # the three-colour rules need events: a flat table has none, so no comparison is claimed
    has_events = load_features_report(paths.processed)["mode"] == "events"
    cv = {"rules": rules_on_folds(rows.tuning, rows.folds, capacity)} if has_events else {}
    specs = {kind: _spec(tp, kind) for kind in tp.models}
    bar = partial(progress, unit="fits")
    fitted = train_all(
        specs, rows, features, seed, capacity, primary, storage, example=example, open_progress=bar
    )
    cv.update({kind: cand.cv for kind, cand in fitted.items()})
    choice = pick_champion(cv, list(tp.models), primary)
    name = tp.registered_model
    version = tracking.register_champion(fitted[choice.champion].model_uri, name)
    registered = {"name": name, "version": version, "alias": "champion", "tracking_uri": uri}
    summary = train_summary(choice, cv, fitted, registered, rows.folds, split, train, features)
    summary.update(treated_rows=tp.treated_rows, treated_rows_excluded=ts.excluded)
    summary["peak_rss_gb"] = round(peak_rss_gb(), 3)
    with atomic_dir(paths.models) as tmp:
        for kind, cand in fitted.items():
            save_model(cand.model, tmp, kind)
        if "tree" in fitted:
            (tmp / "tree_rules.txt").write_text(tree_rules(fitted["tree"].model.pipeline), "utf-8")
        write_json(best_params(fitted), tmp / "best_params.json")
        write_json(summary, tmp / "train_report.json")
    _log_choice(choice, registered)
    log.info("train: peak RSS %.2f GiB", summary["peak_rss_gb"])
    return summary


def _spec(tp: TrainParams, kind: str) -> TuningSpec:
    """How `kind` is tuned, from the stage's params section."""
    return TuningSpec(
        base=tp.hyperparameters(kind),
        space=tp.space(kind),
        n_trials=tp.n_trials[kind],
        timeout_s=tp.timeout_s,
        early_stopping_rounds=tp.early_stopping_rounds,
        calibration=tp.calibration,
        calibration_tie=tp.calibration_tie,
        probability_floor=tp.probability_floor,
    )


def _log_start(rows: TrainingRows, uri: str) -> None:
    n = len(rows.train)
    log.info(
        "training on %d rows (%d cutoffs), %d folds; tuning on %s, refit on %s; MLflow at %s",
        n,
        rows.train["cutoff"].nunique(),
        len(rows.folds),
        "all of them" if len(rows.tuning) == n else f"a stratified sample of {len(rows.tuning)}",
        "all of them" if len(rows.refit) == n else f"a stratified sample of {len(rows.refit)}",
        uri,
    )


def _log_choice(choice: Choice, registered: dict) -> None:
    if choice.beats_rules is False:
        log.warning(
            "THE CHAMPION (%s) DOES NOT BEAT THE THREE-COLOUR RULES on the folds (%s %.4f vs %.4f)",
            choice.champion,
            choice.metric,
            choice.score,
            choice.rules_score,
        )
    rules = "n/a" if choice.rules_score is None else f"{choice.rules_score:.4f}"
    log.info(
        "champion: %s (cv %s %.4f; rules %s); registered %s v%s @champion",
        choice.champion,
        choice.metric,
        choice.score,
        rules,
        registered["name"],
        registered["version"],
    )
