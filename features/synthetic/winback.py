"""Leavers who come back, and the simulated company's win-back campaigns (issue 15; domain.md
sections 3, 4, 6 and 8).

A leaver comes back by itself with a rate that depends on why it left (moved away: never; need
gone or asset sold: rarely; an active leaver over service or price: more often; a silent one:
rarely) and on its value, and fades with the time since leaving (an exponential decay, so the
true chance of a return in any window is exact). Each month, in its first 2 days, the company
offers a "come back" to those who left in the last `winback_lookback_days` and are not back yet
(once per leaver), holding out a random control share; a treated leaver comes back with an extra
chance that depends on the reason and on the offer's strength, which follows the value tier.

A returned customer's own events resume at about its former level until the data end; it keeps
its cancel_date (the observable definition of a return is the first own event after leaving).
Every draw comes from the win-back generator, so with `generate.winback: false` the world is
exactly what it was without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from churnlight.features.synthetic.config import MS_PER_DAY, WorldConfig, sigmoid
from churnlight.features.synthetic.events import expand, poisson, sort_order, take_str
from churnlight.features.synthetic.simulation import Customers, Lifetimes, Lives

WINBACK_SEED = 15  # second word of the win-back generator's seed: [base.seed, 15]
TIERS = ("platinum", "gold", "silver", "regular")
MEDIAN_VALUE = 9000.0  # the world's median yearly value (draw_customers): the value factor's 1
DAYS_PER_MONTH = 30.44
# the win-back playbook per value tier (domain.md sections 5 and 8): action, channel, owner
PLAYBOOK = {
    "platinum": (
        "Account manager personal call; old-customer benefits restored",
        "phone",
        "account_manager",
    ),
    "gold": ("Personal call with a come-back offer", "phone", "customer_success"),
    "silver": (
        "Come-back offer by message: a discount on the first order back",
        "sms",
        "marketing",
    ),
    "regular": (
        "Automated come-back offer: free delivery on the first order back",
        "email",
        "marketing",
    ),
}
CONTROL_ACTION = "none (control)"
ACTIVITY_TYPES = ("login", "visit", "booking", "outreach_sent", "outreach_replied")


def lookup(keys: np.ndarray, mapping: dict, default: object = 0.0) -> np.ndarray:
    """mapping[key] per element, vectorised over the few distinct keys (no loop per customer)."""
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    return np.array([mapping.get(k, default) for k in uniq])[inv.reshape(-1)]


def winback_rng(seed: int) -> np.random.Generator:
    """The win-back's own generator, derived from base.seed."""
    return np.random.default_rng([seed, WINBACK_SEED])


@dataclass(frozen=True)
class Winback:
    """Per leaver (customer number order), what happened after leaving."""

    customer: np.ndarray  # customer numbers of the leavers
    churn_ms: np.ndarray
    value: np.ndarray  # yearly value
    tier: np.ndarray  # the company's value tier
    flagged: np.ndarray  # offered (or held out) in a win-back campaign
    treated: np.ndarray
    month: np.ndarray  # the campaign's month (index), -1 if never flagged
    ts_ms: np.ndarray  # the campaign contact's instant, or the month start after leaving
    p_control: np.ndarray  # P(return within the window of ts_ms) without an offer
    p_offer: np.ndarray  # ... with an offer
    return_ms: np.ndarray  # int64 max if never back (within the history or at all)


def company_tiers(cfg: WorldConfig, value: np.ndarray) -> np.ndarray:
    """The company's value tier of each customer, from its yearly value."""
    cut = cfg.winback_tier_values
    return np.select(
        [value >= cut["platinum"], value >= cut["gold"], value >= cut["silver"]],
        list(TIERS[:3]),
        TIERS[3],
    )


