"""`generate_world`: the steps from a seed to the raw tables and the truth tables."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from churnlight.features.synthetic.campaigns import campaign_rng, campaign_tables
from churnlight.features.synthetic.config import (
    NOT_YET,
    World,
    WorldConfig,
    month_starts_ms,
)
from churnlight.features.synthetic.events import (
    activity_events,
    take_str,
    trace_rates,
    transaction_events,
)
from churnlight.features.synthetic.feedback import feedback_events
from churnlight.features.synthetic.market import market_table, simulate_market
from churnlight.features.synthetic.simulation import (
    Customers,
    Lifetimes,
    Lives,
    draw_customers,
    draw_lifetimes,
    simulate_lives,
)
from churnlight.features.synthetic.winback import (
    Winback,
    append_after,
    return_events,
    simulate_winback,
    winback_rng,
    winback_tables,
)

log = logging.getLogger(__name__)
REASON_SEED = 0x5EA5  # the stated reasons' own generator: the rest of the world is unchanged


def generate_world(cfg: WorldConfig, seed: int) -> World:
    """Simulate the world. Same config and seed give identical tables.

    One random generator feeds every step in a fixed order, so the steps below must keep
    their order for a seed to keep its world.
    """
    rng = np.random.default_rng(seed)
    month_ms = month_starts_ms(cfg)
    shocks = simulate_market(cfg, rng)
    people = draw_customers(cfg, rng)
    lives = simulate_lives(cfg, people, shocks, rng, campaign_rng(seed) if cfg.campaigns else None)
    times = draw_lifetimes(people, lives, month_ms, rng)
    traces = trace_rates(cfg, lives, rng)
    activity, services_done = activity_events(cfg, people, lives, traces, times, rng)
    transactions = transaction_events(people, traces, times, rng)
    feedback = feedback_events(cfg, people, lives, traces, shocks, times, services_done, rng)
    market = market_table(cfg, shocks)
    wb = None
    if cfg.winback:  # after every draw of the main stream, from its own generator
        wrng = winback_rng(seed)
        wb = simulate_winback(cfg, people, lives, times, wrng)
        back_tx, back_act = return_events(cfg, people, wb, times.month_ms, wrng)
        transactions = append_after(transactions, back_tx)
        activity = append_after(activity, back_act)
    world = _assemble(cfg, people, lives, times, activity, transactions, feedback, market, wb)
    if cfg.cancel_reason_share > 0:
        stated = stated_reasons(
            lives, cfg.cancel_reason_share, np.random.default_rng([seed, REASON_SEED])
        )
        signed = times.signup_ms < times.month_ms[-1]
        world.customers["cancel_reason"] = pd.array(stated[signed], dtype="string")
    log.info(
        "world: %d customers, %d transactions, %d activity events, %d feedback rows",
        len(world.customers),
        len(world.transactions),
        len(world.activity),
        len(world.feedback),
    )
    return world


def stated_reasons(lives: Lives, share: float, rng: np.random.Generator) -> np.ndarray:
    """What the CRM's cancellation record says, per customer: the reason a leaver gave (the
    true one; a silent leaver's fading: `other`) for a `share` of them, None for the rest and
    for those who stay. Real records are this patchy: an exit survey some leavers answer."""
    churned = lives.churn_month >= 0
    told = churned & (rng.random(len(churned)) < share)
    reason = np.where(lives.reason == "fading", "other", lives.reason)
    return np.where(told, reason, None)


def _assemble(
    cfg: WorldConfig,
    people: Customers,
    lives: Lives,
    times: Lifetimes,
    activity: pd.DataFrame,
    transactions: pd.DataFrame,
    feedback: pd.DataFrame,
    market: pd.DataFrame,
    wb: Winback | None = None,
) -> World:
    """Customer ids and timestamps in place of numbers, the customers table and the truth;
    customers who sign up after the history ends are left out of all of them."""
    n = cfg.n_customers
    ids = np.array([f"C{i:07d}" for i in range(n)]) if n < 10**7 else np.arange(n).astype(str)
    ids_pa = pa.array(ids, type=pa.large_string())
    for df in (activity, transactions, feedback):
        df["customer_id"] = take_str(ids_pa, df["customer_id"].to_numpy())
        df["ts"] = pd.to_datetime(df["ts"].to_numpy(), unit="ms")

    churned = lives.churn_month >= 0
    churn_dt = pd.to_datetime(np.where(churned, times.churn_ms, 0), unit="ms").where(churned)
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": pd.to_datetime(times.signup_ms, unit="ms").normalize(),
            "region": np.array(cfg.regions)[people.region],
            "industry": np.array(cfg.industries)[people.industry],
            "plan": people.plan,
            "channel": people.channel,
            "acquired_via": people.acquired_via,
            "customer_type": people.customer_type,
            "cancel_date": churn_dt.normalize(),
        }
    )
    signed = times.signup_ms < times.month_ms[-1]
    truth_customers = pd.DataFrame(
        {
            "customer_id": ids,
            "churn_date": churn_dt,
            "churn_kind": pd.array(np.where(churned, lives.churn_kind, None), dtype="string"),
            "churn_reason": pd.array(np.where(churned, lives.reason, None), dtype="string"),
            "yearly_value": np.round(people.yearly_value, 2),
            "price_sensitivity": people.price_sens,
        }
    )[signed].reset_index(drop=True)
    contacts = truth_contacts = truth_winback = None
    if lives.campaigns is not None:
        contacts, truth_contacts = campaign_tables(
            cfg, lives.campaigns.arrays(), times.month_ms, lambda i: take_str(ids_pa, i)
        )
    if wb is not None:
        wb_contacts, truth_winback = winback_tables(
            cfg, wb, lives, times.month_ms, lambda i: take_str(ids_pa, i)
        )
        contacts = (
            wb_contacts
            if contacts is None
            else _by_month(pd.concat([contacts, wb_contacts], ignore_index=True))
        )
    return World(
        contacts=contacts,
        truth_contacts=truth_contacts,
        truth_winback=truth_winback,
        customers=customers[signed].reset_index(drop=True),
        transactions=transactions,
        activity=activity,
        feedback=feedback,
        market=market,
        truth_customers=truth_customers,
        truth_risk=_truth_risk(lives, times.month_ms, ids_pa),
        as_of=cfg.as_of,
    )


def _by_month(contacts: pd.DataFrame) -> pd.DataFrame:
    """The contact log month by month, each month's retention rows before its win-back rows."""
    month = contacts["ts"].to_numpy().astype("datetime64[M]")
    return contacts.iloc[np.argsort(month, kind="stable")].reset_index(drop=True)


def _truth_risk(lives: Lives, month_ms: np.ndarray, ids_pa: pa.Array) -> pd.DataFrame:
    """The true 3-month risk and latent state of every customer alive at each cutoff."""
    ci, ct = np.nonzero(~np.isnan(lives.risk))
    state = np.where(lives.status[ci, ct - 1] == NOT_YET, 0, lives.status[ci, ct - 1]).clip(0, 2)
    return pd.DataFrame(
        {
            "customer_id": take_str(ids_pa, ci),
            "cutoff": pd.to_datetime(month_ms[ct], unit="ms"),
            "true_risk": lives.risk[ci, ct],
            "state": take_str(
                pa.array(["healthy", "intent", "fading"], type=pa.large_string()), state
            ),
        }
    )
