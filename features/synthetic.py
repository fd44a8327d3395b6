"""A seeded synthetic customer world with known ground truth.

The world is a monthly simulation over customers (vectorised over customers, a loop over
months only). Each customer carries a latent engagement, satisfaction, price sensitivity
and value; regions and industries receive shocks (competitor launches, downturns, policy
changes). Healthy customers may decide to leave (``intent``: active churn, with warning
traces for weeks before), start fading silently (``fading``: silent churn) or leave with no
warning at all (passive churn). Only the observable traces reach the raw tables; the latent
state and the true risk at each monthly cutoff go to the truth tables, which feature code
never reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import pyarrow as pa

log = logging.getLogger(__name__)

HEALTHY, INTENT, FADING, CHURNED, NOT_YET = 0, 1, 2, 3, 4
ACTIVE_REASONS = ("service", "price", "convenience", "relationship")
MS_PER_DAY = 86_400_000

# Message templates. Vague and competitor texts carry the phrases the attitude lexicon looks
# for (domain.md section 1); neutral texts are what most customers write.
TEXTS = {
    ("neutral", "en"): [
        "Thanks, the service was fine.",
        "Can I change my appointment time?",
        "Please send the invoice again.",
        "Great, see you next time.",
        "What are your opening hours on Sunday?",
    ],
    ("neutral", "zh"): [
        "谢谢，服务挺好的。",
        "可以改一下预约时间吗？",
        "请再发一次发票。",
        "好的，下次见。",
    ],
    ("vague", "en"): [
        "Let me think about it.",
        "Not needed for now.",
        "Maybe later.",
        "I'll get back to you, busy these days.",
    ],
    ("vague", "zh"): ["先考虑下。", "暂时不需要。", "再说吧。", "最近比较忙，回头再说。"],
    ("competitor", "en"): [
        "How is shop X doing these days?",
        "A competitor offered me a better price.",
        "Your rival has a new offer, can you match it?",
    ],
    ("competitor", "zh"): ["X店怎么样？", "别家给的价格更便宜。", "竞争对手有新活动，你们能比吗？"],
    ("complaint", "en"): [
        "The repair was not done properly.",
        "I waited two hours, this is unacceptable.",
        "Nobody called me back about my problem.",
    ],
    ("complaint", "zh"): ["维修没做好。", "等了两个小时，太不像话了。", "我的问题一直没人回复。"],
}


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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _month_starts_ms(cfg: WorldConfig, extra: int = 1) -> np.ndarray:
    """Epoch milliseconds of each month start, plus `extra` months past the end."""
    idx = pd.date_range(cfg.start_ts, periods=cfg.months + extra, freq="MS")
    return idx.as_unit("ms").asi8


def _market(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Monthly shocks per region and industry."""
    t_n, n_r, n_k = cfg.months, len(cfg.regions), len(cfg.industries)
    launch = rng.random((n_r, t_n)) < cfg.competitor_launch_rate
    policy = rng.random((n_k, t_n)) < cfg.policy_shock_rate
    downturn_start = rng.random((n_k, t_n)) < cfg.downturn_rate
    downturn_len = rng.integers(3, 9, size=(n_k, t_n))
    downturn = np.zeros((n_k, t_n), dtype=bool)
    for k, t in zip(*np.nonzero(downturn_start), strict=True):
        downturn[k, t : t + downturn_len[k, t]] = True
    growth = 0.003 + 0.008 * rng.standard_normal((n_k, t_n)) - 0.03 * downturn
    index = 100.0 * np.cumprod(1.0 + growth, axis=1)

    def recent(flags: np.ndarray, months: int) -> np.ndarray:
        """True where a flag fired in this month or the `months - 1` before."""
        out = np.zeros_like(flags)
        for lag in range(months):
            out[:, lag:] |= flags[:, : t_n - lag]
        return out

    return {
        "launch": launch,
        "policy": policy,
        "downturn": downturn,
        "index": index,
        "launch_effect": recent(launch, 3),
        "policy_effect": recent(policy, 6),
    }


