"""The simulated company's retention campaigns (issue 14; domain.md sections 2, 4, 5 and 8).

Each month, at the cutoff opening it, the company's OLD process flags customers by a noisy
three-colour rule on what it can observe (a service failure that reached it, activity down
against the customer's own level, a low satisfaction proxy), holds out a random control share
and contacts the rest. A contact has a known effect by kind of churn: a customer deciding to
leave (active) may be won back to healthy, a silently fading one rarely, a healthy one gets
nothing, and passive churn (a random hazard) is untouched. The true P(churn) if treated and if
not is recorded for every flagged customer, treated or control.

Every draw here comes from its own generator, so the world's main random stream is the same with
campaigns on or off; only the effects change what follows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from churnlight.features.synthetic.config import FADING, HEALTHY, INTENT, MS_PER_DAY, WorldConfig

GREEN, YELLOW, RED = 0, 1, 2
# the playbook's action per colour (domain.md section 2 and 5): action, channel, owner
PLAYBOOK = {
    RED: ("account manager call", "phone", "account_manager"),
    YELLOW: ("care message + coupon", "sms", "marketing"),
}
CONTROL_ACTION = "none (control)"
CAMPAIGN_SEED = 14  # second word of the campaign generator's seed: [base.seed, 14]


def campaign_rng(seed: int) -> np.random.Generator:
    """The campaigns' own generator, derived from base.seed."""
    return np.random.default_rng([seed, CAMPAIGN_SEED])


@dataclass
class CampaignLog:
    """Every flagged customer, month by month (filled by `run_campaign`)."""

    customer: list[np.ndarray] = field(default_factory=list)
    month: list[np.ndarray] = field(default_factory=list)
    colour: list[np.ndarray] = field(default_factory=list)
    treated: list[np.ndarray] = field(default_factory=list)
    state: list[np.ndarray] = field(default_factory=list)
    p_control: list[np.ndarray] = field(default_factory=list)
    p_treated: list[np.ndarray] = field(default_factory=list)
    offset_ms: list[np.ndarray] = field(default_factory=list)
    last_flagged: np.ndarray | None = None  # per customer: the month last flagged (cool-down)

    def arrays(self) -> dict[str, np.ndarray]:
        names = (
            "customer",
            "month",
            "colour",
            "treated",
            "state",
            "p_control",
            "p_treated",
            "offset_ms",
        )
        return {
            k: np.concatenate(getattr(self, k)) if getattr(self, k) else np.array([]) for k in names
        }


