"""The synthetic world's knobs (`WorldConfig`), what it returns (`World`), and the states a
simulated customer moves through."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

# a customer's state in a month: the latent truth behind every trace
HEALTHY, INTENT, FADING, CHURNED, NOT_YET = 0, 1, 2, 3, 4
ACTIVE_REASONS = ("service", "price", "convenience", "relationship")
MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class WorldConfig:
    """The world's knobs; README section "The synthetic world" explains each."""

    n_customers: int = 20_000
    months: int = 24
    start: str = "2024-11-01"
    regions: tuple[str, ...] = ("north", "south", "east", "west", "central")
    industries: tuple[str, ...] = (
        "retail",
        "manufacturing",
        "logistics",
        "hospitality",
        "services",
    )
    existing_share: float = 0.6
    hazard_intent_base: float = -5.0
    hazard_intent_satisfaction: float = 1.6
    hazard_intent_engagement: float = 1.3
    hazard_intent_competitor: float = 2.5
    hazard_intent_downturn: float = 0.8
    hazard_intent_policy: float = 1.6
    hazard_intent_new_customer: float = 2.5
    hazard_intent_basic_plan: float = 1.2
    hazard_passive: float = 0.016
    hazard_fading: float = 0.008
    intent_churn_per_month: float = 0.35
    fading_churn_per_month: float = 0.3
    intent_activity_factor: float = 0.3
    fading_decay: float = 0.5
    trace_noise: float = 1.0
    logins_per_month: float = 3.0
    competitor_launch_rate: float = 0.07
    policy_shock_rate: float = 0.02
    downturn_rate: float = 0.04

    @classmethod
    def from_params(cls, params: dict) -> WorldConfig:
        """Build from the `generate` section of params.yaml, ignoring unrelated keys."""
        known = {f.name for f in fields(cls)}
        kwargs = {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k in known
        }
        return cls(**kwargs)

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

    def raw_tables(self) -> dict[str, pd.DataFrame]:
        return {
            "customers": self.customers,
            "transactions": self.transactions,
            "activity": self.activity,
            "feedback": self.feedback,
            "market": self.market,
        }

    def truth_tables(self) -> dict[str, pd.DataFrame]:
        return {"customers": self.truth_customers, "risk": self.truth_risk}


def month_starts_ms(cfg: WorldConfig, extra: int = 1) -> np.ndarray:
    """Epoch milliseconds of each month start, plus `extra` months past the end."""
    idx = pd.date_range(cfg.start_ts, periods=cfg.months + extra, freq="MS")
    return idx.as_unit("ms").asi8


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
