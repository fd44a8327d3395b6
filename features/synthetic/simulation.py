"""The latent side of the world: who the customers are and how each one's state moves month by
month (healthy, deciding to leave, fading, gone), with the true risk at every cutoff.

Vectorised over customers, a loop over months only. Healthy customers may decide to leave
(``intent``: active churn, with warning traces for weeks before), start fading silently
(``fading``: silent churn) or leave with no warning at all (passive churn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnlight.features.synthetic.campaigns import (
    CampaignLog,
    is_alive,
    old_process_colour,
    run_campaign,
)
from churnlight.features.synthetic.config import (
    ACTIVE_REASONS,
    CHURNED,
    FADING,
    HEALTHY,
    INTENT,
    MS_PER_DAY,
    NOT_YET,
    WorldConfig,
    sigmoid,
)

# month-to-month persistence of latent engagement and satisfaction
RHO = 0.8


@dataclass(frozen=True)
class Customers:
    """Static attributes, one array entry per customer; hidden drivers and what shows of them."""

    region: np.ndarray
    industry: np.ndarray
    signup_month: np.ndarray  # negative: signed up that many months before the history starts
    mu_e: np.ndarray  # long-run engagement
    mu_s: np.ndarray  # long-run satisfaction
    price_sens: np.ndarray
    policy_exposed: np.ndarray
    yearly_value: np.ndarray
    buys_per_year: np.ndarray
    login_rate: np.ndarray
    visit_rate: np.ndarray
    zh: np.ndarray  # writes in Chinese
    plan: np.ndarray
    channel: np.ndarray
    acquired_via: np.ndarray
    customer_type: np.ndarray
    service_period: np.ndarray  # months between services


@dataclass(frozen=True)
class Lives:
    """The latent monthly history, (customers, months) arrays unless said otherwise."""

    status: np.ndarray  # state during the month (before a churn date in it)
    months_in_state: np.ndarray
    eng: np.ndarray
    sat: np.ndarray
    h_int: np.ndarray  # monthly chance of deciding to leave
    failure: np.ndarray  # a service failure this month
    risk: np.ndarray  # P(churn within 3 months) at the cutoff opening month t (NaN: not alive)
    reason: np.ndarray  # per customer: why they left (or intend to)
    churn_month: np.ndarray  # per customer: month of leaving, -1 if never
    churn_kind: np.ndarray  # per customer: active, silent or passive
    campaigns: CampaignLog | None = None  # the company's campaigns, when it ran any


@dataclass(frozen=True)
class Lifetimes:
    """Each customer's signup and churn instants (epoch ms) and the calendar of month starts."""

    month_ms: np.ndarray
    signup_ms: np.ndarray
    churn_ms: np.ndarray  # int64 max if the customer never leaves


@dataclass
class _Population:
    """What the monthly loop carries from one month to the next."""

    cur: np.ndarray
    since: np.ndarray
    reason: np.ndarray
    churn_kind: np.ndarray
    churn_month: np.ndarray
    e_prev: np.ndarray
    s_prev: np.ndarray


def draw_customers(cfg: WorldConfig, rng: np.random.Generator) -> Customers:
    """Static attributes, with observable hints of hidden drivers: coupon-acquired customers are
    price sensitive, business customers are the ones a policy change hits."""
    n, t_n = cfg.n_customers, cfg.months
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
    acquired_via = np.where(
        rng.random(n) < 0.05 + 0.7 * price_sens,
        "coupon",
        rng.choice(np.array(["referral", "ads", "walk_in"]), n),
    )
    customer_type = np.where(policy_exposed ^ (rng.random(n) < 0.1), "business", "consumer")
    service_period = rng.choice(np.array([3, 6, 12]), n, p=[0.2, 0.6, 0.2])
    return Customers(
        region=region,
        industry=industry,
        signup_month=signup_month,
        mu_e=mu_e,
        mu_s=mu_s,
        price_sens=price_sens,
        policy_exposed=policy_exposed,
        yearly_value=yearly_value,
        buys_per_year=buys_per_year,
        login_rate=login_rate,
        visit_rate=visit_rate,
        zh=zh,
        plan=plan,
        channel=channel,
        acquired_via=acquired_via,
        customer_type=customer_type,
        service_period=service_period,
    )