def old_process_colour(
    cfg: WorldConfig,
    state: np.ndarray,
    months_in_state: np.ndarray,
    e_prev: np.ndarray,
    mu_e: np.ndarray,
    s_prev: np.ndarray,
    failure_recent: np.ndarray,
    alive: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Green/yellow/red per customer from what the company observes, with noise: a failure of
    the last 2 months that reached it (service), last month's activity against the customer's
    own level (behaviour), a satisfaction proxy (attitude). Red: 2+ families, or activity down
    by more than the spend rule's 70% (domain.md section 2)."""
    n = state.size
    mult = np.where(state == INTENT, cfg.intent_activity_factor, 1.0)
    mult = np.where(state == FADING, cfg.fading_decay ** (1.0 + months_in_state), mult)
    noise = cfg.campaign_observation_noise
    seen_level = 0.5 * (e_prev - mu_e) + np.log(mult) + noise * rng.standard_normal(n)
    drop = 1.0 - np.exp(seen_level)
    service = failure_recent & (rng.random(n) < cfg.campaign_failure_seen)
    behaviour = drop >= cfg.campaign_activity_drop
    attitude = s_prev + noise * rng.standard_normal(n) < cfg.campaign_low_satisfaction
    families = service.astype(int) + behaviour + attitude
    colour = np.where(families >= 2, RED, np.where(families == 1, YELLOW, GREEN))
    colour = np.where(behaviour & (drop >= max(0.7, cfg.campaign_activity_drop)), RED, colour)
    return np.where(alive, colour, GREEN).astype(np.int8)


def run_campaign(
    cfg: WorldConfig,
    t: int,
    cur: np.ndarray,
    colour: np.ndarray,
    risk_now: np.ndarray,
    risk_if_healthy: np.ndarray,
    rng: np.random.Generator,
    log: CampaignLog,
) -> np.ndarray:
    """Month t's campaign on the flagged customers: the yellow ones the capacity allows and every
    red one, unless flagged in the last `campaign_cooldown_months`; a random control share is
    held out. Returns who is won back to healthy (the caller applies it before the month's churn
    checks) and logs every flagged customer."""
    n = cur.size
    u_cap, u_ctl, u_eff = rng.random(n), rng.random(n), rng.random(n)
    offset = (rng.random(n) * 2 * MS_PER_DAY).astype(np.int64)
    if log.last_flagged is None:
        log.last_flagged = np.full(n, -cfg.campaign_cooldown_months)
    # flagged in the last months: contacted (or held out) already, left alone for the window
    rested = t - log.last_flagged >= cfg.campaign_cooldown_months
    flagged = rested & (
        (colour == RED) | ((colour == YELLOW) & (u_cap < cfg.campaign_yellow_share))
    )
    log.last_flagged[flagged] = t
    treated = flagged & (u_ctl >= cfg.campaign_control_share)
    factor = np.where(colour == RED, cfg.campaign_red_factor, cfg.campaign_yellow_factor)
    base = np.select(
        [cur == INTENT, cur == FADING], [cfg.campaign_effect_active, cfg.campaign_effect_silent], 0
    )
    effect = base * factor  # chance the contact brings the customer back to healthy
    won = treated & (u_eff < effect)
    idx = np.flatnonzero(flagged)
    log.customer.append(idx)
    log.month.append(np.full(idx.size, t))
    log.colour.append(colour[idx])
    log.treated.append(treated[idx])
    log.state.append(cur[idx].copy())
    log.p_control.append(risk_now[idx])
    log.p_treated.append(effect[idx] * risk_if_healthy[idx] + (1 - effect[idx]) * risk_now[idx])
    log.offset_ms.append(offset[idx])
    return won


def campaign_tables(
    cfg: WorldConfig,
    arrays: dict[str, np.ndarray],
    month_ms: np.ndarray,
    ids: Callable[[np.ndarray], pa.Array],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw `contacts` table (the company's log) and its truth, one row each per flagged
    customer and month, in time order."""
    month = arrays["month"].astype(int)
    order = np.lexsort((arrays["customer"], month))
    a = {k: v[order] for k, v in arrays.items()}
    month = month[order]
    ts = pd.to_datetime(month_ms[month] + a["offset_ms"].astype(np.int64), unit="ms")
    labels = pd.to_datetime(month_ms, unit="ms").strftime("%Y-%m").to_numpy()
    campaign_id = pd.array(labels[month].astype(object) + "-retention", dtype="string")
    treated = a["treated"].astype(bool)
    colour = a["colour"].astype(int)
    play = [np.array([PLAYBOOK.get(c, ("", "", ""))[k] for c in colour]) for k in range(3)]
    cost = np.where(colour == RED, cfg.campaign_red_cost, cfg.campaign_yellow_cost)
    customer_id = ids(a["customer"].astype(np.int64))
    contacts = pd.DataFrame(
        {
            "customer_id": customer_id,
            "ts": ts,
            "campaign_id": campaign_id,
            "kind": "retention",
            "group": np.where(treated, "treatment", "control"),
            "action": np.where(treated, play[0], CONTROL_ACTION),
            "channel": np.where(treated, play[1], ""),
            "owner": np.where(treated, play[2], ""),
            "cost": np.where(treated, cost, 0.0),
        }
    )
    state = np.array(["healthy", "intent", "fading"])[
        np.select([a["state"] == INTENT, a["state"] == FADING], [1, 2], 0)
    ]
    truth = pd.DataFrame(
        {
            "customer_id": customer_id,
            "campaign_id": campaign_id,
            "ts": ts,
            "group": contacts["group"],
            "colour": np.array(["green", "yellow", "red"])[colour],
            "state": state,
            "p_churn_control": a["p_control"],
            "p_churn_treated": a["p_treated"],
            "true_uplift": a["p_control"] - a["p_treated"],
        }
    )
    return contacts, truth


def is_alive(cur: np.ndarray) -> np.ndarray:
    return (cur == HEALTHY) | (cur == INTENT) | (cur == FADING)