def _risk_next_3_months(status: np.ndarray, h_intent: np.ndarray, cfg: WorldConfig) -> np.ndarray:
    """P(churn within the next 3 months) from the current state, drivers held fixed.

    The same transition order as the simulation: churn checks first, then new decisions.
    """
    n = status.shape[0]
    p = np.zeros((n, 3))  # healthy, intent, fading
    p[status == HEALTHY, 0] = 1.0
    p[status == INTENT, 1] = 1.0
    p[status == FADING, 2] = 1.0
    churned = np.zeros(n)
    hp = cfg.hazard_passive
    for _ in range(3):
        q_i = cfg.intent_churn_per_month + (1 - cfg.intent_churn_per_month) * hp
        q_f = cfg.fading_churn_per_month + (1 - cfg.fading_churn_per_month) * hp
        churned += p[:, 0] * hp + p[:, 1] * q_i + p[:, 2] * q_f
        healthy = p[:, 0] * (1 - hp)
        p = np.column_stack(
            [
                healthy * (1 - h_intent - cfg.hazard_fading),
                p[:, 1] * (1 - q_i) + healthy * h_intent,
                p[:, 2] * (1 - q_f) + healthy * cfg.hazard_fading,
            ]
        )
    return churned


def _expand(
    counts: np.ndarray,
    month_ms: np.ndarray,
    rng: np.random.Generator,
    within: tuple[float, float] = (0.0, 1.0),
):
    """Turn an (n_customers, months) count matrix into event rows with random times
    in the `within` part of their month."""
    flat = counts.ravel()
    n, t = counts.shape
    cust = np.repeat(np.repeat(np.arange(n), t), flat)
    month = np.repeat(np.tile(np.arange(t), n), flat)
    span = month_ms[month + 1] - month_ms[month]
    lo, hi = within
    ts = month_ms[month] + ((lo + (hi - lo) * rng.random(cust.size)) * span).astype(np.int64)
    return cust, month, ts


