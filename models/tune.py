"""Time-aware tuning: rolling-origin folds, Optuna on log loss, out-of-fold scores to calibrate on.

Tuning minimises log loss (a proper score) averaged over folds that each train on older cutoffs
and validate on a newer one, with a gap of one label window so no training label reaches into
the validation period. The business cut (recall at capacity) only chooses among tuned models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline

from churnlight.models.calibration import Calibrator
from churnlight.models.train import build_pipeline, feature_columns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    train_idx: np.ndarray
    valid_idx: np.ndarray
    valid_cutoff: pd.Timestamp


def rolling_folds(df: pd.DataFrame, label_window_days: int, n_folds: int) -> list[Fold]:
    """Validate on each of the newest `n_folds` cutoffs, training on cutoffs whose label window
    ends before it. Oldest fold first; folds without training data are skipped."""
    cutoffs = sorted(pd.Timestamp(c) for c in df["cutoff"].unique())
    cut = df["cutoff"].to_numpy()
    folds = []
    for v in cutoffs[::-1][:n_folds]:
        limit = v - pd.Timedelta(days=label_window_days)
        tr = np.flatnonzero(cut <= np.datetime64(limit))
        va = np.flatnonzero(cut == np.datetime64(v))
        if len(tr) and len(va):
            folds.append(Fold(tr, va, v))
    if not folds:
        raise ValueError("no rolling fold has training data: give the features stage more cutoffs")
    return folds[::-1]


def random_folds(df: pd.DataFrame, n_folds: int, seed: int) -> list[Fold]:
    """Stratified folds for data with no time axis (a flat labelled table)."""
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=max(2, n_folds), shuffle=True, random_state=seed)
    cutoff = pd.Timestamp(df["cutoff"].iloc[0])
    y = df["label"].to_numpy(int)
    return [Fold(tr, va, cutoff) for tr, va in skf.split(np.zeros(len(y)), y)]


def stratified_sample(
    df: pd.DataFrame, n: int | None, seed: int, by: Sequence[str] = ("cutoff", "label")
) -> np.ndarray:
    """Positions of a seeded sample of `n` rows, each (cutoff, label) cell keeping its share to
    within one row (largest-remainder rounding), in table order; all rows when `n` is None or
    not below the table's size.

    Every cutoff keeps its share, so rolling-origin folds built on the sample have the same time
    structure as on the whole table, and each cutoff its churn rate.
    """
    total = len(df)
    if n is None or n >= total:
        return np.arange(total)
    if n < 1:
        raise ValueError(f"a sample needs at least one row, not {n}")
    groups = df.groupby(list(by), dropna=False, sort=True, observed=True).indices
    cells = list(groups.values())
    sizes = np.array([len(c) for c in cells], dtype=float)
    quota = n * sizes / total
    take = np.floor(quota).astype(int)
    short = n - int(take.sum())
    # the cells with the largest remainders get one row more (stable: table order breaks ties)
    take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(c, size=k, replace=False) for c, k in zip(cells, take, strict=True) if k]
    return np.sort(np.concatenate(picked))


def sample_rows(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """`df` itself when `n` covers it (no copy, identical results), else its stratified sample
    (`stratified_sample`) with a fresh index."""
    idx = stratified_sample(df, n, seed)
    if len(idx) == len(df):
        return df
    return df.iloc[idx].reset_index(drop=True)


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """A search space from params.yaml: `[low, high]`, `[low, high, log]` or `{choices: [...]}`."""
    out = {}
    for name, spec in space.items():
        if isinstance(spec, dict):
            out[name] = trial.suggest_categorical(name, spec["choices"])
            continue
        low, high, *rest = spec
        use_log = bool(rest) and rest[0] == "log"
        if isinstance(low, int) and isinstance(high, int):
            out[name] = trial.suggest_int(name, low, high, log=use_log)
        else:
            out[name] = trial.suggest_float(name, float(low), float(high), log=use_log)
    return out


def fit_fold(
    kind: str,
    params: dict,
    train: pd.DataFrame,
    valid: pd.DataFrame | None,
    features: list[str],
    seed: int,
    early_stopping_rounds: int | None = None,
) -> tuple[Pipeline, int | None]:
    """Fit one candidate; with a validation fold, LightGBM stops early on it after
    `early_stopping_rounds` rounds without improvement (its own callback) and the best
    iteration is returned."""
    numeric, categorical = feature_columns(train, features)
    pipe = build_pipeline(kind, numeric, categorical, params, seed)
    y = train["label"].to_numpy(int)
    if kind != "lgbm" or valid is None:
        pipe.fit(train[features], y)
        return pipe, None
    if early_stopping_rounds is None:
        raise ValueError("early stopping on a validation fold needs early_stopping_rounds")
    pre, model = pipe.named_steps["pre"], pipe.named_steps["model"]
    xt = pre.fit_transform(train[features], y)
    xv = pre.transform(valid[features])
    stop = lgb.early_stopping(early_stopping_rounds, verbose=False)  # a fresh callback per fit
    model.fit(
        xt,
        y,
        eval_X=(xv,),
        eval_y=(valid["label"].to_numpy(int),),
        eval_metric="binary_logloss",
        callbacks=[stop],
    )
    return pipe, int(model.best_iteration_ or model.n_estimators)


@dataclass
class TuneResult:
    kind: str
    best_params: dict
    best_value: float
    n_trials: int
    oof: pd.DataFrame  # index of the rows validated, p (out-of-fold probability), label, fold
    fold_losses: list[float] = field(default_factory=list)
    n_pruned: int = 0


def tune(
    kind: str,
    df: pd.DataFrame,
    folds: Sequence[Fold],
    features: list[str],
    base_params: dict,
    space: dict,
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    *,
    early_stopping_rounds: int,
    storage: str | None = None,
    study_name: str | None = None,
    callbacks: Sequence[Callable] = (),
    on_progress: Callable[[int], None] | None = None,
) -> TuneResult:
    """Optuna study (seeded TPE, median pruning across folds), resumable from `storage`.

    LightGBM trials stop early on each validation fold (`early_stopping_rounds`); the median
    best iteration over the folds of the best trial becomes its `n_estimators`. `on_progress(n)`
    hears of every fold fitted (a pruned trial's skipped folds count as done).
    """
    advance = on_progress or (lambda n: None)
    objective = _cv_objective(
        kind, df, folds, features, base_params, space, seed, early_stopping_rounds, advance
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
        storage=storage,
        study_name=study_name,
        load_if_exists=storage is not None,
    )
    # pruned trials count: a finished study rerun adds none, so it gives the same best trial
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = sum(t.state in finished for t in study.trials)
    remaining = max(0, n_trials - done)
    if remaining and space:
        study.optimize(objective, n_trials=remaining, timeout=timeout_s, callbacks=list(callbacks))
    elif not space and done == 0:
        study.enqueue_trial({})
        study.optimize(objective, n_trials=1, callbacks=list(callbacks))
    best = study.best_trial
    params = {**base_params, **best.params}
    if "best_iteration" in best.user_attrs:
        params["n_estimators"] = int(best.user_attrs["best_iteration"])
    oof = out_of_fold(kind, df, folds, features, params, seed, on_progress=advance)
    return TuneResult(
        kind,
        params,
        float(best.value),
        len(study.trials),
        oof,
        list(best.user_attrs.get("fold_losses", [])),
        sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
    )


def _cv_objective(
    kind: str,
    df: pd.DataFrame,
    folds: Sequence[Fold],
    features: list[str],
    base_params: dict,
    space: dict,
    seed: int,
    early_stopping_rounds: int,
    advance: Callable[[int], None],
) -> Callable[[optuna.Trial], float]:
    """The trial objective: mean validation log loss over the folds, reported fold by fold so
    that the pruner can stop a poor trial early."""

    def objective(trial: optuna.Trial) -> float:
        params = {**base_params, **suggest(trial, space)}
        losses, iters = [], []
        for step, fold in enumerate(folds):
            tr, va = df.iloc[fold.train_idx], df.iloc[fold.valid_idx]
            pipe, best_iter = fit_fold(kind, params, tr, va, features, seed, early_stopping_rounds)
            p = pipe.predict_proba(va[features])[:, 1]
            losses.append(log_loss(va["label"].to_numpy(int), p, labels=[0, 1]))
            if best_iter is not None:
                iters.append(best_iter)
            advance(1)
            trial.report(float(np.mean(losses)), step)
            if trial.should_prune():
                advance(len(folds) - step - 1)
                raise optuna.TrialPruned()
        if iters:
            trial.set_user_attr("best_iteration", int(np.median(iters)))
        trial.set_user_attr("fold_losses", [float(x) for x in losses])
        return float(np.mean(losses))

    return objective


def out_of_fold(
    kind: str,
    df: pd.DataFrame,
    folds: Sequence[Fold],
    features: list[str],
    params: dict,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Predictions for each fold's validation rows from a model that never saw them."""
    parts = []
    for j, fold in enumerate(folds):
        tr, va = df.iloc[fold.train_idx], df.iloc[fold.valid_idx]
        pipe, _ = fit_fold(kind, params, tr, None, features, seed)
        if on_progress is not None:
            on_progress(1)
        parts.append(
            pd.DataFrame(
                {
                    "p": pipe.predict_proba(va[features])[:, 1],
                    "label": va["label"].to_numpy(int),
                    "fold": j,
                },
                index=va.index,
            )
        )
    return pd.concat(parts)


class CalibratedModel(ClassifierMixin, BaseEstimator):
    """A fitted pipeline plus a calibrator fitted on out-of-fold scores; one object to score with.

    `pipeline` stays reachable for explanations, which are in log-odds of the raw model.
    """

    def __init__(self, pipeline: Pipeline, calibrator: Calibrator):
        self.pipeline = pipeline
        self.calibrator = calibrator

    @property
    def classes_(self) -> np.ndarray:
        return self.pipeline.classes_

    def fit(self, x, y):  # the parts arrive fitted; scikit-learn's API still wants the method
        return self

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        p = self.calibrator.transform(self.pipeline.predict_proba(x)[:, 1])
        return np.column_stack([1 - p, p])

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(x)[:, 1] >= 0.5).astype(int)
