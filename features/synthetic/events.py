"""The observable side of the world: monthly trace rates from the latent states, and the event
tables drawn from them (activity and transactions), each event inside its customer's lifetime.

Before leaving, activity drops (deciding customers by `intent_activity_factor`, fading ones
more every month), bookings get cancelled, outreach goes unanswered, services are skipped and
spend shrinks to basics, more so when price is the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from churnlight.features.synthetic.config import (
    FADING,
    HEALTHY,
    INTENT,
    WorldConfig,
    sigmoid,
)
from churnlight.features.synthetic.simulation import Customers, Lifetimes, Lives

Window = tuple[float, float]  # the part of its month an event falls in


@dataclass(frozen=True)
class Traces:
    """(customers, months) masks and rates that every observable table is drawn from."""

    alive_month: np.ndarray
    is_int: np.ndarray
    is_fad: np.ndarray
    act_mult: np.ndarray  # activity multiplier of the state
    noise: np.ndarray  # shared month noise on activity and spend
    engage: np.ndarray  # activity level: engagement x state x noise, 0 when not a customer
    int_service: np.ndarray  # deciding to leave, and why
    int_price: np.ndarray
    int_conv: np.ndarray
    int_rel: np.ndarray


def trace_rates(cfg: WorldConfig, lives: Lives, rng: np.random.Generator) -> Traces:
    status, reason = lives.status, lives.reason[:, None]
    alive_month = np.isin(status, (HEALTHY, INTENT, FADING))
    is_int = status == INTENT
    is_fad = status == FADING
    act_mult = np.where(is_int, cfg.intent_activity_factor, 1.0)
    act_mult = np.where(is_fad, cfg.fading_decay ** (1.0 + lives.months_in_state), act_mult)
    noise = np.exp(0.15 * cfg.trace_noise * rng.standard_normal(status.shape))
    return Traces(
        alive_month=alive_month,
        is_int=is_int,
        is_fad=is_fad,
        act_mult=act_mult,
        noise=noise,
        engage=np.exp(0.5 * lives.eng) * act_mult * noise * alive_month,
        int_service=is_int & (reason == "service"),
        int_price=is_int & (reason == "price"),
        int_conv=is_int & (reason == "convenience"),
        int_rel=is_int & (reason == "relationship"),
    )


def poisson(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(lam).astype(np.int32)


def activity_events(
    cfg: WorldConfig,
    people: Customers,
    lives: Lives,
    tr: Traces,
    times: Lifetimes,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The activity table (integer customer numbers, ms times) and the (customers, months)
    count of services done, which CSAT surveys follow."""
    whole = (0.0, 1.0)
    parts: list[tuple[str, np.ndarray, Window]] = [
        ("login", poisson(people.login_rate[:, None] * tr.engage, rng), whole),
        ("visit", poisson(people.visit_rate[:, None] * tr.engage, rng), whole),
    ]
    bookings = poisson(0.25 * tr.engage, rng)
    p_cancel = np.where(tr.is_int, 0.35, 0.06) + 0.35 * tr.int_conv
    cancelled = poisson(bookings * p_cancel + 0.08 * tr.int_conv * tr.alive_month, rng)
    parts += [("booking", bookings, whole), ("booking_cancelled", cancelled, whole)]
    sent = poisson(0.8 * tr.alive_month, rng)
    reply_p = np.where(tr.is_int | tr.is_fad, 0.3, 0.55 + 0.25 * sigmoid(lives.eng))
    reply_p = reply_p - 0.2 * tr.int_rel
    reply_p = np.clip(reply_p + 0.1 * cfg.trace_noise * rng.standard_normal(sent.shape), 0.02, 0.98)
    replied = rng.binomial(sent, reply_p).astype(np.int32)
    parts += [("outreach_sent", sent, whole), ("outreach_replied", replied, whole)]
    tenure_m = np.arange(cfg.months)[None, :] - people.signup_month[:, None]
    due = tr.alive_month & (tenure_m > 0) & (tenure_m % people.service_period[:, None] == 0)
    due = due.astype(np.int32)
    done = rng.binomial(due, np.where(tr.is_int | tr.is_fad, 0.3, 0.85)).astype(np.int32)
    # a service falls due early in the month and, when done, is done after that
    parts += [("service_due", due, (0.0, 0.3)), ("service_done", done, (0.35, 1.0))]
    return _event_table(parts, times, rng), done


