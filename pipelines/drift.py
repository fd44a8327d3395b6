"""Drift of the features since training: the training window's rows in features.parquet against
a scoring snapshot, for the segment stage and `churnlight score` alike."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnlight.features.params import SegmentParams
from churnlight.models.segment import feature_drift


def window_drift(
    path: Path,
    train_cutoffs: list[str],
    scoring: pd.DataFrame,
    features: list[str],
    sp: SegmentParams,
    chunk: int = 16,
) -> pd.DataFrame:
    """`feature_drift` of the training window's rows in features.parquet (`path`) against
    `scoring`, read `chunk` feature columns at a time and only at the training cutoffs: at 1M
    customers all ~90 columns of every snapshot took about 10 GiB (issue 17); PSI is per
    feature, so the table is the same. The segment stage's and `churnlight score`'s."""
    dated = [("cutoff", "in", list(pd.to_datetime(train_cutoffs)))] if train_cutoffs else None
    parts = [
        feature_drift(
            pd.read_parquet(path, columns=["cutoff", *cols], filters=dated),
            *(train_cutoffs, scoring, cols, sp.psi_bins, sp.psi_threshold),
        )
        for cols in (features[i : i + chunk] for i in range(0, len(features), chunk))
    ]
    # the rows in feature order again, then population_stability's own sort
    psi = pd.concat(parts).set_index("name").loc[features].reset_index()
    return psi.sort_values("psi", ascending=False, ignore_index=True)