def _cum_hazard(rate: np.ndarray, tau: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integral over (a, b] days of rate x exp(-s / tau)."""
    return rate * tau * (np.exp(-a / tau) - np.exp(-b / tau))


def simulate_winback(
    cfg: WorldConfig, people: Customers, lives: Lives, times: Lifetimes, rng: np.random.Generator
) -> Winback:
    """Returns and win-back campaigns for every leaver of the history, vectorised."""
    month_ms = times.month_ms
    t_n = cfg.months
    who = np.flatnonzero(lives.churn_month >= 0)
    churn_ms = times.churn_ms[who]
    reason = lives.reason[who].astype(str)
    value = people.yearly_value[who]
    tier = company_tiers(cfg, value)
    n = who.size
    # own return hazard, per day, s days after the day after leaving
    rate_m = lookup(reason, cfg.winback_return_rate).astype(float)
    rate = rate_m / DAYS_PER_MONTH * (value / MEDIAN_VALUE) ** cfg.winback_return_value
    tau = cfg.winback_return_decay_months * DAYS_PER_MONTH
    start_ms = churn_ms + MS_PER_DAY
    e = rng.exponential(1.0, n)
    mass = rate * tau
    back = e < mass
    s_days = np.where(back, -tau * np.log1p(-np.where(back, e / np.maximum(mass, 1e-300), 0)), 0)
    never = np.iinfo(np.int64).max
    own_ms = np.where(back, start_ms + (s_days * MS_PER_DAY).astype(np.int64), never)
    # the campaign after leaving: the next month's first 2 days, for the recent leavers not back
    nxt = lives.churn_month[who] + 1
    offset = (rng.random(n) * 2 * MS_PER_DAY).astype(np.int64)
    u_ctl, u_eff, u_when = rng.random(n), rng.random(n), rng.random(n)
    ts_ms = month_ms[nxt] + np.where(nxt < t_n, offset, 0)
    recent = month_ms[nxt] - churn_ms <= cfg.winback_lookback_days * MS_PER_DAY
    flagged = (nxt < t_n) & recent & (own_ms > ts_ms)
    treated = flagged & (u_ctl >= cfg.winback_control_share)
    factor = lookup(tier, cfg.winback_offer_tier_factor).astype(float)
    effect = lookup(reason, cfg.winback_offer_effect).astype(float) * factor
    # true chances over the window from the contact (or the month start after leaving)
    a = np.maximum((ts_ms - start_ms) / MS_PER_DAY, 0.0)
    p_control = 1 - np.exp(-_cum_hazard(rate, tau, a, a + cfg.winback_window_days))
    p_offer = 1 - (1 - effect) * (1 - p_control)
    respond = min(cfg.winback_offer_response_days, cfg.winback_window_days)
    offer_ms = ts_ms + (u_when * respond * MS_PER_DAY).astype(np.int64) + 1
    by_offer = treated & (u_eff < effect)
    return_ms = np.where(by_offer, np.minimum(own_ms, offer_ms), own_ms)
    return Winback(
        customer=who,
        churn_ms=churn_ms,
        value=value,
        tier=tier,
        flagged=flagged,
        treated=treated,
        month=np.where(flagged, nxt, -1),
        ts_ms=ts_ms,
        p_control=p_control,
        p_offer=p_offer,
        return_ms=return_ms,
    )


def return_events(
    cfg: WorldConfig,
    people: Customers,
    wb: Winback,
    month_ms: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transactions and activity of the returned customers from their return to the data end
    (integer customer numbers, ms times, each sorted like the world's own tables): a first
    purchase at the return instant, then their former rhythm times `winback_return_level`."""
    end_ms = month_ms[-1]
    back = wb.return_ms < end_ms
    cust = wb.customer[back]
    ret = wb.return_ms[back]
    n, t_n = cust.size, cfg.months
    ret_month = np.searchsorted(month_ms, ret, side="right") - 1
    live = (np.arange(t_n)[None, :] >= ret_month[:, None]).astype(float)
    level = cfg.winback_return_level
    noise = np.exp(0.15 * cfg.trace_noise * rng.standard_normal((n, t_n)))
    engage = np.exp(0.5 * people.mu_e[cust])[:, None] * level * noise * live

    def rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i, _, ts = expand(counts, month_ms, rng)
        keep = (ts > ret[i]) & (ts < end_ms)
        return i[keep], ts[keep]

    buys = people.buys_per_year[cust][:, None] / 12.0 * level * noise * live
    ti, tts = rows(poisson(buys, rng))
    ti, tts = np.concatenate([np.arange(n), ti]), np.concatenate([ret, tts])
    c = cust[ti]
    per_buy = people.yearly_value[c] / people.buys_per_year[c]
    amount = np.round(per_buy * np.exp(0.35 * rng.standard_normal(c.size)), 2)
    category = np.where(
        rng.random(c.size) < 0.8 * people.price_sens[c],
        "promo",
        rng.choice(np.array(["service", "parts", "accessories", "upgrade"]), c.size),
    )
    order = sort_order(c, tts - tts.min()) if c.size else np.arange(0)
    transactions = pd.DataFrame(
        {"customer_id": c, "ts": tts, "amount": amount, "category": category}
    ).iloc[order]
    sent = poisson(0.8 * live, rng)
    reply_p = np.clip(0.55 + 0.25 * sigmoid(people.mu_e[cust]), 0.02, 0.98)[:, None]
    counts = [
        poisson(people.login_rate[cust][:, None] * engage, rng),
        poisson(people.visit_rate[cust][:, None] * engage, rng),
        poisson(0.25 * engage, rng),
        sent,
        rng.binomial(sent, np.broadcast_to(reply_p, sent.shape)).astype(np.int32),
    ]
    parts = [rows(k) for k in counts]
    ai = np.concatenate([p[0] for p in parts])
    ats = np.concatenate([p[1] for p in parts])
    code = np.concatenate([np.full(p[0].size, k, dtype=np.int8) for k, p in enumerate(parts)])
    ac = cust[ai]
    order = sort_order(ac, ats - ats.min(), code) if ac.size else np.arange(0)
    activity = pd.DataFrame(
        {
            "customer_id": ac[order],
            "ts": ats[order],
            "event_type": take_str(pa.array(ACTIVITY_TYPES, type=pa.large_string()), code[order]),
        }
    )
    return transactions.reset_index(drop=True), activity


def append_after(own: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """The world's event table with `extra` (the same columns, later than every own event of
    its customers) placed after each customer's own events: still ordered by customer and
    time, the existing rows in their order."""
    if extra.empty:
        return own
    both = pd.concat([own, extra.astype(own.dtypes.to_dict())], ignore_index=True)
    order = np.argsort(both["customer_id"].to_numpy(), kind="stable")
    return both.iloc[order].reset_index(drop=True)


def winback_tables(
    cfg: WorldConfig,
    wb: Winback,
    lives: Lives,
    month_ms: np.ndarray,
    ids: Callable[[np.ndarray], pa.Array],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The win-back rows of the raw `contacts` table (in time order) and the truth, one row per
    leaver (customer order)."""
    labels = pd.to_datetime(month_ms, unit="ms").strftime("%Y-%m").to_numpy().astype(object)
    f = np.flatnonzero(wb.flagged)
    f = f[np.lexsort((wb.customer[f], wb.ts_ms[f]))]
    treated, tier = wb.treated[f], wb.tier[f]
    play = [lookup(tier, {t: p[k] for t, p in PLAYBOOK.items()}, "") for k in range(3)]
    cost = lookup(tier, cfg.winback_offer_cost).astype(float)
    contacts = pd.DataFrame(
        {
            "customer_id": ids(wb.customer[f]),
            "ts": pd.to_datetime(wb.ts_ms[f], unit="ms"),
            "campaign_id": pd.array(labels[wb.month[f]] + "-winback", dtype="string"),
            "kind": "winback",
            "group": np.where(treated, "treatment", "control"),
            "action": np.where(treated, play[0], CONTROL_ACTION),
            "channel": np.where(treated, play[1], ""),
            "owner": np.where(treated, play[2], ""),
            "cost": np.where(treated, cost, 0.0),
        }
    )
    flagged = wb.flagged
    churn_dt = pd.to_datetime(wb.churn_ms, unit="ms")
    back = wb.return_ms < month_ms[-1]  # back within the history
    campaign = np.where(flagged, labels[np.where(flagged, wb.month, 0)] + "-winback", None)
    truth = pd.DataFrame(
        {
            "customer_id": ids(wb.customer),
            "left_date": churn_dt.normalize(),
            "churn_kind": pd.array(lives.churn_kind[wb.customer], dtype="string"),
            "churn_reason": pd.array(lives.reason[wb.customer], dtype="string"),
            "yearly_value": np.round(wb.value, 2),
            "value_tier": wb.tier,
            "campaign_id": pd.array(campaign, dtype="string"),
            "group": pd.array(
                np.where(flagged, np.where(wb.treated, "treatment", "control"), None),
                dtype="string",
            ),
            "ts": pd.to_datetime(wb.ts_ms, unit="ms"),
            "p_return_control": wb.p_control,
            "p_return_offer": wb.p_offer,
            "returned_date": pd.to_datetime(np.where(back, wb.return_ms, 0), unit="ms").where(back),
        }
    )
    return contacts, truth
