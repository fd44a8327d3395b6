"""The BTYD ("buy till you die") baseline: BG/NBD for purchase counts, Gamma-Gamma for spend.

For a purchase log without cancellations, the textbook reference is BG/NBD (Fader, Hardie & Lee
2005, "Counting your customers the easy way", Marketing Science 24(2)): while alive a customer
buys at a Poisson rate (gamma-distributed across customers, r and alpha) and after each
purchase drops out with a chance p (beta-distributed, a and b). Gamma-Gamma (Fader, Hardie &
Lee 2005, "RFM and CLV", JMR 42(4)) models the spend of a purchase (p, q, v). Both are fitted
by maximum likelihood on the closed-form log-likelihoods of the papers.

Written here on scipy rather than taken from a library: `lifetimes` (last release 2020) and its
fork `btyd` (2022) do not install with pandas 3; pymc-marketing's current releases need Python
3.12 and its older ones a PyMC/PyTensor stack that compiles C at first use. The formulas are
short, vectorised, and the tests check them on the published CDNOW estimates and on data
simulated from the model.

A customer's summary at a cutoff (days; purchases collapsed to one a day): `x` repeat purchase
days, `t_x` days from the first to the last purchase day, `age` days from the first purchase
day to the cutoff (the paper's T), `zbar` the mean spend of the repeat purchase days. One SQL
pass over the transactions builds them for every cutoff (`summarise`); `score_cutoffs` then
fits and scores each cutoff.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

# the per-customer outputs, in file order
OUTPUTS = ("btyd_p_alive", "btyd_expected_purchases", "btyd_p_no_purchase", "btyd_clv")
# log-parameters are kept in this box: a parameter that runs off to 0 or infinity (no dropout
# seen, say) stays finite, and the fit stays a few evaluations long
_LOG_BOUND = 12.0
# L-BFGS-B's stopping rules: tighter than scipy's defaults, which stop Gamma-Gamma's flat
# likelihood about 0.1% short in the value
_TIGHT = {"ftol": 1e-13, "gtol": 1e-9, "maxiter": 1000}


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout chance ~ Beta(a, b).
    `alpha` is in the time unit of the data it was fitted on (days here)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    """Gamma-Gamma parameters of the spend per purchase: shape p, and the customer's rate ~
    Gamma(q, v) (`v` in money)."""

    p: float
    q: float
    v: float


def bgnbd_log_likelihood(m: BgNbd, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood, eq. (6) of the paper, summed in log space (the two terms
    underflow as written): alive at the cutoff, or dropped out right after the last purchase."""
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    common = (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(a + b)
        + gammaln(b + x)
        - gammaln(b)
        - gammaln(a + b + x)
    )
    alive = -(r + x) * np.log(alpha + age)
    repeat = np.maximum(x, 1.0)  # b + x - 1 is read only where x > 0
    dropped = np.where(
        x > 0, np.log(a) - np.log(b + repeat - 1) - (r + x) * np.log(alpha + t_x), -np.inf
    )
    return common + np.logaddexp(alive, dropped)


