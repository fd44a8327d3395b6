"""Candidate models as scikit-learn Pipelines, and the out-of-time split they are judged on.

Each candidate is one fitted object that includes its preprocessing, so scoring new rows needs
nothing but the raw feature columns. Categoricals are encoded inside the pipeline (MLflow
signatures reject pandas `category` columns).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier

from churnlight.features.params import HYPERPARAMETERS as HYPER_SECTIONS

MODEL_NAMES = ("logreg", "tree", "lgbm")
# the hyperparameters each kind reads; params.yaml's `train.<kind>` gives each a value
# the hyperparameters each candidate reads: the fields of its params.yaml section
HYPERPARAMETERS = {kind: tuple(model.model_fields) for kind, model in HYPER_SECTIONS.items()}


OUT_OF_TIME = "out of time"
RANDOM_HOLD_OUT = "random stratified hold-out"


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    test_cutoffs: list[pd.Timestamp]  # empty for a flat table without dates
    gap_days: int
    scheme: str = OUT_OF_TIME  # or RANDOM_HOLD_OUT (a flat table: no time axis)


def time_split(df: pd.DataFrame, label_window_days: int, test_months: int, seed: int) -> Split:
    """Test on the newest labelled cutoff(s); train only on cutoffs whose label window ends
    before the first test cutoff, so no training label looks into the test period.

    A table with a single cutoff (flat labelled data) has no time axis: a seeded, stratified
    20% hold-out stands in, split by customer.
    """
    cutoffs = sorted(df["cutoff"].unique())
    if len(cutoffs) <= 1:
        rng = np.random.default_rng(seed)
        test_mask = np.zeros(len(df), dtype=bool)
        for _, idx in df.groupby("label").indices.items():
            pick = rng.choice(idx, size=max(1, round(0.2 * len(idx))), replace=False)
            test_mask[pick] = True
        dated = [pd.Timestamp(c) for c in cutoffs if pd.notna(c)]
        return Split(df[~test_mask], df[test_mask], dated, 0, RANDOM_HOLD_OUT)
    test_cutoffs = [pd.Timestamp(c) for c in cutoffs[-test_months:]]
    first_test = test_cutoffs[0]
    limit = first_test - pd.Timedelta(days=label_window_days)
    train = df[df["cutoff"] <= limit]
    test = df[df["cutoff"].isin(test_cutoffs)]
    if train.empty:
        raise ValueError(
            f"no training cutoffs end their {label_window_days}-day label window before the test "
            f"cutoff {first_test.date()}: give features.first_cutoff earlier or more history"
        )
    return Split(train, test, test_cutoffs, label_window_days)


def feature_columns(df: pd.DataFrame, names: list[str]) -> tuple[list[str], list[str]]:
    """Split registered features into numeric and categorical by their dtype in the table."""
    numeric = [c for c in names if pd.api.types.is_numeric_dtype(df[c])]
    categorical = [c for c in names if c not in numeric]
    return numeric, categorical


class MedianImputer(SimpleImputer):
    """SimpleImputer(strategy="median") with the medians from `np.nanmedian` (a partial sort)
    instead of a masked full sort: the same medians, and on 93k rows x 87 columns the fit took
    0.5 s instead of 8.6 s (bench/README.md), most of a logistic regression or tree fit."""

    def __init__(self, *, add_indicator: bool = False):
        super().__init__(strategy="median", add_indicator=add_indicator)

    def _dense_fit(self, X, strategy, missing_values, fill_value):  # noqa: N803 (sklearn's name)
        if strategy != "median" or not (
            isinstance(missing_values, float) and np.isnan(missing_values)
        ):
            return super()._dense_fit(X, strategy, missing_values, fill_value)
        missing = np.isnan(X)
        self._fit_indicator(missing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns: NaN
            median = np.nanmedian(X, axis=0)
        if self.keep_empty_features:
            median[np.isnan(median)] = 0
        return median


def _as_object(x: pd.DataFrame) -> pd.DataFrame:
    """Strings with NaN for missing: what scikit-learn's imputers and encoders expect."""
    return x.astype(object).where(x.notna(), np.nan)