def generate_world(cfg: WorldConfig, seed: int) -> World:
    """Simulate the world. Same config and seed give identical tables."""
    rng = np.random.default_rng(seed)
    n, t_n = cfg.n_customers, cfg.months
    month_ms = _month_starts_ms(cfg)
    mk = _market(cfg, rng)

    # --- static customer attributes ---
    region = rng.integers(0, len(cfg.regions), n)
    industry = rng.integers(0, len(cfg.industries), n)
    existing = rng.random(n) < cfg.existing_share
    signup_month = np.where(existing, -rng.integers(1, 61, n), rng.integers(0, t_n - 3, n))
    mu_e = rng.normal(0.0, 0.7, n)
    mu_s = rng.normal(0.3, 0.6, n)
    price_sens = rng.beta(2.0, 3.0, n)
    policy_exposed = rng.random(n) < 0.3
    yearly_value = np.exp(rng.normal(np.log(9000.0), 0.9, n))
    buys_per_year = np.clip(np.exp(rng.normal(np.log(10.0), 0.6, n)), 0.5, 48)
    login_rate = np.exp(rng.normal(np.log(cfg.logins_per_month), 0.5, n))
    visit_rate = np.exp(rng.normal(np.log(0.6), 0.5, n))
    zh = rng.random(n) < 0.4
    plan = rng.choice(np.array(["basic", "plus", "premium"]), n, p=[0.5, 0.35, 0.15])
    channel = rng.choice(np.array(["store", "online", "both"]), n, p=[0.4, 0.3, 0.3])
    basic_plan = plan == "basic"
    # observable hints of hidden drivers: coupon-acquired customers are price sensitive,
    # business customers are the ones a policy change hits
    acquired_via = np.where(
        rng.random(n) < 0.05 + 0.7 * price_sens,
        "coupon",
        rng.choice(np.array(["referral", "ads", "walk_in"]), n),
    )
    customer_type = np.where(policy_exposed ^ (rng.random(n) < 0.1), "business", "consumer")
    service_period = rng.choice(np.array([3, 6, 12]), n, p=[0.2, 0.6, 0.2])

    # --- monthly latent states ---
    status = np.full((n, t_n), NOT_YET, dtype=np.int8)
    eng = np.zeros((n, t_n))
    sat = np.zeros((n, t_n))
    h_int = np.zeros((n, t_n))
    months_in_state = np.zeros((n, t_n), dtype=np.int16)
    failure = rng.random((n, t_n)) < 0.04
    reason = np.full(n, "", dtype=object)
    churn_month = np.full(n, -1)
    churn_kind = np.full(n, "", dtype=object)
    risk = np.full((n, t_n), np.nan)  # risk at the cutoff that opens month t (t >= 1)

    e_prev = mu_e + 0.5 * rng.standard_normal(n)
    s_prev = mu_s + 0.5 * rng.standard_normal(n)
    cur = np.where(signup_month < 0, HEALTHY, NOT_YET).astype(np.int8)
    cur[(cur == HEALTHY) & (rng.random(n) < 0.02)] = INTENT
    since = np.zeros(n, dtype=np.int16)
    reason[cur == INTENT] = rng.choice(np.array(ACTIVE_REASONS), int((cur == INTENT).sum()))
    rho = 0.8
    for t in range(t_n):
        e_now = rho * e_prev + (1 - rho) * mu_e + 0.15 * rng.standard_normal(n)
        s_now = (
            rho * s_prev + (1 - rho) * mu_s + 0.15 * rng.standard_normal(n) - 1.2 * failure[:, t]
        )
        launch = mk["launch_effect"][region, t]
        downturn = mk["downturn"][industry, t]
        policy = mk["policy_effect"][industry, t] & policy_exposed
        logit = (
            cfg.hazard_intent_base
            + cfg.hazard_intent_satisfaction * np.maximum(-s_now, -0.5)
            + cfg.hazard_intent_engagement * np.maximum(-e_now, -0.5)
            + cfg.hazard_intent_competitor * 2.0 * price_sens * launch
            + cfg.hazard_intent_downturn * downturn
            + cfg.hazard_intent_policy * policy
            + cfg.hazard_intent_new_customer * np.exp(-(t - signup_month) / 6.0)
            + cfg.hazard_intent_basic_plan * basic_plan
        )
        h = _sigmoid(logit)
        if t >= 1:  # the cutoff at the start of month t sees the state left by month t-1
            alive = (cur == HEALTHY) | (cur == INTENT) | (cur == FADING)
            r = _risk_next_3_months(cur, h_int[:, t - 1], cfg)
            risk[alive, t] = r[alive]

        # churn checks for those alive since an earlier month
        u = rng.random(n)
        passive = np.isin(cur, (HEALTHY, INTENT, FADING)) & (u < cfg.hazard_passive)
        u2 = rng.random(n)
        leave_i = (cur == INTENT) & (u2 < cfg.intent_churn_per_month) & ~passive
        leave_f = (cur == FADING) & (u2 < cfg.fading_churn_per_month) & ~passive
        churn_kind[passive] = "passive"
        reason[passive] = rng.choice(np.array(["moved", "need_gone", "asset_sold"]), passive.sum())
        churn_kind[leave_i] = "active"
        churn_kind[leave_f] = "silent"
        reason[leave_f] = "fading"
        leaving = passive | leave_i | leave_f
        churn_month[leaving] = t
        cur_month = cur.copy()  # status during this month, before the churn date
        cur[leaving] = CHURNED

        # signups and new decisions among the healthy
        cur[signup_month == t] = HEALTHY
        cur_month[signup_month == t] = HEALTHY
        healthy = (cur == HEALTHY) & (signup_month < t)
        u3 = rng.random(n)
        to_intent = healthy & (u3 < h)
        to_fading = healthy & ~to_intent & (u3 < h + cfg.hazard_fading)
        # the reason follows the driver that pushed hardest, with some chance
        drivers = np.column_stack(
            [
                cfg.hazard_intent_satisfaction * np.maximum(-s_now, 0) + 0.3,
                cfg.hazard_intent_competitor * price_sens * launch
                + cfg.hazard_intent_downturn * downturn
                + cfg.hazard_intent_policy * policy
                + 0.25,
                cfg.hazard_intent_engagement * np.maximum(-e_now, 0) + 0.15,
                np.full(n, 0.15),
            ]
        )
        pick = (drivers / drivers.sum(1, keepdims=True)).cumsum(1) > rng.random(n)[:, None]
        reason[to_intent] = np.array(ACTIVE_REASONS)[pick.argmax(1)][to_intent]
        cur[to_intent] = INTENT
        cur[to_fading] = FADING
        cur_month[to_intent] = INTENT
        cur_month[to_fading] = FADING
        since = np.where(to_intent | to_fading, 0, since + 1).astype(np.int16)

        status[:, t] = cur_month
        months_in_state[:, t] = since
        eng[:, t], sat[:, t], h_int[:, t] = e_now, s_now, h
        e_prev, s_prev = e_now, s_now

    # --- churn dates ---
    churned = churn_month >= 0
    churn_ms = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    cm = churn_month[churned]
    churn_ms[churned] = month_ms[cm] + (
        rng.random(cm.size) * (month_ms[cm + 1] - month_ms[cm])
    ).astype(np.int64)
    signup_ms = np.where(
        signup_month >= 0,
        month_ms[np.clip(signup_month, 0, None)]
        + (rng.random(n) * 27 * MS_PER_DAY).astype(np.int64),
        month_ms[0]
        + signup_month * 30 * MS_PER_DAY
        - (rng.random(n) * 27 * MS_PER_DAY).astype(np.int64),
    )

    # --- observable traces, rates per customer and month ---
    alive_month = np.isin(status, (HEALTHY, INTENT, FADING))
    is_int = status == INTENT
    is_fad = status == FADING
    act_mult = np.where(is_int, cfg.intent_activity_factor, 1.0)
    act_mult = np.where(is_fad, cfg.fading_decay ** (1.0 + months_in_state), act_mult)
    noise = np.exp(0.15 * cfg.trace_noise * rng.standard_normal((n, t_n)))
    engage = np.exp(0.5 * eng) * act_mult * noise * alive_month
    rsn = reason[:, None]
    int_service = is_int & (rsn == "service")
    int_price = is_int & (rsn == "price")
    int_conv = is_int & (rsn == "convenience")
    int_rel = is_int & (rsn == "relationship")

    def pois(lam: np.ndarray) -> np.ndarray:
        return rng.poisson(lam).astype(np.int32)

    whole = (0.0, 1.0)
    act_parts: list[tuple[str, np.ndarray, tuple[float, float]]] = [
        ("login", pois(login_rate[:, None] * engage), whole),
        ("visit", pois(visit_rate[:, None] * engage), whole),
    ]
    bookings = pois(0.25 * engage)
    p_cancel = np.where(is_int, 0.35, 0.06) + 0.35 * int_conv
    cancelled = pois(bookings * p_cancel + 0.08 * int_conv * alive_month)
    act_parts += [("booking", bookings, whole), ("booking_cancelled", cancelled, whole)]
    sent = pois(0.8 * alive_month)
    reply_p = np.where(is_int | is_fad, 0.3, 0.55 + 0.25 * _sigmoid(eng)) - 0.2 * int_rel
    reply_p = np.clip(reply_p + 0.1 * cfg.trace_noise * rng.standard_normal((n, t_n)), 0.02, 0.98)
    replied = rng.binomial(sent, reply_p).astype(np.int32)
    act_parts += [("outreach_sent", sent, whole), ("outreach_replied", replied, whole)]
    tenure_m = np.arange(t_n)[None, :] - signup_month[:, None]
    due = (alive_month & (tenure_m > 0) & (tenure_m % service_period[:, None] == 0)).astype(
        np.int32
    )
    p_done = np.where(is_int | is_fad, 0.3, 0.85)
    done = rng.binomial(due, p_done).astype(np.int32)
    # a service falls due early in the month and, when done, is done after that
    act_parts += [("service_due", due, (0.0, 0.3)), ("service_done", done, (0.35, 1.0))]

    activity = _event_table(act_parts, month_ms, churn_ms, signup_ms, rng)

    # transactions: spend shrinks to basics before leaving, more so when price is the reason
    tx_rate = (
        buys_per_year[:, None]
        / 12.0
        * np.where(is_int, 0.4, 1.0)
        * np.where(is_fad, act_mult, 1.0)
        * noise
        * alive_month
    )
    tx_counts = pois(tx_rate)
    cust, month, ts = _expand(tx_counts, month_ms, rng)
    per_buy = yearly_value / buys_per_year
    shrink = np.where(int_price, 0.25, np.where(is_int, 0.5, 1.0))[cust, month]
    amount = np.round(per_buy[cust] * shrink * np.exp(0.35 * rng.standard_normal(cust.size)), 2)
    # price-sensitive customers buy on promotion more often
    category = np.where(
        rng.random(cust.size) < 0.8 * price_sens[cust],
        "promo",
        rng.choice(np.array(["service", "parts", "accessories", "upgrade"]), cust.size),
    )
    keep = (ts < churn_ms[cust]) & (ts >= signup_ms[cust])
    transactions = _sorted(
        pd.DataFrame(
            {
                "customer_id": cust[keep],
                "ts": ts[keep],
                "amount": amount[keep],
                "category": category[keep],
            }
        )
    )

    # feedback: surveys are sparse and arrive late in the month
    nps_n = (rng.random((n, t_n)) < 0.2) & alive_month
    csat_n = rng.binomial(done, 0.7)
    compl = pois(
        (0.02 + 0.9 * failure + 0.3 * int_service + 0.1 * (sat < -0.5)) * alive_month * ~is_fad
    )
    msg_n = ((rng.random((n, t_n)) < 0.10 + 0.4 * is_int) & alive_month).astype(np.int32)
    feedback = _feedback(
        nps_n.astype(np.int32),
        csat_n.astype(np.int32),
        compl,
        msg_n,
        sat=sat,
        is_int=is_int,
        int_service=int_service,
        int_price=int_price,
        launch=mk["launch_effect"][region],
        price_sens=price_sens,
        zh=zh,
        month_ms=month_ms,
        churn_ms=churn_ms,
        signup_ms=signup_ms,
        rng=rng,
        cfg=cfg,
    )

    ids = np.array([f"C{i:07d}" for i in range(n)]) if n < 10**7 else np.arange(n).astype(str)
    ids_pa = pa.array(ids, type=pa.large_string())
    for df in (activity, transactions, feedback):
        df["customer_id"] = _take_str(ids_pa, df["customer_id"].to_numpy())
        df["ts"] = pd.to_datetime(df["ts"].to_numpy(), unit="ms")

    as_of = cfg.as_of
    churn_dt = pd.to_datetime(np.where(churned, churn_ms, 0), unit="ms").where(churned)
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": pd.to_datetime(signup_ms, unit="ms").normalize(),
            "region": np.array(cfg.regions)[region],
            "industry": np.array(cfg.industries)[industry],
            "plan": plan,
            "channel": channel,
            "acquired_via": acquired_via,
            "customer_type": customer_type,
            "cancel_date": churn_dt.normalize(),
        }
    )
    signed = signup_ms < month_ms[-1]
    customers = customers[signed].reset_index(drop=True)

    truth_customers = pd.DataFrame(
        {
            "customer_id": ids,
            "churn_date": churn_dt,
            "churn_kind": pd.array(np.where(churned, churn_kind, None), dtype="string"),
            "churn_reason": pd.array(np.where(churned, reason, None), dtype="string"),
            "yearly_value": np.round(yearly_value, 2),
            "price_sensitivity": price_sens,
        }
    )[signed].reset_index(drop=True)
    ci, ct = np.nonzero(~np.isnan(risk))
    truth_risk = pd.DataFrame(
        {
            "customer_id": _take_str(ids_pa, ci),
            "cutoff": pd.to_datetime(month_ms[ct], unit="ms"),
            "true_risk": risk[ci, ct],
            "state": _take_str(
                pa.array(["healthy", "intent", "fading"], type=pa.large_string()),
                np.where(status[ci, ct - 1] == NOT_YET, 0, status[ci, ct - 1]).clip(0, 2),
            ),
        }
    )
    market = _market_table(cfg, mk)
    log.info(
        "world: %d customers, %d transactions, %d activity events, %d feedback rows",
        len(customers),
        len(transactions),
        len(activity),
        len(feedback),
    )
    return World(
        customers,
        transactions,
        activity,
        feedback,
        market,
        truth_customers,
        truth_risk,
        as_of=as_of,
    )


