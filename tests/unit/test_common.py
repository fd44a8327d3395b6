"""Helpers shared by the stages."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlight.features.snapshots import read_snapshots


def _rows(n: int, customers: int, days: int, seed: int) -> pd.DataFrame:
    """Snapshot-like rows: `customers` ids per cutoff, a cutoff every `days` days."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": pd.Series([f"C{i % customers:03d}" for i in range(n)], dtype="str"),
            "cutoff": pd.to_datetime("2026-01-01")
            + pd.to_timedelta(days * (np.arange(n) // customers), "D"),
            "x": rng.normal(size=n),
        }
    )


def test_the_models_read_the_snapshots_in_one_order_whatever_the_file_holds(tmp_path):
    # the features stage writes (customer_id, cutoff) order; train and evaluate must see the
    # same frame from any order of the same rows, or the file's layout would change the model
    n = 500
    rows = _rows(n, 97, 30, seed=0)
    frames = []
    for seed in (1, 2):
        path = tmp_path / f"features_{seed}.parquet"
        rows.sample(frac=1.0, random_state=seed).to_parquet(path, index=False)
        frames.append(read_snapshots(path))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    keys = list(zip(frames[0]["cutoff"], frames[0]["customer_id"], strict=True))
    assert keys == sorted(keys)
    assert frames[0].index.equals(pd.RangeIndex(n))


def test_filtered_snapshots_are_the_same_rows_as_filtering_after_reading(tmp_path):
    # a read of some cutoffs' rows (none, for campaigns without contacts) is the same frame as
    # reading everything and keeping those rows, in the same order
    path = tmp_path / "features.parquet"
    _rows(600, 101, 31, seed=1).sample(frac=1.0, random_state=3).to_parquet(path, index=False)
    whole = read_snapshots(path)
    keep = sorted(whole["cutoff"].unique())[1::2]
    got = read_snapshots(path, filters=[("cutoff", "in", keep)])
    want = whole[whole["cutoff"].isin(keep)].reset_index(drop=True)
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(got, want)
    empty = read_snapshots(path, filters=[("cutoff", "in", [])])
    assert empty.empty and list(empty.columns) == list(whole.columns)


class _Doubling:
    """A stand-in model: the probability is a function of the row's own features only."""

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-2 * rows["x"].to_numpy()))
        return np.column_stack([1 - p, p])


def test_scored_rows_streamed_are_the_whole_tables_scores(tmp_path):
    # campaigns scores the campaign cutoffs a batch at a time (issue 17): the same rows, order
    # and probabilities as scoring the whole read, whatever the file's order and row groups
    from churnlight.models.artifacts import scored_rows

    path = tmp_path / "features.parquet"
    rows = _rows(3000, 300, 30, seed=4).assign(label=lambda d: (d["x"] > 1).astype("Int8"))
    rows.sample(frac=1.0, random_state=5).to_parquet(path, index=False, row_group_size=700)
    whole = read_snapshots(path)
    keep = sorted(whole["cutoff"].unique())[2:5]
    got = scored_rows(path, keep, _Doubling(), ["x"], ["label", "not_in_the_file"])
    want = whole[whole["cutoff"].isin(keep)].reset_index(drop=True)
    assert list(got.columns) == ["cutoff", "customer_id", "label", "p"]
    pd.testing.assert_frame_equal(got.drop(columns="p"), want[["cutoff", "customer_id", "label"]])
    np.testing.assert_array_equal(got["p"].to_numpy(), _Doubling().predict_proba(want)[:, 1])
    assert scored_rows(path, [], _Doubling(), ["x"], ["label"]).empty
