"""Issue 17: tuning on a stratified sample, refitting on all rows (or train.max_rows of them).

The sample keeps each (cutoff, label) cell's share within rounding, depends on the seed alone,
and is the table itself when it would cover it, so small worlds tune exactly as before.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from churnlight.models import selection
from churnlight.models.selection import TuningSpec, cv_folds, train_candidate
from churnlight.models.train import compact_features
from churnlight.models.tune import fit_fold, sample_rows, stratified_sample

ROOT = Path(__file__).resolve().parents[2]
TRAIN: dict = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["train"]
FEATURES = ["a", "b", "plan"]


def _panel(seed: int = 0, per_cutoff: tuple[int, ...] = (900, 700, 1100, 500, 800)) -> pd.DataFrame:
    """Monthly cutoffs of different sizes and churn rates, in (cutoff, customer) order."""
    rng = np.random.default_rng(seed)
    parts = []
    for j, n in enumerate(per_cutoff):
        a = rng.normal(size=n)
        parts.append(
            pd.DataFrame(
                {
                    "cutoff": pd.Timestamp("2025-01-01") + pd.DateOffset(months=j),
                    "customer_id": [f"C{i:05d}" for i in range(n)],
                    "a": a,
                    "b": rng.normal(size=n),
                    "n_logins": rng.integers(0, 40, size=n),
                    "plan": pd.Series(rng.choice(["basic", "plus"], n), dtype="str"),
                    "label": (rng.random(n) < 1 / (1 + np.exp(-(a - 1.5 + 0.3 * j)))).astype(int),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("n", [37, 500, 1999, 3999])
def test_every_cutoff_and_label_keeps_its_share_within_rounding(n):
    df = _panel()
    idx = stratified_sample(df, n, seed=3)
    assert len(idx) == n and len(np.unique(idx)) == n
    assert np.all(np.diff(idx) > 0)  # table order kept
    full = df.groupby(["cutoff", "label"]).size()
    got = df.iloc[idx].groupby(["cutoff", "label"]).size().reindex(full.index, fill_value=0)
    expected = n * full / len(df)
    assert (got - expected).abs().max() < 1
    assert got.sum() == n


def test_the_same_seed_draws_the_same_rows_and_another_seed_others():
    df = _panel()
    first = stratified_sample(df, 1000, seed=42)
    assert np.array_equal(first, stratified_sample(df, 1000, seed=42))
    assert np.array_equal(first, stratified_sample(df.copy(), 1000, seed=42))
    other = stratified_sample(df, 1000, seed=43)
    assert len(other) == 1000 and not np.array_equal(first, other)


@pytest.mark.parametrize("n", [None, 4000, 10**9])
def test_a_sample_as_large_as_the_table_is_the_table_itself(n):
    df = _panel()
    assert len(df) == 4000
    assert np.array_equal(stratified_sample(df, n, seed=1), np.arange(len(df)))
    assert sample_rows(df, n, seed=1) is df


def test_a_sample_keeps_every_cutoff_so_the_folds_keep_their_time_structure():
    df = _panel()
    sample = sample_rows(df, 400, seed=5)
    full_folds = cv_folds(df, 30, 3, seed=5)
    sample_folds = cv_folds(sample, 30, 3, seed=5)
    assert [f.valid_cutoff for f in sample_folds] == [f.valid_cutoff for f in full_folds]
    for f in sample_folds:
        assert sample["cutoff"].iloc[f.train_idx].max() < f.valid_cutoff


def test_a_sample_needs_a_row():
    with pytest.raises(ValueError, match="at least one row"):
        stratified_sample(_panel(), 0, seed=0)


def _spec() -> TuningSpec:
    return TuningSpec(
        base={**TRAIN["lgbm"], "n_estimators": 30, "n_jobs": 1},
        space={"num_leaves": [7, 15]},
        n_trials=2,
        timeout_s=600,
        early_stopping_rounds=5,
        calibration=("none", "sigmoid"),
        calibration_tie=0.001,
        probability_floor=0.001,
    )


def test_the_chosen_parameters_are_refitted_on_the_refit_rows(monkeypatch):
    refits: list[int] = []

    def spy(kind, params, train, *args, **kwargs):
        refits.append(len(train))
        return fit_fold(kind, params, train, *args, **kwargs)

    monkeypatch.setattr(selection, "fit_fold", spy)  # the refit; the folds' fits are tune's
    df = _panel()
    tuning = sample_rows(df, 1500, seed=0)
    refit = sample_rows(df, 3000, seed=0)
    folds = cv_folds(tuning, 30, 2, seed=0)
    seen: list[int] = []
    cand = train_candidate(
        "lgbm",
        tuning,
        folds,
        FEATURES,
        _spec(),
        seed=0,
        capacity=0.1,
        refit=refit,
        on_progress=seen.append,
    )
    assert (cand.tune_rows, cand.refit_rows) == (1500, 3000)
    assert refits == [3000]
    # every fit reported: 2 trials x 2 folds (a pruned trial's folds too), 2 out-of-fold, refit
    assert sum(seen) == 2 * 2 + 2 + 1


def test_tuning_on_a_sample_as_large_as_the_table_changes_nothing():
    df = _panel()
    folds = cv_folds(df, 30, 2, seed=0)
    plain = train_candidate("lgbm", df, folds, FEATURES, _spec(), seed=0, capacity=0.1)
    same = sample_rows(df, 10**6, seed=0)
    sampled = train_candidate(
        "lgbm", same, cv_folds(same, 30, 2, seed=0), FEATURES, _spec(), 0, 0.1, refit=df
    )
    assert sampled.best_params == plain.best_params and sampled.cv == plain.cv
    p0 = plain.model.predict_proba(df[FEATURES])[:, 1]
    p1 = sampled.model.predict_proba(df[FEATURES])[:, 1]
    assert np.array_equal(p0, p1)


def test_compact_features_holds_numbers_as_float32_without_touching_the_input():
    df = _panel()
    df["big"] = np.int64(2**40)
    out = compact_features(df, [*FEATURES, "n_logins", "big"])
    assert out["a"].dtype == np.float32 and out["n_logins"].dtype == np.float32
    assert np.array_equal(out["n_logins"].to_numpy(), df["n_logins"].to_numpy())  # exact
    assert out["big"].dtype == np.int64  # beyond float32's exact integers: kept
    assert out["plan"].dtype == df["plan"].dtype and out["label"].dtype == df["label"].dtype
    assert df["a"].dtype == np.float64  # the input is not changed


@pytest.mark.parametrize(
    ("load", "own", "cores", "want"),
    [
        (0.2, 0.0, 2, 2),
        (1.0, 1.0, 2, 2),
        (2.1, 1.0, 2, 1),  # another program keeps a core busy
        (9.0, 1.0, 2, 1),
        (2.0, 1.0, 8, 7),
        (2.1, 2.0, 2, 2),  # the load is this process's own last two-thread fit: keep both
        (3.0, 2.0, 2, 1),
    ],
)
def test_lightgbm_threads_follow_the_idle_cores_unless_given(monkeypatch, load, own, cores, want):
    from churnlight.models import train

    monkeypatch.setattr(train.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(train.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(train, "_own_busy_cores", lambda: own)
    assert train.threads(None) == want
    assert train.threads(3) == 3


def test_the_training_table_is_read_in_chunks_as_read_snapshots_orders_it(tmp_path):
    from churnlight.models.artifacts import read_snapshots, read_training_snapshots

    df = _panel().sample(frac=1.0, random_state=0)  # the file's order is not the models' order
    df["note"] = "x"
    path = tmp_path / "features.parquet"
    df.to_parquet(path, index=False)
    feats = ["a", "n_logins", "plan", "b"]
    table, example = read_training_snapshots(path, feats, example_rows=3, chunk=2)
    want = read_snapshots(path)
    assert list(table.columns) == list(want.columns)
    pd.testing.assert_frame_equal(table, compact_features(want, feats))
    pd.testing.assert_frame_equal(example, want[feats].head(3))  # the file's dtypes


def test_training_rows_tune_on_the_sample_and_refit_on_every_row():
    df = _panel()
    rows = selection.training_rows(df, 1000, None, 30, 2, seed=0)
    assert len(rows.tuning) == 1000 and rows.refit is df and rows.train is df
    assert [len(f.valid_idx) + len(f.train_idx) <= 1000 for f in rows.folds] == [True, True]
    assert max(f.valid_idx.max() for f in rows.folds) < 1000  # the folds index the sample


def test_train_all_shows_every_fit_of_every_candidate():
    from contextlib import contextmanager

    df = _panel()
    rows = selection.training_rows(df, 1500, 3000, 30, 2, seed=0)
    shown: dict[str, list[int]] = {}

    @contextmanager
    def bar(description, total):
        done: list[int] = []
        yield done.append
        shown[description] = [total, sum(done)]

    fitted = selection.train_all(
        {"lgbm": _spec()}, rows, FEATURES, 0, 0.1, "pr_auc", open_progress=bar
    )
    # 2 trials x 2 folds, 2 out-of-fold fits, the refit's rounds found again, the refit
    assert shown == {"train lgbm": [2 * 2 + 2 + 1 + 1] * 2}
    assert (fitted["lgbm"].tune_rows, fitted["lgbm"].refit_rows) == (1500, 3000)


def test_the_refit_finds_lightgbms_rounds_again_on_its_own_newest_fold(monkeypatch):
    calls: list[tuple[int, bool, int]] = []

    def spy(kind, params, train, valid, *args, **kwargs):
        calls.append((len(train), valid is not None, params["n_estimators"]))
        return fit_fold(kind, params, train, valid, *args, **kwargs)

    monkeypatch.setattr(selection, "fit_fold", spy)  # the refit's fits; the folds' are tune's
    df = _panel()
    rows = selection.training_rows(df, 1500, None, 30, 2, seed=0)
    spec = _spec()
    cand = train_candidate(
        "lgbm",
        rows.tuning,
        rows.folds,
        FEATURES,
        spec,
        0,
        0.1,
        refit=df,
        refit_folds=rows.refit_folds,
    )
    newest = rows.refit_folds[-1]
    assert len(newest.valid_idx) > len(rows.folds[-1].valid_idx)  # built on all the rows
    (found, refit) = calls
    assert found[:3] == (len(newest.train_idx), True, spec.base["n_estimators"])  # the cap
    assert refit[:2] == (len(df), False)
    assert refit[2] == cand.best_params["n_estimators"] <= spec.base["n_estimators"]
    # the tree count the refit keeps is the one it found, not the sample's
    assert cand.model.pipeline.named_steps["model"].n_estimators == refit[2]


def test_a_refit_on_the_tuning_rows_keeps_the_tuned_rounds(monkeypatch):
    calls: list[bool] = []

    def spy(kind, params, train, valid, *args, **kwargs):
        calls.append(valid is not None)
        return fit_fold(kind, params, train, valid, *args, **kwargs)

    monkeypatch.setattr(selection, "fit_fold", spy)
    df = _panel()
    rows = selection.training_rows(df, None, None, 30, 2, seed=0)
    assert rows.refit is rows.tuning and rows.refit_folds is rows.folds
    train_candidate(
        "lgbm",
        rows.tuning,
        rows.folds,
        FEATURES,
        _spec(),
        0,
        0.1,
        refit=rows.refit,
        refit_folds=rows.refit_folds,
    )
    assert calls == [False]  # the refit alone: nothing found again


def test_own_busy_cores_is_this_process_cpu_over_wall_time():
    from churnlight.models import train

    train._own_busy_cores()
    t0 = time.time()
    while time.time() - t0 < 0.3:  # one core busy (less of it on a loaded machine)
        pass
    busy = train._own_busy_cores()
    time.sleep(0.3)
    idle = train._own_busy_cores()
    assert busy < 1.6 and idle < 0.2 and busy > idle + 0.2
