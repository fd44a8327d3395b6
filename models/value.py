"""Customer value and value tiers that fit the business whose data this is.

The domain brief's RFM thresholds (a purchase a quarter, 50k a year for a top score) describe one
business; applied to a grocer or a telecom they put every customer in one tier. `quantile` scoring
is the textbook practice: each of recency, frequency and monetary value scores 1-5 by quintile of
the customer base at the same cutoff, so every tier is populated whatever the currency or the
buying rhythm. `fixed` keeps the brief's thresholds: the features' own `value_tier`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIER_NAMES = ("platinum", "gold", "silver", "regular")
SPEND_COLUMN = "monetary_per_year"  # the value when the data names no column of its own


class ValueColumnError(ValueError):
    """The customer value column is not among the snapshot's columns."""


def value_columns(column: str | None) -> list[str]:
    """The snapshot columns `customer_value` and `value_tiers` read (with the keys), so that a
    stage needing only values reads these, not every feature (issue 17)."""
    rfm = ["recency_days", "frequency_per_year", "value_tier"]
    return ["customer_id", "cutoff", column or SPEND_COLUMN, *rfm]


def customer_value(df: pd.DataFrame, column: str | None, multiplier: float) -> np.ndarray | None:
    """Yearly customer value per row: `column` x `multiplier` (e.g. monthly charges x 12), or
    the spend of the last 12 months when no column is named. None when the data has neither
    (activity-only events): no value is invented."""
    name = column or SPEND_COLUMN
    if name not in df.columns:
        if column is None:
            return None
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        raise ValueColumnError(
            f"data.value_column {column!r} is not a column of the scoring snapshot; "
            f"numeric columns: {numeric[:30]}"
        )
    value = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float) * float(multiplier)
    return np.nan_to_num(value, nan=0.0)


def quintile_score(x: pd.Series, higher_is_better: bool) -> pd.Series:
    """1-5 by quintile of `x` (ties share their average rank; missing scores 1)."""
    s = pd.to_numeric(x, errors="coerce")
    pct = (s if higher_is_better else -s).rank(method="average", pct=True)
    return np.ceil(5 * pct).clip(1, 5).fillna(1).astype(int)


def quantile_tiers(
    df: pd.DataFrame, value: np.ndarray | None, tiers: dict[str, int], by: str | None = None
) -> np.ndarray:
    """Value tiers from quintile scores of recency, frequency and `value`, where the data has
    them and they vary, within each group of `by` (a cutoff: the customer base at the time).

    The mean score is scaled to the 3-15 RFM sum, so `tiers` (minimum sums for platinum, gold
    and silver) read as for the fixed thresholds whichever dimensions exist."""
    work = pd.DataFrame(index=df.index)
    dims = []
    if "recency_days" in df:
        work["r"], dims = df["recency_days"], [*dims, ("r", False)]
    if "frequency_per_year" in df:
        work["f"], dims = df["frequency_per_year"], [*dims, ("f", True)]
    if value is not None:
        work["m"], dims = value, [*dims, ("m", True)]
    groups = [("", work)] if by is None else list(work.groupby(df[by].to_numpy(), dropna=False))
    out = pd.Series("regular", index=df.index, dtype=object)
    for _, g in groups:
        scores = [
            quintile_score(g[c], hi)
            for c, hi in dims
            if pd.to_numeric(g[c], errors="coerce").nunique() > 1
        ]
        if not scores:
            continue  # nothing tells customers apart: all regular
        total = (3 * pd.concat(scores, axis=1).mean(axis=1)).round()
        out[g.index] = np.select(
            [total >= tiers["platinum"], total >= tiers["gold"], total >= tiers["silver"]],
            ["platinum", "gold", "silver"],
            "regular",
        )
    return out.to_numpy()


def value_tiers(
    df: pd.DataFrame,
    value: np.ndarray | None,
    scoring: str,
    tiers: dict[str, int],
    by: str | None = None,
) -> np.ndarray:
    """platinum / gold / silver / regular per row: `fixed` takes the features' `value_tier`
    (the brief's thresholds; regular where the data cannot compute it), `quantile` scores the
    customer base (see `quantile_tiers`)."""
    if scoring == "fixed":
        if "value_tier" in df:
            return df["value_tier"].astype(object).fillna("regular").to_numpy()
        return np.full(len(df), "regular", dtype=object)
    if scoring == "quantile":
        return quantile_tiers(df, value, tiers, by)
    raise ValueError(f"unknown RFM scoring {scoring!r}: use 'quantile' or 'fixed'")