def _onehot(to_obj) -> Pipeline:
    """Categories for the models that need numbers: most frequent level for gaps, one-hot."""
    return Pipeline(
        [
            ("obj", to_obj),
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def build_pipeline(
    kind: str, numeric: list[str], categorical: list[str], params: dict, seed: int
) -> Pipeline:
    """One candidate: preprocessing plus estimator, with its hyperparameters from `params`
    (`train.<kind>` in params.yaml with the tuned values over it): every key in
    `HYPERPARAMETERS[kind]` must be there, so that no value hides in code."""
    if kind not in MODEL_NAMES:
        raise ValueError(f"unknown model kind {kind!r}; choose from {MODEL_NAMES}")
    missing = [k for k in HYPERPARAMETERS[kind] if k not in params]
    if missing:
        raise KeyError(f"train.{kind} has no {', '.join(missing)}")
    pre = _preprocessing(kind, numeric, categorical)
    pre.set_output(transform="pandas")
    return Pipeline([("pre", pre), ("model", _estimator(kind, params, seed))])


def _preprocessing(kind: str, numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Scaled numbers and one-hot categories for logistic regression, unscaled for the tree;
    LightGBM handles missing numbers natively and gets categories as integer codes."""
    to_obj = FunctionTransformer(_as_object, feature_names_out="one-to-one")
    if kind == "logreg":
        num = Pipeline(
            [
                ("impute", MedianImputer(add_indicator=True)),
                ("scale", StandardScaler()),
            ]
        )
        parts = [("num", num, numeric), ("cat", _onehot(to_obj), categorical)]
    elif kind == "tree":
        num = MedianImputer(add_indicator=True)
        parts = [("num", num, numeric), ("cat", _onehot(to_obj), categorical)]
    else:
        codes = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
        )
        cat = Pipeline([("obj", to_obj), ("ord", codes)])
        parts = [("num", "passthrough", numeric), ("cat", cat, categorical)]
    return ColumnTransformer(parts, verbose_feature_names_out=False)


def threads(n_jobs: int | None) -> int:
    """LightGBM's threads: `n_jobs`, or when None one per core that nothing else is using (the
    cores available to this process less the 1-minute load average that is not this process's
    own, at least one). OpenMP threads that share a busy core wait on each other: on a two-core
    machine loaded by other work, two threads made the tuning twice as slow as one."""
    if n_jobs is not None:
        return int(n_jobs)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores
    # the load counts this process's own threads too: its last fit's two threads must not read
    # as another program's work, or the next fit would drop to one thread (it did at 1M rows)
    others = max(0.0, load - max(1.0, _own_busy_cores()))
    return max(1, min(cores, round(cores - others)))


_OWN_CPU: dict[str, tuple[float, float]] = {}  # the last (wall time, CPU seconds) seen


def _own_busy_cores() -> float:
    """The cores this process kept busy since `threads` last asked (or since it started): its
    CPU seconds, all threads, over the wall time."""
    import time

    import psutil

    proc = psutil.Process()
    now, cpu = time.time(), sum(proc.cpu_times()[:2])
    then, cpu_then = _OWN_CPU.get("last", (proc.create_time(), 0.0))
    _OWN_CPU["last"] = (now, cpu)
    return (cpu - cpu_then) / max(now - then, 1e-3)


FLOAT32_EXACT = 2**24  # integers up to this magnitude are exact in float32


def compact_features(df: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The feature columns in the dtypes training needs: float32 for numbers (integers only while
    exact, below 2^24), so the table costs half the memory and the models' own float32/float64
    conversions start from fewer bytes. Other columns untouched; a new frame, `df` unchanged.

    The tree bins on float32 anyway; LightGBM and logistic regression see the floats' values
    rounded to about 7 significant digits, far below the noise of any feature here.
    """
    out = {}
    for c in features:
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        if col.dtype == np.float32:
            continue
        if pd.api.types.is_integer_dtype(col):
            top = col.abs().max()
            if pd.notna(top) and top >= FLOAT32_EXACT:
                continue
        out[c] = col.to_numpy(dtype=np.float32, na_value=np.nan)
    if not out:
        return df
    return df.assign(**out)


def _estimator(kind: str, params: dict, seed: int):
    if kind == "logreg":
        return LogisticRegression(C=float(params["C"]), max_iter=2000, random_state=seed)
    if kind == "tree":
        return DecisionTreeClassifier(
            max_depth=int(params["max_depth"]),
            min_samples_leaf=int(params["min_samples_leaf"]),
            random_state=seed,
        )
    return lgb.LGBMClassifier(
        n_estimators=int(params["n_estimators"]),
        learning_rate=float(params["learning_rate"]),
        num_leaves=int(params["num_leaves"]),
        max_depth=int(params["max_depth"]),  # -1: no limit
        min_child_samples=int(params["min_child_samples"]),
        subsample=float(params["subsample"]),
        subsample_freq=1 if float(params["subsample"]) < 1 else 0,  # 0: no row subsampling
        colsample_bytree=float(params["colsample_bytree"]),
        reg_lambda=float(params["reg_lambda"]),
        random_state=seed,
        n_jobs=threads(params["n_jobs"]),
        verbose=-1,
    )


def fit_candidate(
    kind: str, train: pd.DataFrame, features: list[str], params: dict, seed: int
) -> Pipeline:
    """Build and fit one candidate on all of `train` (no early stopping)."""
    numeric, categorical = feature_columns(train, features)
    pipe = build_pipeline(kind, numeric, categorical, params, seed)
    pipe.fit(train[features], train["label"].astype(int).to_numpy())
    return pipe


def tree_rules(pipe: Pipeline, max_depth: int = 4) -> str:
    """The decision tree's top rules as text a manager can read."""
    from sklearn.tree import export_text

    names = list(pipe.named_steps["pre"].get_feature_names_out())
    return export_text(
        pipe.named_steps["model"],
        feature_names=names,
        max_depth=max_depth,
        show_weights=False,
        decimals=2,
    )