def simulate_lives(
    cfg: WorldConfig,
    people: Customers,
    shocks: dict[str, np.ndarray],
    rng: np.random.Generator,
    campaign_rng: np.random.Generator | None = None,
) -> Lives:
    """Month by month: latent engagement and satisfaction drift, the true risk is recorded at
    the cutoff opening the month, then (with `campaign_rng`: `generate.campaigns`) the company's
    campaign, then churn checks, signups and new decisions. The campaigns draw only from
    `campaign_rng`, so `rng`'s stream is the same with or without them."""
    n, t_n = cfg.n_customers, cfg.months
    status = np.full((n, t_n), NOT_YET, dtype=np.int8)
    eng = np.zeros((n, t_n))
    sat = np.zeros((n, t_n))
    h_int = np.zeros((n, t_n))
    months_in_state = np.zeros((n, t_n), dtype=np.int16)
    failure = rng.random((n, t_n)) < 0.04
    risk = np.full((n, t_n), np.nan)
    pop = _initial_population(people, rng)
    log = CampaignLog() if campaign_rng is not None else None
    for t in range(t_n):
        e_now = RHO * pop.e_prev + (1 - RHO) * people.mu_e + 0.15 * rng.standard_normal(n)
        s_now = (
            RHO * pop.s_prev
            + (1 - RHO) * people.mu_s
            + 0.15 * rng.standard_normal(n)
            - 1.2 * failure[:, t]
        )
        push = _shocks_felt(people, shocks, t)
        h = _intent_hazard(cfg, people, push, t, e_now, s_now)
        if t >= 1:  # the cutoff at the start of month t sees the state left by month t-1
            alive = (pop.cur == HEALTHY) | (pop.cur == INTENT) | (pop.cur == FADING)
            r = _risk_next_3_months(pop.cur, h_int[:, t - 1], cfg)
            risk[alive, t] = r[alive]
            if log is not None and campaign_rng is not None:
                _campaign_month(cfg, people, pop, failure, h_int, r, t, campaign_rng, log)
        cur_month = _churn_checks(cfg, pop, t, rng)
        _signups_and_decisions(cfg, people, pop, cur_month, push, t, h, e_now, s_now, rng)
        status[:, t] = cur_month
        months_in_state[:, t] = pop.since
        eng[:, t], sat[:, t], h_int[:, t] = e_now, s_now, h
        pop.e_prev, pop.s_prev = e_now, s_now
    return Lives(
        status=status,
        months_in_state=months_in_state,
        eng=eng,
        sat=sat,
        h_int=h_int,
        failure=failure,
        risk=risk,
        reason=pop.reason,
        churn_month=pop.churn_month,
        churn_kind=pop.churn_kind,
        campaigns=log,
    )


def _campaign_month(
    cfg: WorldConfig,
    people: Customers,
    pop: _Population,
    failure: np.ndarray,
    h_int: np.ndarray,
    risk_now: np.ndarray,
    t: int,
    rng: np.random.Generator,
    log: CampaignLog,
) -> None:
    """The old process flags, the company contacts, and those won back are healthy again before
    the month's churn checks (updates `pop`)."""
    colour = old_process_colour(
        cfg,
        pop.cur,
        pop.since,
        pop.e_prev,
        people.mu_e,
        pop.s_prev,
        failure[:, max(t - 2, 0) : t].any(axis=1),
        is_alive(pop.cur) & (people.signup_month < t),
        rng,
    )
    healthy = np.full(pop.cur.size, HEALTHY, dtype=pop.cur.dtype)
    risk_healthy = _risk_next_3_months(healthy, h_int[:, t - 1], cfg)
    won = run_campaign(cfg, t, pop.cur, colour, risk_now, risk_healthy, rng, log)
    pop.cur[won] = HEALTHY
    pop.since[won] = 0
    pop.reason[won] = ""


def _initial_population(people: Customers, rng: np.random.Generator) -> _Population:
    """Latent levels before the first month; a few existing customers already intend to leave."""
    n = people.mu_e.size
    e_prev = people.mu_e + 0.5 * rng.standard_normal(n)
    s_prev = people.mu_s + 0.5 * rng.standard_normal(n)
    cur = np.where(people.signup_month < 0, HEALTHY, NOT_YET).astype(np.int8)
    cur[(cur == HEALTHY) & (rng.random(n) < 0.02)] = INTENT
    reason = np.full(n, "", dtype=object)
    reason[cur == INTENT] = rng.choice(np.array(ACTIVE_REASONS), int((cur == INTENT).sum()))
    return _Population(
        cur=cur,
        since=np.zeros(n, dtype=np.int16),
        reason=reason,
        churn_kind=np.full(n, "", dtype=object),
        churn_month=np.full(n, -1),
        e_prev=e_prev,
        s_prev=s_prev,
    )


def _shocks_felt(people: Customers, shocks: dict[str, np.ndarray], t: int) -> dict:
    """The market shocks each customer feels in month t (policy only if exposed)."""
    return {
        "launch": shocks["launch_effect"][people.region, t],
        "downturn": shocks["downturn"][people.industry, t],
        "policy": shocks["policy_effect"][people.industry, t] & people.policy_exposed,
    }