def _take_str(pool: pa.Array, idx: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """pool[idx] as pandas' default `str` column, built in Arrow without Python str objects."""
    return pd.array(pool.take(pa.array(idx)), dtype="str")


def _order(*keys: np.ndarray) -> np.ndarray:
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


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    ts = df["ts"].to_numpy()
    order = _order(df["customer_id"].to_numpy(), ts - ts.min() if ts.size else ts)
    return df.iloc[order].reset_index(drop=True)


def _event_table(
    parts: list[tuple[str, np.ndarray, tuple[float, float]]],
    month_ms: np.ndarray,
    churn_ms: np.ndarray,
    signup_ms: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    frames = []
    types = [name for name, _, _ in parts]
    for code, (_, counts, within) in enumerate(parts):
        cust, _, ts = _expand(counts, month_ms, rng, within)
        keep = (ts < churn_ms[cust]) & (ts >= signup_ms[cust])
        frames.append((cust[keep], ts[keep], np.full(keep.sum(), code, dtype=np.int8)))
    cust = np.concatenate([f[0] for f in frames])
    ts = np.concatenate([f[1] for f in frames])
    code = np.concatenate([f[2] for f in frames])
    order = _order(cust, ts - ts.min() if ts.size else ts, code)
    return pd.DataFrame(
        {
            "customer_id": cust[order],
            "ts": ts[order],
            "event_type": _take_str(pa.array(types, type=pa.large_string()), code[order]),
        }
    )


def _feedback(
    nps_n,
    csat_n,
    compl,
    msg_n,
    *,
    sat,
    is_int,
    int_service,
    int_price,
    launch,
    price_sens,
    zh,
    month_ms,
    churn_ms,
    signup_ms,
    rng: np.random.Generator,
    cfg: WorldConfig,
) -> pd.DataFrame:
    """Surveys, complaints (with tickets, some resolved later) and free-text messages."""
    noise = cfg.trace_noise
    rows = []
    # NPS, late in the month
    c, m, _ = _expand(nps_n, month_ms, rng)
    ts = month_ms[m + 1] - (rng.random(c.size) * 8 * MS_PER_DAY).astype(np.int64)
    score = (
        7.9 + 1.4 * sat[c, m] - 2.5 * int_service[c, m] - 1.5 * (is_int[c, m] & ~int_service[c, m])
    )
    score = np.clip(np.round(score + 0.8 * noise * rng.standard_normal(c.size)), 0, 10)
    rows.append(_fb(c, ts, "nps", score, None, None))
    # CSAT after a service visit, 1-5
    c, m, ts = _expand(csat_n, month_ms, rng)
    score = 4.3 + 0.6 * sat[c, m] - 1.0 * is_int[c, m] + 0.5 * noise * rng.standard_normal(c.size)
    rows.append(_fb(c, ts, "csat", np.clip(np.round(score), 1, 5), None, None))
    # complaints and their resolution
    c, m, ts = _expand(compl, month_ms, rng)
    tickets = np.array([f"T{i:09d}" for i in range(c.size)], dtype=object)
    texts = _pick_texts("complaint", zh[c], rng)
    rows.append(_fb(c, ts, "complaint_opened", None, texts, tickets))
    resolve_p = np.where(is_int[c, m], 0.45, 0.93)
    res = rng.random(c.size) < resolve_p
    res_ts = ts[res] + (rng.integers(1, 21, res.sum()) * MS_PER_DAY)
    rows.append(_fb(c[res], res_ts, "complaint_resolved", None, None, tickets[res]))
    # messages: vague replies and competitor mentions rise before leaving
    c, m, ts = _expand(msg_n, month_ms, rng)
    u = rng.random(c.size)
    p_vague = np.where(is_int[c, m], 0.5, 0.04)
    p_comp = np.where(int_price[c, m], 0.45, 0.0) + 0.12 * launch[c, m] * price_sens[c]
    kind = np.where(u < p_vague, "vague", np.where(u < p_vague + p_comp, "competitor", "neutral"))
    texts = np.empty(c.size, dtype=object)
    for k in ("vague", "competitor", "neutral"):
        sel = kind == k
        texts[sel] = _pick_texts(k, zh[c][sel], rng)
    rows.append(_fb(c, ts, "message", None, texts, None))

    df = pd.concat(rows, ignore_index=True)
    keep = (
        (df["ts"].to_numpy() < churn_ms[df["customer_id"].to_numpy()])
        & (df["ts"].to_numpy() >= signup_ms[df["customer_id"].to_numpy()])
        & (df["ts"].to_numpy() < month_ms[-1])
    )
    df = df[keep]
    kind_codes, kinds = pd.factorize(df["kind"].to_numpy())
    kind_rank = np.argsort(np.argsort(kinds))[kind_codes]  # codes in string order, as lexsort
    ts = df["ts"].to_numpy()
    order = _order(df["customer_id"].to_numpy(), ts - ts.min() if ts.size else ts, kind_rank)
    return df.iloc[order].reset_index(drop=True)


def _fb(cust, ts, kind, score, text, ticket) -> pd.DataFrame:
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


def _pick_texts(kind: str, is_zh: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(is_zh.size, dtype=object)
    for lang, sel in (("zh", is_zh), ("en", ~is_zh)):
        pool = np.array(TEXTS[(kind, lang)], dtype=object)
        out[sel] = pool[rng.integers(0, pool.size, int(sel.sum()))]
    return out


def _market_table(cfg: WorldConfig, mk: dict[str, np.ndarray]) -> pd.DataFrame:
    t_n, n_r, n_k = cfg.months, len(cfg.regions), len(cfg.industries)
    t, r, k = np.meshgrid(np.arange(t_n), np.arange(n_r), np.arange(n_k), indexing="ij")
    t, r, k = t.ravel(), r.ravel(), k.ravel()
    return pd.DataFrame(
        {
            "month": pd.date_range(cfg.start_ts, periods=t_n, freq="MS")[t],
            "region": np.array(cfg.regions)[r],
            "industry": np.array(cfg.industries)[k],
            "industry_index": np.round(mk["index"][k, t], 3),
            "competitor_launch": mk["launch"][r, t].astype(np.int8),
            "policy_shock": mk["policy"][k, t].astype(np.int8),
        }
    )
