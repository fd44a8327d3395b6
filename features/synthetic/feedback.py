"""The feedback table: NPS and CSAT surveys, complaints (with tickets, some resolved later) and
free-text messages whose vague replies and competitor mentions rise before leaving."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlight.features.synthetic.config import MS_PER_DAY, WorldConfig
from churnlight.features.synthetic.events import Traces, expand, poisson, sort_order
from churnlight.features.synthetic.simulation import Customers, Lifetimes, Lives
from churnlight.features.synthetic.texts import pick_texts


def feedback_events(
    cfg: WorldConfig,
    people: Customers,
    lives: Lives,
    tr: Traces,
    shocks: dict[str, np.ndarray],
    times: Lifetimes,
    services_done: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Feedback rows (integer customer numbers, ms times) inside each lifetime and the history,
    ordered by customer, time and kind. Surveys are sparse; CSAT follows a service done."""
    n, t_n = lives.status.shape
    nps_n = (rng.random((n, t_n)) < 0.2) & tr.alive_month
    csat_n = rng.binomial(services_done, 0.7)
    compl = poisson(
        (0.02 + 0.9 * lives.failure + 0.3 * tr.int_service + 0.1 * (lives.sat < -0.5))
        * tr.alive_month
        * ~tr.is_fad,
        rng,
    )
    msg_n = ((rng.random((n, t_n)) < 0.10 + 0.4 * tr.is_int) & tr.alive_month).astype(np.int32)
    month_ms, noise = times.month_ms, cfg.trace_noise
    rows = [
        _nps(nps_n.astype(np.int32), lives, tr, month_ms, noise, rng),
        _csat(csat_n.astype(np.int32), lives, tr, month_ms, noise, rng),
        *_complaints(compl, people, tr, month_ms, rng),
        _messages(msg_n, people, tr, shocks["launch_effect"][people.region], month_ms, rng),
    ]
    df = pd.concat(rows, ignore_index=True)
    cust, ts = df["customer_id"].to_numpy(), df["ts"].to_numpy()
    keep = (ts < times.churn_ms[cust]) & (ts >= times.signup_ms[cust]) & (ts < month_ms[-1])
    df = df[keep]
    kind_codes, kinds = pd.factorize(df["kind"].to_numpy())
    kind_rank = np.argsort(np.argsort(kinds))[kind_codes]  # codes in string order, as lexsort
    ts = df["ts"].to_numpy()
    order = sort_order(df["customer_id"].to_numpy(), ts - ts.min() if ts.size else ts, kind_rank)
    return df.iloc[order].reset_index(drop=True)


def _nps(counts, lives: Lives, tr: Traces, month_ms, noise: float, rng) -> pd.DataFrame:
    """NPS 0-10, late in the month: low when deciding to leave, lowest over service."""
    c, m, _ = expand(counts, month_ms, rng)
    ts = month_ms[m + 1] - (rng.random(c.size) * 8 * MS_PER_DAY).astype(np.int64)
    int_service = tr.int_service[c, m]
    score = 7.9 + 1.4 * lives.sat[c, m] - 2.5 * int_service - 1.5 * (tr.is_int[c, m] & ~int_service)
    score = np.clip(np.round(score + 0.8 * noise * rng.standard_normal(c.size)), 0, 10)
    return _rows(c, ts, "nps", score, None, None)


def _csat(counts, lives: Lives, tr: Traces, month_ms, noise: float, rng) -> pd.DataFrame:
    """CSAT 1-5 after a service visit."""
    c, m, ts = expand(counts, month_ms, rng)
    score = (
        4.3
        + 0.6 * lives.sat[c, m]
        - 1.0 * tr.is_int[c, m]
        + 0.5 * noise * rng.standard_normal(c.size)
    )
    return _rows(c, ts, "csat", np.clip(np.round(score), 1, 5), None, None)


def _complaints(
    counts, people: Customers, tr: Traces, month_ms, rng
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Complaints opened with a ticket, and the ones resolved 1-20 days later (fewer when the
    customer is deciding to leave)."""
    c, m, ts = expand(counts, month_ms, rng)
    tickets = np.array([f"T{i:09d}" for i in range(c.size)], dtype=object)
    texts = pick_texts("complaint", people.zh[c], rng)
    opened = _rows(c, ts, "complaint_opened", None, texts, tickets)
    res = rng.random(c.size) < np.where(tr.is_int[c, m], 0.45, 0.93)
    res_ts = ts[res] + (rng.integers(1, 21, res.sum()) * MS_PER_DAY)
    return opened, _rows(c[res], res_ts, "complaint_resolved", None, None, tickets[res])


def _messages(counts, people: Customers, tr: Traces, launch, month_ms, rng) -> pd.DataFrame:
    """Free text: vague replies while deciding to leave, competitor mentions when price is the
    reason or a competitor launched nearby (for price-sensitive customers)."""
    c, m, ts = expand(counts, month_ms, rng)
    u = rng.random(c.size)
    p_vague = np.where(tr.is_int[c, m], 0.5, 0.04)
    p_comp = np.where(tr.int_price[c, m], 0.45, 0.0) + 0.12 * launch[c, m] * people.price_sens[c]
    kind = np.where(u < p_vague, "vague", np.where(u < p_vague + p_comp, "competitor", "neutral"))
    texts = np.empty(c.size, dtype=object)
    zh = people.zh[c]
    for k in ("vague", "competitor", "neutral"):
        sel = kind == k
        texts[sel] = pick_texts(k, zh[sel], rng)
    return _rows(c, ts, "message", None, texts, None)


def _rows(cust, ts, kind, score, text, ticket) -> pd.DataFrame:
    n = cust.size
    return pd.DataFrame(
        {
            "customer_id": cust,
            "ts": ts.astype(np.int64),
            "kind": np.full(n, kind, dtype=object),
            "score": np.full(n, np.nan) if score is None else score.astype(float),
            "text": pd.array(np.full(n, None) if text is None else text, dtype="string"),
            "ticket_id": pd.array(np.full(n, None) if ticket is None else ticket, dtype="string"),
        }
    )
