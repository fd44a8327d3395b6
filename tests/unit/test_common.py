"""Helpers shared by the stages."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlight.features.snapshots import read_snapshots


def test_the_models_read_the_snapshots_in_one_order_whatever_the_file_holds(tmp_path):
    # the features stage writes (customer_id, cutoff) order; train and evaluate must see the
    # same frame from any order of the same rows, or the file's layout would change the model
    rng = np.random.default_rng(0)
    n = 500
    rows = pd.DataFrame(
        {
            "customer_id": pd.Series([f"C{i % 97:03d}" for i in range(n)], dtype="str"),
            "cutoff": pd.to_datetime("2026-01-01")
            + pd.to_timedelta(30 * (np.arange(n) // 97), "D"),
            "x": rng.normal(size=n),
        }
    )
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
    # campaigns reads only the campaign cutoffs' rows (issue 17): the same frame as reading
    # everything and keeping those rows, in the same order
    rng = np.random.default_rng(1)
    n = 600
    rows = pd.DataFrame(
        {
            "customer_id": pd.Series([f"C{i % 101:03d}" for i in range(n)], dtype="str"),
            "cutoff": pd.to_datetime("2026-01-01")
            + pd.to_timedelta(31 * (np.arange(n) // 101), "D"),
            "x": rng.normal(size=n),
        }
    ).sample(frac=1.0, random_state=3)
    path = tmp_path / "features.parquet"
    rows.to_parquet(path, index=False)
    whole = read_snapshots(path)
    keep = sorted(whole["cutoff"].unique())[1::2]
    got = read_snapshots(path, filters=[("cutoff", "in", keep)])
    want = whole[whole["cutoff"].isin(keep)].reset_index(drop=True)
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(got, want)
    empty = read_snapshots(path, filters=[("cutoff", "in", [])])
    assert empty.empty and list(empty.columns) == list(whole.columns)
