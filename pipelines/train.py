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
import resource
import sys

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
from churnlight.models.tune import sample_rows
from churnlight.pipelines.common import Layout, atomic_dir, write_json
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
    tuning = sample_rows(train, tp.tune_rows, seed)  # `train` itself when it is small enough
    refit = sample_rows(train, tp.max_rows, seed)
    folds = cv_folds(tuning, window, tp.folds, seed)
    paths.tuning.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(paths.tuning / 'optuna.db').as_posix()}"
    uri = tracking.configure(tp.mlflow_experiment)
    _log_start(train, tuning, refit, folds, uri)
    # the three-colour rules need events: a flat table has none, so no comparison is claimed
    has_events = load_features_report(paths.processed)["mode"] == "events"
    cv = {"rules": rules_on_folds(tuning, folds, capacity)} if has_events else {}
    fitted: dict[str, Candidate] = {}
    for kind in tp.models:
        spec = _spec(tp, kind)
        fits = (spec.n_trials + 1) * len(folds) + 1  # trials' folds, out-of-fold fits, refit
        with progress(f"train {kind}", fits, unit="fits") as advance:
            fitted[kind] = train_tracked(
                kind,
                tuning,
                folds,
                features,
                spec,
                seed,
                capacity,
                storage,
                refit=refit,
                example=example,
                on_progress=advance,
            )
        cv[kind] = fitted[kind].cv
        _log_candidate(fitted[kind], primary)
    choice = pick_champion(cv, list(tp.models), primary)
    name = tp.registered_model
    version = tracking.register_champion(fitted[choice.champion].model_uri, name)
    registered = {"name": name, "version": version, "alias": "champion", "tracking_uri": uri}
    summary = train_summary(choice, cv, fitted, registered, folds, split, train, features)
    summary.update(treated_rows=tp.treated_rows, treated_rows_excluded=ts.excluded)
    summary["peak_rss_gb"] = peak_rss_gb()
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


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GiB (ru_maxrss: KiB on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**30 if sys.platform == "darwin" else 2**20), 3)


def _log_start(
    train: pd.DataFrame, tuning: pd.DataFrame, refit: pd.DataFrame, folds: list, uri: str
) -> None:
    log.info(
        "training on %d rows (%d cutoffs), %d folds; tuning on %s, refit on %s; MLflow at %s",
        len(train),
        train["cutoff"].nunique(),
        len(folds),
        "all of them" if len(tuning) == len(train) else f"a stratified sample of {len(tuning)}",
        "all of them" if len(refit) == len(train) else f"a stratified sample of {len(refit)}",
        uri,
    )


def _log_candidate(cand: Candidate, primary: str) -> None:
    log.info(
        "%-6s %d trials (%d pruned) on %d rows, refit on %d: best cv log loss %.4f, "
        "cv %s %.4f, %.0f s",
        cand.kind,
        cand.n_trials,
        cand.n_pruned,
        cand.tune_rows,
        cand.refit_rows,
        cand.cv_log_loss,
        primary,
        cand.cv[primary],
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
