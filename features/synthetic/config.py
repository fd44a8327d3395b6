"""The synthetic world's knobs (`WorldConfig`), what it returns (`World`), and the states a
simulated customer moves through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnlight.features.params import GenerateParams

# a customer's state in a month: the latent truth behind every trace
HEALTHY, INTENT, FADING, CHURNED, NOT_YET = 0, 1, 2, 3, 4
ACTIVE_REASONS = ("service", "price", "convenience", "relationship")
MS_PER_DAY = 86_400_000


class WorldConfig(GenerateParams):
    """The world's knobs: params.yaml's `generate` section, its one place of defaults (README
    section "The synthetic world" explains each), with the dates they imply."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **changes: Any) -> WorldConfig:
        """From the `generate` section (a dict, e.g. `GenerateParams.model_dump()`) with
        `changes`; every knob must be there, and no other key."""
        return cls.model_validate({**params, **changes})

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start)

    @property
    def end_ts(self) -> pd.Timestamp:
        """Exclusive end of the history: the scoring cutoff."""
        return self.start_ts + pd.DateOffset(months=self.months)

    @property
    def as_of(self) -> pd.Timestamp:
        """The last day the data covers (inclusive), as a user would state it."""
        return self.end_ts - pd.Timedelta(days=1)


@dataclass
class World:
    """Raw tables (the data contract) plus the truth tables kept apart from them."""

    customers: pd.DataFrame
    transactions: pd.DataFrame
    activity: pd.DataFrame
    feedback: pd.DataFrame
    market: pd.DataFrame
    truth_customers: pd.DataFrame
    truth_risk: pd.DataFrame
    as_of: pd.Timestamp = field(default_factory=lambda: pd.Timestamp("1970-01-01"))
    contacts: pd.DataFrame | None = None  # the company's contact log (generate.campaigns)
    truth_contacts: pd.DataFrame | None = None  # each contact's true effect
    truth_winback: pd.DataFrame | None = None  # each leaver's true return chances (winback)

    def raw_tables(self) -> dict[str, pd.DataFrame]:
        tables = {
            "customers": self.customers,
            "transactions": self.transactions,
            "activity": self.activity,
            "feedback": self.feedback,
            "market": self.market,
        }
        if self.contacts is not None:
            tables["contacts"] = self.contacts
        return tables

    def truth_tables(self) -> dict[str, pd.DataFrame]:
        tables = {"customers": self.truth_customers, "risk": self.truth_risk}
        if self.truth_contacts is not None:
            tables["contacts"] = self.truth_contacts
        if self.truth_winback is not None:
            tables["winback"] = self.truth_winback
        return tables

    def write(self, folder: Path) -> None:
        """Raw tables as Parquet in `folder`, truth tables and the data end in `folder/_truth`
        (the caller makes it all or nothing: the stage writes into an `atomic_dir`)."""
        for name, df in self.raw_tables().items():
            df.to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "_truth").mkdir()
        for name, df in self.truth_tables().items():
            df.to_parquet(folder / "_truth" / f"{name}.parquet", index=False)
        (folder / "_truth" / "as_of.txt").write_text(str(self.as_of.date()) + "\n")


def month_starts_ms(cfg: WorldConfig, extra: int = 1) -> np.ndarray:
    """Epoch milliseconds of each month start, plus `extra` months past the end."""
    idx = pd.date_range(cfg.start_ts, periods=cfg.months + extra, freq="MS")
    return idx.as_unit("ms").asi8


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
