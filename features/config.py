"""What a feature run is asked for: the `features` settings as typed values, the cutoffs, the
lexicon of the text signals."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from churnlight.features.params import FeaturesParams


@dataclass(frozen=True)
class FeatureConfig:
    """What the feature definitions read of the `features` settings (no defaults: those are
    params.yaml's), with the thresholds as plain dicts the SQL builders index."""

    label_window_days: int
    churn_definition: str
    inactivity_days: int
    windows_days: tuple[int, ...]
    signals: dict
    rfm: dict
    care: dict
    btyd: dict

    @classmethod
    def from_params(cls, p: FeaturesParams) -> FeatureConfig:
        return cls(
            label_window_days=p.label_window_days,
            churn_definition=p.churn_definition,
            inactivity_days=p.inactivity_days,
            windows_days=tuple(p.windows_days),
            signals=p.signals.model_dump(),
            rfm=p.rfm.model_dump(),
            care=p.care.model_dump(),
            btyd=p.btyd.model_dump(),
        )

    @property
    def label_horizon_days(self) -> int:
        """Days after a cutoff that its label reads: the row is labelled only if they are seen."""
        if self.churn_definition == "inactivity":
            return self.inactivity_days
        return self.label_window_days

    @property
    def lookback_days(self) -> int:
        """How far back activity is read: the longest window, and at least a year."""
        return max(max(self.windows_days), 365)


def make_cutoffs(
    as_of: pd.Timestamp, first: str | None, last: str | None, step_months: int
) -> list[pd.Timestamp]:
    """Monthly cutoffs counted back from the last one (default: the day after the data end)."""
    end = pd.Timestamp(last) if last else pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
    start = pd.Timestamp(first) if first else end - pd.DateOffset(months=12)
    out, k = [], 0
    while (c := end - pd.DateOffset(months=k * step_months)) >= start:
        out.append(c)
        k += 1
    return sorted(out)


def needed_cutoffs(
    cutoffs: list[pd.Timestamp], cfg: FeatureConfig, data_end: pd.Timestamp
) -> list[pd.Timestamp]:
    """The cutoffs whose rows the stage keeps: those whose label window ends by `data_end`, and
    the newest (the scoring snapshot). The ones between get neither a label nor a use, so
    aggregating them would be wasted work."""
    horizon = pd.Timedelta(days=cfg.label_horizon_days)
    newest = max(cutoffs, default=None)
    return [c for c in cutoffs if c + horizon <= data_end or c == newest]


def load_lexicon(path: str | Path | None = None) -> pd.DataFrame:
    """The bilingual phrase list of the text signals (vague replies, competitor mentions):
    features/lexicon.csv, or the file at `path` (setting `features.lexicon`)."""
    if path:
        return pd.read_csv(path, dtype=str)
    with (
        resources.files("churnlight.features").joinpath("lexicon.csv").open(encoding="utf-8") as fh
    ):
        return pd.read_csv(fh, dtype=str)