def transaction_events(
    people: Customers, tr: Traces, times: Lifetimes, rng: np.random.Generator
) -> pd.DataFrame:
    """Purchases: fewer while deciding to leave or fading, smaller before leaving (a quarter of
    the usual basket when price is the reason), on promotion for price-sensitive customers."""
    tx_rate = (
        people.buys_per_year[:, None]
        / 12.0
        * np.where(tr.is_int, 0.4, 1.0)
        * np.where(tr.is_fad, tr.act_mult, 1.0)
        * tr.noise
        * tr.alive_month
    )
    cust, month, ts = expand(poisson(tx_rate, rng), times.month_ms, rng)
    per_buy = people.yearly_value / people.buys_per_year
    shrink = np.where(tr.int_price, 0.25, np.where(tr.is_int, 0.5, 1.0))[cust, month]
    amount = np.round(per_buy[cust] * shrink * np.exp(0.35 * rng.standard_normal(cust.size)), 2)
    category = np.where(
        rng.random(cust.size) < 0.8 * people.price_sens[cust],
        "promo",
        rng.choice(np.array(["service", "parts", "accessories", "upgrade"]), cust.size),
    )
    keep = (ts < times.churn_ms[cust]) & (ts >= times.signup_ms[cust])
    df = pd.DataFrame(
        {
            "customer_id": cust[keep],
            "ts": ts[keep],
            "amount": amount[keep],
            "category": category[keep],
        }
    )
    order = sort_order(df["customer_id"].to_numpy(), _from_zero(df["ts"].to_numpy()))
    return df.iloc[order].reset_index(drop=True)


def expand(
    counts: np.ndarray,
    month_ms: np.ndarray,
    rng: np.random.Generator,
    within: Window = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn a (customers, months) count matrix into event rows (customer, month, ms time) with
    random times in the `within` part of their month."""
    flat = counts.ravel()
    n, t = counts.shape
    cust = np.repeat(np.repeat(np.arange(n), t), flat)
    month = np.repeat(np.tile(np.arange(t), n), flat)
    span = month_ms[month + 1] - month_ms[month]
    lo, hi = within
    ts = month_ms[month] + ((lo + (hi - lo) * rng.random(cust.size)) * span).astype(np.int64)
    return cust, month, ts


def take_str(pool: pa.Array, idx: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """pool[idx] as pandas' default `str` column, built in Arrow without Python str objects."""
    return pd.array(pool.take(pa.array(idx)), dtype="str")


def sort_order(*keys: np.ndarray) -> np.ndarray:
    """Same permutation as np.lexsort(keys[::-1]) (first key primary) for non-negative ints,
    by packing the keys into one int64 and running a single stable argsort."""
    bits = [int(k.max()).bit_length() if k.size else 0 for k in keys]
    if sum(bits) > 63 or any(k.size and k.min() < 0 for k in keys):
        return np.lexsort(keys[::-1])
    packed = np.zeros(keys[0].size, dtype=np.int64)
    for k, b in zip(keys, bits, strict=True):
        packed <<= b
        packed |= k.astype(np.int64)
    return np.argsort(packed, kind="stable")


def _from_zero(ts: np.ndarray) -> np.ndarray:
    """Times shifted to start at 0, so that they pack into fewer bits for `sort_order`."""
    return ts - ts.min() if ts.size else ts


def _event_table(
    parts: list[tuple[str, np.ndarray, Window]], times: Lifetimes, rng: np.random.Generator
) -> pd.DataFrame:
    """Events of every type, kept inside each lifetime, ordered by customer, time and type."""
    frames = []
    types = [name for name, _, _ in parts]
    for code, (_, counts, within) in enumerate(parts):
        cust, _, ts = expand(counts, times.month_ms, rng, within)
        keep = (ts < times.churn_ms[cust]) & (ts >= times.signup_ms[cust])
        frames.append((cust[keep], ts[keep], np.full(keep.sum(), code, dtype=np.int8)))
    cust = np.concatenate([f[0] for f in frames])
    ts = np.concatenate([f[1] for f in frames])
    code = np.concatenate([f[2] for f in frames])
    order = sort_order(cust, _from_zero(ts), code)
    return pd.DataFrame(
        {
            "customer_id": cust[order],
            "ts": ts[order],
            "event_type": take_str(pa.array(types, type=pa.large_string()), code[order]),
        }
    )