def _fit(objective, start: np.ndarray) -> np.ndarray:
    """Minimise over log-parameters in a box: L-BFGS-B, and Nelder-Mead (robust from afar, but
    ten times the evaluations) only when that stops without converging, then polished."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
    fine = minimize(objective, start, method="L-BFGS-B", bounds=bounds, options=_TIGHT)
    if fine.success:
        return fine.x
    coarse = minimize(objective, start, method="Nelder-Mead", options={"maxiter": 2000})
    x0 = np.clip(coarse.x, -_LOG_BOUND, _LOG_BOUND)
    polished = minimize(objective, x0, method="L-BFGS-B", bounds=bounds, options=_TIGHT)
    return polished.x if polished.fun <= coarse.fun else x0


def _sorted(*columns: np.ndarray) -> list[np.ndarray]:
    """The columns as floats, rows sorted by their values: a fit depends on the customers, not
    on the order they come in (sums in another order differ in the last bits, and so can the
    optimiser's path)."""
    arrays = [np.asarray(c, dtype=float) for c in columns]
    order = np.lexsort(arrays[::-1])
    return [a[order] for a in arrays]


class _Distinct:
    """An array as its distinct values and the index of each element: a function of the values
    is computed once per distinct value (purchase counts and day counts repeat a lot)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.index = np.unique(values, return_inverse=True)

    def map(self, f) -> np.ndarray:
        return f(self.values)[self.index]


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, age: np.ndarray, penalizer: float = 0.0) -> BgNbd:
    """Maximum likelihood (plus `penalizer` x the squared log-parameters, for small bases where
    a and b run away). Time is rescaled to the mean age for the search, so that the start and
    the penalty do not depend on the unit; alpha is scaled back. The log-likelihood is
    `bgnbd_log_likelihood`'s, with each term computed once per distinct x, t_x and age."""
    x, t_x, age = _sorted(x, t_x, age)
    scale = float(age.mean()) if len(age) and age.mean() > 0 else 1.0
    dx, dtx, dage = _Distinct(x), _Distinct(t_x / scale), _Distinct(age / scale)
    repeat = x > 0
    x_rep = np.maximum(x, 1.0)

    def objective(theta: np.ndarray) -> float:
        r, alpha, a, b = np.exp(theta)
        common = dx.map(lambda u: gammaln(r + u) + gammaln(b + u) - gammaln(a + b + u)) + (
            r * np.log(alpha) + gammaln(a + b) - gammaln(r) - gammaln(b)
        )
        alive = -(r + x) * dage.map(lambda u: np.log(alpha + u))
        dropped = np.log(a) - np.log(b + x_rep - 1) - (r + x) * dtx.map(lambda u: np.log(alpha + u))
        ll = common + np.where(repeat, np.logaddexp(alive, dropped), alive)
        value = -float(ll.mean()) + penalizer * float(np.sum(theta**2))
        return value if np.isfinite(value) else 1e300

    r, alpha, a, b = np.exp(_fit(objective, np.zeros(4)))
    return BgNbd(float(r), float(alpha * scale), float(a), float(b))


def p_alive(m: BgNbd, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """P(still alive at the cutoff | x, t_x, age): 1 without repeat purchases (the model's
    customers drop out only right after a purchase)."""
    repeat = np.maximum(x, 1.0)
    log_odds = (
        np.log(m.a)
        - np.log(m.b + repeat - 1)
        + (m.r + x) * (np.log(m.alpha + age) - np.log(m.alpha + t_x))
    )
    return np.where(x > 0, expit(-log_odds), 1.0)


def expected_purchases(
    m: BgNbd, t: float, x: np.ndarray, t_x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """E[purchases in (age, age + t] | x, t_x, age], eq. (10) of the paper. Its
    ((alpha+age)/(alpha+age+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z) is written with Euler's
    transformation as (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose first two arguments do
    not grow with x: the same number, without overflow for frequent buyers."""
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    z = t / (alpha + age + t)
    c = a + b + x - 1
    tail = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, c, z)
    return c / (a - 1) * (1 - tail) * p_alive(m, x, t_x, age)


def p_no_purchase(
    m: BgNbd, t: float, x: np.ndarray, t_x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """P(no purchase in (age, age + t] | x, t_x, age): dead, or alive with no Poisson event in
    t. An alive customer's rate given the history is Gamma(r + x, alpha + age), so the chance of no
    event is ((alpha + age) / (alpha + age + t))^(r + x)."""
    quiet = np.exp((m.r + x) * (np.log(m.alpha + age) - np.log(m.alpha + age + t)))
    return 1 - p_alive(m, x, t_x, age) * (1 - quiet)


def gamma_gamma_log_likelihood(g: GammaGamma, x: np.ndarray, zbar: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood of the mean spend `zbar` of `x` (> 0) purchases."""
    px = g.p * x
    return (
        gammaln(px + g.q)
        - gammaln(px)
        - gammaln(g.q)
        + g.q * np.log(g.v)
        + (px - 1) * np.log(zbar)
        + px * np.log(x)
        - (px + g.q) * np.log(x * zbar + g.v)
    )


def fit_gamma_gamma(x: np.ndarray, zbar: np.ndarray, penalizer: float = 0.0) -> GammaGamma:
    """Maximum likelihood on customers with repeat purchases and a positive mean spend; money
    is rescaled to the mean spend for the search (v is scaled back)."""
    x, zbar = _sorted(x, zbar)
    keep = (x > 0) & (zbar > 0)
    x, zbar = x[keep], zbar[keep]
    scale = float(zbar.mean())
    z_s = zbar / scale

    def objective(theta: np.ndarray) -> float:
        p, q, v = np.exp(theta)
        ll = gamma_gamma_log_likelihood(GammaGamma(p, q, v), x, z_s).mean()
        value = -ll + penalizer * float(np.sum(theta**2))
        return value if np.isfinite(value) else 1e300

    p, q, v = np.exp(_fit(objective, np.array([0.0, 1.0, 0.0])))
    return GammaGamma(float(p), float(q), float(v * scale))


def expected_spend(g: GammaGamma, x: np.ndarray, zbar: np.ndarray) -> np.ndarray:
    """E[spend of a purchase | x, zbar]: a weighted mean of the population's mean v p / (q - 1)
    and the customer's own; the population's mean without repeat purchases (or without a
    positive mean). Undefined (NaN) when q <= 1: the population's mean spend is infinite."""
    if g.q <= 1:
        return np.full(len(x), np.nan)
    own = (x > 0) & (zbar > 0)
    xs = np.where(own, x, 0.0)
    weight = g.p * xs / (g.p * xs + g.q - 1)
    population = g.v * g.p / (g.q - 1)
    return (1 - weight) * population + weight * np.where(own, zbar, 0.0)


def btyd_scores(
    summary: pd.DataFrame, horizon_days: float, clv_days: float, penalizer: float
) -> tuple[pd.DataFrame, BgNbd | None, GammaGamma | None]:
    """Fit both models on the customers of one cutoff (`summary`: x, t_x, age, zbar) and score
    them: P(alive), expected purchases and P(no purchase) in the next `horizon_days`, and the
    value of the next `clv_days` (expected spend of a purchase x expected purchases; not
    discounted). Without any repeat purchase there is nothing to fit: every output is NaN.
    Gamma-Gamma needs customers with a positive repeat spend; without them the value is NaN."""
    x, t_x, age = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "age"))
    zbar = summary["zbar"].to_numpy(dtype=float, na_value=np.nan)
    out = pd.DataFrame({c: np.full(len(summary), np.nan) for c in OUTPUTS}, index=summary.index)
    if not (x > 0).any():
        return out, None, None
    m = fit_bgnbd(x, t_x, age, penalizer)
    out["btyd_p_alive"] = p_alive(m, x, t_x, age)
    out["btyd_expected_purchases"] = expected_purchases(m, horizon_days, x, t_x, age)
    out["btyd_p_no_purchase"] = p_no_purchase(m, horizon_days, x, t_x, age)
    g = None
    if ((x > 0) & (np.nan_to_num(zbar) > 0)).any():
        g = fit_gamma_gamma(x, np.nan_to_num(zbar), penalizer)
        spend = expected_spend(g, x, np.nan_to_num(zbar))
        out["btyd_clv"] = spend * expected_purchases(m, clv_days, x, t_x, age)
    return out, m, g


# --- the pass over the transactions: a summary per (customer, cutoff), a fit per cutoff --------

SCORES_TABLE = "btyd_scores"  # (customer_id, cutoff, OUTPUTS): read by every customer range
# Money is summed exactly, as whole millionths (`UNIT`): a sum of integers is the same number in
# any order, so every engine, thread count and plan gives the fits the same bits (a parallel sum
# of floats adds in any order, and the fits would follow its last bits from run to run), and a
# running sum per customer serves every cutoff. A customer's summary at a cutoff is then the
# row of their last purchase day before it (an as-of join of each day with the cutoffs up to
# its next purchase day), not an aggregate over every earlier day per cutoff. Rows are numbered
# within their cutoff (a fit reads one cutoff, in customer order): a window over the whole table
# is one task on Spark
UNIT = 1e6
_SUMMARY_SQL = f"""
CREATE OR REPLACE TEMP TABLE btyd_days AS
SELECT customer_id, day, n, total_units - first_units AS repeat_units,
       first_value(day) OVER (PARTITION BY customer_id ORDER BY day) AS first_day,
       coalesce(lead(day) OVER (PARTITION BY customer_id ORDER BY day), DATE '9999-12-31')
         AS next_day
FROM (
  SELECT customer_id, day,
         row_number() OVER w AS n, sum(units) OVER w AS total_units,
         first_value(units) OVER w AS first_units
  FROM (
    SELECT customer_id, CAST(ts AS DATE) AS day,
           sum(CAST(round(amount * {UNIT}) AS BIGINT)) AS units
    FROM transactions WHERE customer_id IS NOT NULL GROUP BY customer_id, CAST(ts AS DATE)
  )
  WINDOW w AS (PARTITION BY customer_id ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND
               CURRENT ROW)
);

CREATE OR REPLACE TEMP TABLE btyd_summary AS
SELECT (row_number() OVER (PARTITION BY cutoff ORDER BY customer_id))::BIGINT AS rn, customer_id,
       cutoff, x, t_x, age, zbar
FROM (
  SELECT d.customer_id, k.cutoff, (d.n - 1)::DOUBLE AS x,
         date_diff('day', d.first_day, d.day)::DOUBLE AS t_x,
         date_diff('day', d.first_day, CAST(k.cutoff AS DATE))::DOUBLE AS age,
         CASE WHEN d.n > 1 THEN CAST(d.repeat_units AS DOUBLE) / {UNIT} / (d.n - 1) END AS zbar
  FROM btyd_days d JOIN btyd_cutoffs k
    ON d.day < CAST(k.cutoff AS DATE) AND d.next_day >= CAST(k.cutoff AS DATE)
);
"""


def summarise(con: duckdb.DuckDBPyConnection, cutoffs: list[pd.Timestamp]) -> None:
    """The tables `btyd_days` and `btyd_summary` (x, t_x, age, zbar per customer and cutoff,
    rows numbered `rn` within their cutoff) from the relation `transactions` at `cutoffs`."""
    con.execute("CREATE OR REPLACE TEMP TABLE btyd_cutoffs (cutoff TIMESTAMP)")
    con.executemany("INSERT INTO btyd_cutoffs VALUES (?)", [[c.to_pydatetime()] for c in cutoffs])
    con.execute(_SUMMARY_SQL)


def fit_cutoff(
    summary: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int, clv_days: int, penalizer: float
) -> tuple[pd.DataFrame, dict]:
    """One cutoff's fits and scores (`btyd_scores`, in the summary's row order), and the fitted
    parameters for the log and the report. The fits do not depend on the rows' order."""
    # the optimiser's steps are tiny BLAS calls: threads only contend for them (on a busy
    # 2-core machine, 2 s of 7 in L-BFGS-B's own step)
    with threadpool_limits(limits=1, user_api="blas"):
        scores, m, g = btyd_scores(summary, horizon_days, clv_days, penalizer)
    fit = {
        "cutoff": str(pd.Timestamp(cutoff).date()),
        "customers": len(summary),
        "bgnbd": None if m is None else m.__dict__,
        "gamma_gamma": None if g is None else g.__dict__,
    }
    return scores, fit


def log_fits(fits: list[dict], seconds: float) -> None:
    log.info("BTYD: BG/NBD and Gamma-Gamma fitted at %d cutoffs in %.1f s", len(fits), seconds)


def score_cutoffs(
    con: duckdb.DuckDBPyConnection,
    cutoffs: list[pd.Timestamp],
    horizon_days: int,
    clv_days: int,
    penalizer: float,
) -> list[dict]:
    """Build the table `btyd_scores` from the relation `transactions` at `cutoffs`: each
    cutoff's models fitted on every customer's purchases before it (point in time), and its
    customers scored. A persistent table of the in-memory database, so that every cursor (the
    customer ranges) sees it; only the summary's numbers (six a row) come into Python.
    Customers without a purchase before a cutoff have no row (their features stay NULL).
    Returns the fitted parameters per cutoff (for the log and the report). The Spark engine
    fits the cutoffs where the summary is (`churnlight.features.spark.score_cutoffs_spark`)."""
    t0 = time.perf_counter()
    summarise(con, cutoffs)
    columns = ", ".join(f"{c} DOUBLE" for c in OUTPUTS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE btyd_out (cutoff TIMESTAMP, rn BIGINT, {columns})")
    # every cutoff's summary in one read, and every score in one insert
    every = con.execute("SELECT cutoff, rn, x, t_x, age, zbar FROM btyd_summary").df()
    every = every.sort_values(["cutoff", "rn"], ignore_index=True)
    fits, batches = [], []
    for cutoff in sorted(cutoffs):
        summary = every[every["cutoff"] == pd.Timestamp(cutoff)].reset_index(drop=True)
        scores, fit = fit_cutoff(summary, cutoff, horizon_days, clv_days, penalizer)
        scores.insert(0, "rn", summary["rn"].to_numpy())
        scores.insert(0, "cutoff", pd.Timestamp(cutoff))
        batches.append(scores)
        fits.append(fit)
    del every
    if batches:
        con.register("btyd_batch", pd.concat(batches, ignore_index=True))
        con.execute("INSERT INTO btyd_out SELECT * FROM btyd_batch")
        con.unregister("btyd_batch")
    con.execute(f"""
        CREATE OR REPLACE TABLE {SCORES_TABLE} AS
        SELECT s.customer_id, s.cutoff, {", ".join(f"o.{c}" for c in OUTPUTS)}
        FROM btyd_summary s JOIN btyd_out o USING (cutoff, rn)
    """)
    for name in ("btyd_cutoffs", "btyd_days", "btyd_summary", "btyd_out"):
        con.execute(f"DROP TABLE {name}")
    log_fits(fits, time.perf_counter() - t0)
    return fits
