"""Training the candidates and choosing the champion, on the training period only.

Per candidate: an Optuna study on the folds (resumable from its storage), a calibration chosen
and fitted on the out-of-fold scores of the best parameters (`churnlight.models.calibration`),
the calibrated out-of-fold metrics that the champion is chosen on, then a final fit on the whole
training period. The three-colour rules
are scored on the same folds, so the champion is compared with them on equal terms.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import pandas as pd

from churnlight.models import tracking
from churnlight.models.calibration import Calibrator, choose_calibration
from churnlight.models.evaluate import rule_probability, score_metrics
from churnlight.models.train import Split
from churnlight.models.tune import (
    CalibratedModel,
    Fold,
    fit_fold,
    random_folds,
    rolling_folds,
    sample_rows,
    tune,
)

log = logging.getLogger(__name__)
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
# opens a progress display for `total` fits under a description and yields its advance(n)
OpenProgress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class TuningSpec:
    """How one model family is tuned and calibrated (from params.yaml's `train` section)."""

    base: dict  # fixed hyperparameters; the search space overrides what it tunes
    space: dict
    n_trials: int
    timeout_s: float
    early_stopping_rounds: int
    calibration: tuple[str, ...]  # the methods to choose from (none, sigmoid, isotonic)
    calibration_tie: float  # log-loss difference within which the simpler method wins
    probability_floor: float  # probabilities stay inside [floor, 1 - floor]


@dataclass(frozen=True)
class Candidate:
    """One trained family: the calibrated model fitted on all training rows and its scores."""

    kind: str
    model: CalibratedModel
    cv: dict[str, float]  # calibrated out-of-fold metrics, plus ece_uncalibrated
    calibration: dict  # the method chosen and every method's cross-fitted log loss
    best_params: dict
    cv_log_loss: float  # the tuned objective: mean log loss over the folds, uncalibrated
    n_trials: int
    study: str
    run_id: str = ""  # MLflow run and logged model, when tracked
    model_uri: str = ""
    seconds: float = 0.0
    n_pruned: int = 0
    tune_rows: int = 0  # rows the trials, folds and calibration saw (a sample: train.tune_rows)
    refit_rows: int = 0  # rows of the final fit (all training rows, or train.max_rows of them)


@dataclass(frozen=True)
class Choice:
    """The champion and how it compares with the rules on the primary metric, across the folds."""

    champion: str
    metric: str
    score: float
    rules_score: float | None  # None: no rules to compare with (a flat table has no events)
    beats_rules: bool | None


@dataclass(frozen=True)
class TrainingRows:
    """The rows each part of training sees (issue 17): the trials, folds and calibration a
    stratified sample (`tuning`, which `folds` index), the final fit `refit`."""

    train: pd.DataFrame  # every training row
    tuning: pd.DataFrame  # `train` itself when train.tune_rows covers it
    refit: pd.DataFrame  # `train` itself unless train.max_rows is below its size
    folds: list[Fold]
    refit_folds: list[Fold]  # the same folds on `refit` (`folds` when it is the tuning table)


def training_rows(
    train: pd.DataFrame,
    tune_rows: int | None,
    max_rows: int | None,
    label_window_days: int,
    n_folds: int,
    seed: int,
) -> TrainingRows:
    """Draw the tuning sample and the refit rows (`sample_rows`, seeded, stratified by cutoff and
    label) and build the folds on the tuning sample, so they keep the time structure."""
    tuning = sample_rows(train, tune_rows, seed)
    refit = sample_rows(train, max_rows, seed)
    folds = cv_folds(tuning, label_window_days, n_folds, seed)
    refit_folds = folds if refit is tuning else cv_folds(refit, label_window_days, n_folds, seed)
    return TrainingRows(train, tuning, refit, folds, refit_folds)


def cv_folds(train: pd.DataFrame, label_window_days: int, n_folds: int, seed: int) -> list[Fold]:
    """Rolling-origin folds over the cutoffs; stratified random folds for a flat table with a
    single cutoff."""
    if train["cutoff"].nunique() > 1:
        return rolling_folds(train, label_window_days, n_folds)
    return random_folds(train, n_folds, seed)


def study_name(kind: str, train: pd.DataFrame, spec: TuningSpec, seed: int, n_folds: int) -> str:
    """Names the Optuna study after the data and the search, so a rerun on the same inputs
    resumes it and anything new (a row, a label, a feature's definition) starts a fresh one."""
    h = hashlib.sha256(pd.util.hash_pandas_object(train, index=False).values)  # every value
    search = {"space": spec.space, "base": spec.base, "seed": seed, "folds": n_folds}
    h.update(json.dumps(search, sort_keys=True, default=str).encode())
    return f"{kind}-{h.hexdigest()[:12]}"


def rules_on_folds(train: pd.DataFrame, folds: Sequence[Fold], capacity: float) -> dict:
    """The three-colour rules' metrics over the folds' validation rows, each fold's colours
    turned into probabilities on its own training rows."""
    oof = pd.concat(
        pd.DataFrame(
            {
                "p": rule_probability(train.iloc[f.train_idx], train.iloc[f.valid_idx]),
                "label": train["label"].to_numpy(int)[f.valid_idx],
            }
        )
        for f in folds
    )
    return score_metrics(oof["label"], oof["p"], capacity)


def train_candidate(
    kind: str,
    train: pd.DataFrame,
    folds: Sequence[Fold],
    features: list[str],
    spec: TuningSpec,
    seed: int,
    capacity: float,
    *,
    storage: str | None = None,
    callbacks: Sequence[Callable] = (),
    refit: pd.DataFrame | None = None,
    refit_folds: Sequence[Fold] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Candidate:
    """Tune, calibrate on the out-of-fold scores, score, and refit.

    `train` is what the trials and folds see (the folds index it): all training rows or a
    stratified sample of them (`sample_rows`, train.tune_rows). The chosen parameters are then
    fitted on `refit` (default `train`): all training rows, or a bounded sample (train.max_rows).
    When `refit` is not `train` and `refit_folds` (the folds built on it) are given,
    LightGBM's number of rounds is found again for it (`refit_rounds`).
    `on_progress(n)` hears of every fit: the trials' folds, the out-of-fold fits, the refit.
    """
    refit = train if refit is None else refit
    name = study_name(kind, train, spec, seed, len(folds))
    res = tune(
        kind,
        train,
        folds,
        features,
        spec.base,
        spec.space,
        spec.n_trials,
        spec.timeout_s,
        seed,
        early_stopping_rounds=spec.early_stopping_rounds,
        storage=storage,
        study_name=name,
        callbacks=callbacks,
        on_progress=on_progress,
    )
    time_ordered = train["cutoff"].nunique() > 1
    choice = choose_calibration(
        res.oof, spec.calibration, time_ordered, spec.calibration_tie, spec.probability_floor
    )
    calibrator = Calibrator(choice.method, spec.probability_floor)
    calibrator.fit(res.oof["p"], res.oof["label"])
    p_cal = calibrator.transform(res.oof["p"].to_numpy())
    cv = score_metrics(res.oof["label"], p_cal, capacity)
    cv["ece_uncalibrated"] = score_metrics(res.oof["label"], res.oof["p"], capacity)["ece"]
    params = res.best_params
    if refit_folds and refinds_rounds(kind, refit is not train):
        newest = refit_folds[-1]
        rounds = refit_rounds(params, spec, refit, newest, features, seed)
        log.info(
            "%s: %d rounds early-stopped on the tuning sample (%d rows), %d on the refit rows' "
            "newest fold (%d training rows)",
            kind,
            params["n_estimators"],
            len(train),
            rounds,
            len(newest.train_idx),
        )
        params = {**params, "n_estimators": rounds}
        if on_progress is not None:
            on_progress(1)
    pipe, _ = fit_fold(kind, params, refit, None, features, seed)
    if on_progress is not None:
        on_progress(1)
    return Candidate(
        kind=kind,
        model=CalibratedModel(pipe, calibrator),
        cv=cv,
        calibration={"method": choice.method, "log_loss": choice.log_loss, "rows": choice.rows},
        best_params=params,
        cv_log_loss=res.best_value,
        n_trials=res.n_trials,
        study=name,
        n_pruned=res.n_pruned,
        tune_rows=len(train),
        refit_rows=len(refit),
    )


def train_tracked(
    kind: str,
    train: pd.DataFrame,
    folds: Sequence[Fold],
    features: list[str],
    spec: TuningSpec,
    seed: int,
    capacity: float,
    storage: str | None = None,
    *,
    refit: pd.DataFrame | None = None,
    refit_folds: Sequence[Fold] | None = None,
    example: pd.DataFrame | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Candidate:
    """`train_candidate` inside its own MLflow run: every trial as a nested run, then the
    best parameters, the out-of-fold metrics and the model (its signature from `example`, the
    feature columns in the dtypes scoring sends; default the first rows of `train`)."""
    t0 = time.perf_counter()
    with tracking.candidate_run(kind) as run_id:
        cand = train_candidate(
            kind,
            train,
            folds,
            features,
            spec,
            seed,
            capacity,
            storage=storage,
            callbacks=[tracking.trial_logger(kind)],
            refit=refit,
            refit_folds=refit_folds,
            on_progress=on_progress,
        )
        how = {
            "calibration": cand.calibration["method"],
            "folds": len(folds),
            "n_trials": cand.n_trials,
            "study": cand.study,
            "tune_rows": cand.tune_rows,
            "refit_rows": cand.refit_rows,
        }
        example = train[features].head(5) if example is None else example
        model_uri = tracking.log_trained_candidate(
            cand.model, kind, cand.best_params, how, cand.cv, cand.cv_log_loss, example
        )
        seconds = round(time.perf_counter() - t0, 1)
    return replace(cand, run_id=run_id, model_uri=model_uri, seconds=seconds)


def refinds_rounds(kind: str, refit_differs: bool) -> bool:
    """Whether the refit early-stops once more to find its number of rounds: LightGBM only (the
    only family that stops early), and only when it refits on other rows than it tuned on."""
    return kind == "lgbm" and refit_differs


def refit_rounds(
    params: dict, spec: TuningSpec, refit: pd.DataFrame, fold: Fold, features: list[str], seed: int
) -> int:
    """LightGBM's number of rounds for the refit rows: the tuned parameters early-stopped
    (up to the base `n_estimators`) on one fold built on them, the newest.

    The count the trials found stopped on a sample's folds; more rows carry more trees before
    the validation loss turns, so keeping it underfits the refit (issue 17: tuning on 20k of
    the default world's 50k rows cost LightGBM 0.007 ROC-AUC). One fit on the newest fold
    (the most training rows, the closest in time) finds the count the data supports.
    """
    trial = {**params, "n_estimators": spec.base["n_estimators"]}
    tr, va = refit.iloc[fold.train_idx], refit.iloc[fold.valid_idx]
    _, rounds = fit_fold("lgbm", trial, tr, va, features, seed, spec.early_stopping_rounds)
    return int(rounds or trial["n_estimators"])


def candidate_fits(kind: str, spec: TuningSpec, n_folds: int, refit_differs: bool) -> int:
    """How many fits one candidate makes: every trial's folds, the out-of-fold fits, the
    early-stopped fit that finds the refit's rounds (`refinds_rounds`), the refit (what
    `on_progress` hears of)."""
    return (spec.n_trials + 1) * n_folds + refinds_rounds(kind, refit_differs) + 1


def train_all(
    specs: Mapping[str, TuningSpec],
    rows: TrainingRows,
    features: list[str],
    seed: int,
    capacity: float,
    primary: str,
    storage: str | None = None,
    *,
    example: pd.DataFrame | None = None,
    open_progress: OpenProgress | None = None,
) -> dict[str, Candidate]:
    """Every candidate of `specs` in turn (`train_tracked`: tuned on `rows.tuning`, refitted on
    `rows.refit`), each fit shown by `open_progress(description, total)` and a log line per
    candidate; the library knows no progress display, the stage passes one in."""
    fitted: dict[str, Candidate] = {}
    for kind, spec in specs.items():
        refit_differs = rows.refit is not rows.tuning
        total = candidate_fits(kind, spec, len(rows.folds), refit_differs)
        with (open_progress or _no_progress)(f"train {kind}", total) as advance:
            fitted[kind] = train_tracked(
                kind,
                rows.tuning,
                rows.folds,
                features,
                spec,
                seed,
                capacity,
                storage,
                refit=rows.refit,
                refit_folds=rows.refit_folds,
                example=example,
                on_progress=advance,
            )
        _log_candidate(fitted[kind], primary)
    return fitted


def _no_progress(description: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda n: None)


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


def pick_champion(cv: dict[str, dict], kinds: Sequence[str], primary: str) -> Choice:
    """The best of `kinds` on the primary metric across the folds (the first listed on a tie),
    and whether it beats the rules (`cv["rules"]`, when there are rules) there."""
    reverse = primary not in LOWER_IS_BETTER
    champion = sorted(kinds, key=lambda k: cv[k][primary], reverse=reverse)[0]
    ours = cv[champion][primary]
    if "rules" not in cv:
        return Choice(champion, primary, ours, None, None)
    rules = cv["rules"][primary]
    return Choice(champion, primary, ours, rules, bool(ours > rules if reverse else ours < rules))


def train_summary(
    choice: Choice,
    cv: dict[str, dict],
    candidates: dict[str, Candidate],
    registered: dict,
    folds: Sequence[Fold],
    split: Split,
    train: pd.DataFrame,
    features: list[str],
) -> dict:
    """train_report.json: what was trained on what, how each candidate scored, which won."""
    return {
        "champion": choice.champion,
        "primary_metric": choice.metric,
        "champion_beats_rules_cv": choice.beats_rules,
        "cv": cv,
        "models": {
            kind: {
                "best_params": c.best_params,
                "cv_log_loss": c.cv_log_loss,
                "calibration": c.calibration,
                "n_trials": c.n_trials,
                "study": c.study,
                "run_id": c.run_id,
                "model_uri": c.model_uri,
                "seconds": c.seconds,
                "n_pruned": c.n_pruned,
                "tune_rows": c.tune_rows,
                "refit_rows": c.refit_rows,
            }
            for kind, c in candidates.items()
        },
        "registered_model": registered,
        "folds": [_day(f.valid_cutoff) for f in folds],
        "split": split.scheme,
        "test_cutoffs": [_day(c) for c in split.test_cutoffs],
        "train_cutoffs": sorted(_day(c) for c in train["cutoff"].unique() if pd.notna(c)),
        "train_rows": len(train),
        # issue 17: trials, folds and calibration on a stratified sample (train.tune_rows), the
        # final fit on all training rows or a bounded sample of them (train.max_rows)
        "tune_rows": max((c.tune_rows for c in candidates.values()), default=len(train)),
        "refit_rows": max((c.refit_rows for c in candidates.values()), default=len(train)),
        "test_rows": len(split.test),
        "features": features,
    }


def _day(ts) -> str | None:
    """YYYY-MM-DD, or None where there is no date (a flat table without dates)."""
    return None if pd.isna(ts) else str(pd.Timestamp(ts).date())


def best_params(candidates: dict[str, Candidate]) -> dict[str, dict]:
    """best_params.json: each family's final hyperparameters."""
    return {kind: c.best_params for kind, c in candidates.items()}
