"""Stage `train`: tune, calibrate and pick the champion among logistic regression, a decision tree
and LightGBM, tracking everything in MLflow.

Per candidate: an Optuna study on rolling-origin folds inside the training period (stored in
SQLite under data/artifacts/tuning and resumed if interrupted), out-of-fold scores for the
calibrator and for choosing the champion, then a final fit on the whole training period. The
test cutoff is never touched here.
"""

from __future__ import annotations

import logging

import pandas as pd

from churnlight.features.params import Params, TrainParams
from churnlight.models import tracking
from churnlight.models.artifacts import (
    load_features_report,
    read_contacts,
    read_snapshots,
    save_model,
)
from churnlight.models.selection import (
    Candidate,
    Choice,
    TuningSpec,
    best_params,
    cv_folds,
    pick_champion,
    rules_on_folds,
    train_summary,
    train_tracked,
)
from churnlight.models.train import time_split, tree_rules
from churnlight.models.treatment import untouched_split
from churnlight.pipelines.common import Layout, atomic_dir, write_json

log = logging.getLogger("churnlight.train")


def run(paths: Layout, params: Params) -> dict:
    seed, tp, window = params.base.seed, params.train, params.features.label_window_days
    capacity, primary = params.evaluate.capacity, params.evaluate.primary_metric
    df = read_snapshots(paths.processed / "features.parquet")
    features = pd.read_csv(paths.processed / "feature_registry.csv")["name"].tolist()
    contacts = read_contacts(paths.interim / "contacts.parquet")
    split = time_split(df, window, tp.test_months, seed=seed)
    ts = untouched_split(df, split, contacts, tp, window)
    split = ts.split
    train = split.train.reset_index(drop=True)
    folds = cv_folds(train, window, tp.folds, seed)
    paths.tuning.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(paths.tuning / 'optuna.db').as_posix()}"
    uri = tracking.configure(tp.mlflow_experiment)
    _log_start(train, folds, uri)
    # the three-colour rules need events: a flat table has none, so no comparison is claimed
    has_events = load_features_report(paths.processed)["mode"] == "events"
    cv = {"rules": rules_on_folds(train, folds, capacity)} if has_events else {}
    fitted: dict[str, Candidate] = {}
    for kind in tp.models:
        spec = _spec(tp, kind)
        fitted[kind] = train_tracked(kind, train, folds, features, spec, seed, capacity, storage)
        cv[kind] = fitted[kind].cv
        _log_candidate(fitted[kind], primary)
    choice = pick_champion(cv, list(tp.models), primary)
    name = tp.registered_model
    version = tracking.register_champion(fitted[choice.champion].model_uri, name)
    registered = {"name": name, "version": version, "alias": "champion", "tracking_uri": uri}
    summary = train_summary(choice, cv, fitted, registered, folds, split, train, features)
    summary.update(treated_rows=tp.treated_rows, treated_rows_excluded=ts.excluded)
    with atomic_dir(paths.models) as tmp:
        for kind, cand in fitted.items():
            save_model(cand.model, tmp, kind)
        if "tree" in fitted:
            (tmp / "tree_rules.txt").write_text(tree_rules(fitted["tree"].model.pipeline), "utf-8")
        write_json(best_params(fitted), tmp / "best_params.json")
        write_json(summary, tmp / "train_report.json")
    _log_choice(choice, registered)
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


def _log_start(train: pd.DataFrame, folds: list, uri: str) -> None:
    log.info(
        "training on %d rows (%d cutoffs), %d folds; MLflow at %s",
        len(train),
        train["cutoff"].nunique(),
        len(folds),
        uri,
    )


def _log_candidate(cand: Candidate, primary: str) -> None:
    log.info(
        "%-6s cv log loss %.4f, cv %s %.4f (%d trials, %.0f s)",
        cand.kind,
        cand.cv_log_loss,
        primary,
        cand.cv[primary],
        cand.n_trials,
        cand.seconds,
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