def _intent_hazard(
    cfg: WorldConfig, people: Customers, push: dict, t: int, e_now: np.ndarray, s_now: np.ndarray
) -> np.ndarray:
    """Monthly chance that a healthy customer decides to leave."""
    logit = (
        cfg.hazard_intent_base
        + cfg.hazard_intent_satisfaction * np.maximum(-s_now, -0.5)
        + cfg.hazard_intent_engagement * np.maximum(-e_now, -0.5)
        + cfg.hazard_intent_competitor * 2.0 * people.price_sens * push["launch"]
        + cfg.hazard_intent_downturn * push["downturn"]
        + cfg.hazard_intent_policy * push["policy"]
        + cfg.hazard_intent_new_customer * np.exp(-(t - people.signup_month) / 6.0)
        + cfg.hazard_intent_basic_plan * (people.plan == "basic")
    )
    return sigmoid(logit)


def _churn_checks(
    cfg: WorldConfig, pop: _Population, t: int, rng: np.random.Generator
) -> np.ndarray:
    """Who leaves in month t among those alive since an earlier month (updates `pop`); returns
    the status during the month, before the churn date."""
    n = pop.cur.size
    u = rng.random(n)
    passive = np.isin(pop.cur, (HEALTHY, INTENT, FADING)) & (u < cfg.hazard_passive)
    u2 = rng.random(n)
    leave_i = (pop.cur == INTENT) & (u2 < cfg.intent_churn_per_month) & ~passive
    leave_f = (pop.cur == FADING) & (u2 < cfg.fading_churn_per_month) & ~passive
    pop.churn_kind[passive] = "passive"
    pop.reason[passive] = rng.choice(np.array(["moved", "need_gone", "asset_sold"]), passive.sum())
    pop.churn_kind[leave_i] = "active"
    pop.churn_kind[leave_f] = "silent"
    pop.reason[leave_f] = "fading"
    leaving = passive | leave_i | leave_f
    pop.churn_month[leaving] = t
    cur_month = pop.cur.copy()
    pop.cur[leaving] = CHURNED
    return cur_month


def _signups_and_decisions(
    cfg: WorldConfig,
    people: Customers,
    pop: _Population,
    cur_month: np.ndarray,
    push: dict,
    t: int,
    h: np.ndarray,
    e_now: np.ndarray,
    s_now: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Month t's signups join; healthy customers may decide to leave (the reason follows the
    driver that pushed hardest, with some chance) or start fading. Updates `pop`, `cur_month`."""
    n = pop.cur.size
    pop.cur[people.signup_month == t] = HEALTHY
    cur_month[people.signup_month == t] = HEALTHY
    healthy = (pop.cur == HEALTHY) & (people.signup_month < t)
    u3 = rng.random(n)
    to_intent = healthy & (u3 < h)
    to_fading = healthy & ~to_intent & (u3 < h + cfg.hazard_fading)
    drivers = np.column_stack(
        [
            cfg.hazard_intent_satisfaction * np.maximum(-s_now, 0) + 0.3,
            cfg.hazard_intent_competitor * people.price_sens * push["launch"]
            + cfg.hazard_intent_downturn * push["downturn"]
            + cfg.hazard_intent_policy * push["policy"]
            + 0.25,
            cfg.hazard_intent_engagement * np.maximum(-e_now, 0) + 0.15,
            np.full(n, 0.15),
        ]
    )
    pick = (drivers / drivers.sum(1, keepdims=True)).cumsum(1) > rng.random(n)[:, None]
    pop.reason[to_intent] = np.array(ACTIVE_REASONS)[pick.argmax(1)][to_intent]
    pop.cur[to_intent] = INTENT
    pop.cur[to_fading] = FADING
    cur_month[to_intent] = INTENT
    cur_month[to_fading] = FADING
    pop.since = np.where(to_intent | to_fading, 0, pop.since + 1).astype(np.int16)


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


def draw_lifetimes(
    people: Customers, lives: Lives, month_ms: np.ndarray, rng: np.random.Generator
) -> Lifetimes:
    """Instants of signup and churn inside their months (existing customers: before the
    history starts)."""
    n = people.signup_month.size
    churned = lives.churn_month >= 0
    churn_ms = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    cm = lives.churn_month[churned]
    churn_ms[churned] = month_ms[cm] + (
        rng.random(cm.size) * (month_ms[cm + 1] - month_ms[cm])
    ).astype(np.int64)
    signup_month = people.signup_month
    signup_ms = np.where(
        signup_month >= 0,
        month_ms[np.clip(signup_month, 0, None)]
        + (rng.random(n) * 27 * MS_PER_DAY).astype(np.int64),
        month_ms[0]
        + signup_month * 30 * MS_PER_DAY
        - (rng.random(n) * 27 * MS_PER_DAY).astype(np.int64),
    )
    return Lifetimes(month_ms=month_ms, signup_ms=signup_ms, churn_ms=churn_ms)
