"""The BTYD baseline's models (churnlight.features.btyd): the published CDNOW estimates, parameter
recovery and holdout calibration on data simulated from BG/NBD, the closed forms against each
other, and the per-cutoff pass over a transactions table (point in time)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from churnlight.features import btyd
from churnlight.features.btyd import BgNbd
from churnlight.models.evaluate import btyd_probability, gains_comparison

# CDNOW 1/10 sample summary (2,357 customers, weeks): lifetimes' datasets/
# cdnow_customers_summary_with_transactions.csv (github.com/CamDavidsonPilon/lifetimes, MIT)
CDNOW = Path(__file__).parents[1] / "fixtures" / "cdnow_summary.csv"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_csv(CDNOW)


def _arrays(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(df[c].to_numpy(float) for c in ("x", "t_x", "T"))


def test_bgnbd_matches_the_published_cdnow_estimates(cdnow):
    """Fader, Hardie & Lee (2005) and lifetimes' docs: r .243, alpha 4.414, a .793, b 2.426."""
    m = btyd.fit_bgnbd(*_arrays(cdnow))
    got = [m.r, m.alpha, m.a, m.b]
    np.testing.assert_allclose(got, [0.2426, 4.4135, 0.7929, 2.4258], rtol=1e-2)


def test_gamma_gamma_matches_the_published_cdnow_estimates(cdnow):
    """lifetimes' docs: p 6.25, q 3.74, v 15.45 on the 946 repeat buyers, and the conditional
    expected spend of the first customers."""
    x, zbar = cdnow["x"].to_numpy(float), cdnow["zbar"].to_numpy(float)
    g = btyd.fit_gamma_gamma(x, zbar)
    np.testing.assert_allclose([g.p, g.q, g.v], [6.25, 3.74, 15.45], rtol=1e-2)
    spend = btyd.expected_spend(g, x, zbar)[[0, 1, 2, 5, 8]]
    np.testing.assert_allclose(spend, [24.6586, 18.9115, 35.1710, 71.4628, 27.2824], rtol=1e-3)


def _direct_expected_purchases(m: BgNbd, t: float, x, t_x, age) -> np.ndarray:
    """Eq. (10) as printed: the hypergeometric term with arguments growing with x."""
    z = t / (m.alpha + age + t)
    head = (m.a + m.b + x - 1) / (m.a - 1)
    tail = ((m.alpha + age) / (m.alpha + age + t)) ** (m.r + x)
    tail = tail * hyp2f1(m.r + x, m.b + x, m.a + m.b + x - 1, z)
    return head * (1 - tail) * btyd.p_alive(m, x, t_x, age)


@pytest.mark.parametrize("a", [0.79, 1.7])  # a < 1 flips both signs of eq. (10)
def test_expected_purchases_equals_the_printed_formula(a):
    m = BgNbd(r=0.4, alpha=15.0, a=a, b=2.4)
    x = np.array([0.0, 1, 2, 5, 12])
    t_x = np.array([0.0, 30, 80, 200, 300])
    age = np.array([50.0, 100, 150, 300, 330])
    for t in (7.0, 90.0, 365.0):
        np.testing.assert_allclose(
            btyd.expected_purchases(m, t, x, t_x, age),
            _direct_expected_purchases(m, t, x, t_x, age),
            rtol=1e-9,
        )


def test_no_purchase_probability_closed_forms():
    m = BgNbd(r=0.4, alpha=15.0, a=0.8, b=2.4)
    # a customer at their first purchase: the NBD chance of zero events, no dropout yet
    zero = np.zeros(1)
    np.testing.assert_allclose(
        btyd.p_no_purchase(m, 90.0, zero, zero, zero), (15.0 / 105.0) ** 0.4, rtol=1e-12
    )
    x, t_x, age = np.array([1.0, 4, 9]), np.array([10.0, 200, 50]), np.array([300.0, 300, 300])
    p0 = btyd.p_no_purchase(m, 90.0, x, t_x, age)
    # P(at least one purchase) is at most the expected number, and at most P(alive)
    assert np.all(1 - p0 <= btyd.expected_purchases(m, 90.0, x, t_x, age) + 1e-12)
    assert np.all(1 - p0 <= btyd.p_alive(m, x, t_x, age))
    # a long silence after a busy spell: dropped out more likely than a steady buyer
    assert p0[2] > p0[1]


def _simulate(m: BgNbd, age: np.ndarray, horizon: float, seed: int) -> pd.DataFrame:
    """BG/NBD's story per customer from the first purchase at 0 (no dropout occasion): Poisson
    purchases at a Gamma(r, alpha) rate, a Beta(a, b) dropout chance after each repeat one.
    Observed up to `age`; `future`: the purchases in (age, age + horizon]."""
    rng = np.random.default_rng(seed)
    n = len(age)
    rate = rng.gamma(m.r, 1 / m.alpha, n)
    drop = rng.beta(m.a, m.b, n)
    now = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    x, t_x, future = np.zeros(n), np.zeros(n), np.zeros(n)
    while alive.any():
        idx = np.flatnonzero(alive)
        now[idx] += rng.exponential(1 / np.maximum(rate[idx], 1e-12))
        past = idx[now[idx] <= age[idx]]
        ahead = idx[(now[idx] > age[idx]) & (now[idx] <= age[idx] + horizon)]
        alive[idx[now[idx] > age[idx] + horizon]] = False
        x[past] += 1
        t_x[past] = now[past]
        future[ahead] += 1
        bought = np.concatenate([past, ahead])
        alive[bought[rng.random(len(bought)) < drop[bought]]] = False
    return pd.DataFrame({"x": x, "t_x": t_x, "age": age, "future": future})


def test_parameter_recovery_and_holdout_calibration_on_simulated_data():
    truth = BgNbd(r=0.5, alpha=20.0, a=0.8, b=2.5)
    age = np.random.default_rng(1).uniform(60, 720, 20_000)
    sim = _simulate(truth, age, horizon=90.0, seed=2)
    x, t_x, age = (sim[c].to_numpy(float) for c in ("x", "t_x", "age"))
    m = btyd.fit_bgnbd(x, t_x, age)
    np.testing.assert_allclose([m.r, m.alpha], [truth.r, truth.alpha], rtol=0.1)
    np.testing.assert_allclose([m.a, m.b], [truth.a, truth.b], rtol=0.3)
    # the predictions for the 90 days after the observation match what the simulation did
    expected = btyd.expected_purchases(m, 90.0, x, t_x, age)
    none = btyd.p_no_purchase(m, 90.0, x, t_x, age)
    assert abs(expected.mean() - sim["future"].mean()) < 0.05 * sim["future"].mean()
    assert abs(none.mean() - (sim["future"] == 0).mean()) < 0.01
    # and they rank who buys again: ROC-AUC of P(no purchase) for "no purchase"
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(sim["future"] == 0, none) > 0.75


def test_no_repeat_purchase_leaves_the_scores_empty():
    summary = pd.DataFrame({"x": [0.0, 0.0], "t_x": [0.0, 0.0], "age": [10.0, 40.0]})
    summary["zbar"] = np.nan
    scores, m, g = btyd.btyd_scores(summary, 90, 365, 0.0)
    assert m is None and g is None and scores.isna().all().all()


def _log(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"]).assign(
        ts=lambda d: pd.to_datetime(d["ts"])
    )


def _scores(transactions: pd.DataFrame, cutoffs: list[str]) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("transactions", transactions)
    stamps = [pd.Timestamp(c) for c in cutoffs]
    btyd.score_cutoffs(con, stamps, horizon_days=90, clv_days=365, penalizer=0.0)
    out = con.execute(f"SELECT * FROM {btyd.SCORES_TABLE} ORDER BY cutoff, customer_id").df()
    con.close()
    return out


def _shop(seed: int = 3, n: int = 300) -> pd.DataFrame:
    """A small purchase log from BG/NBD over 2024 (days), with Gamma-Gamma spend."""
    sim_rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(sim_rng.integers(0, 200)))
        t, rate, drop = start, sim_rng.gamma(0.7, 1 / 20), sim_rng.beta(1, 3)
        spend = sim_rng.gamma(3.0, 20.0)  # customers differ in spend, or Gamma-Gamma has no q
        while t < pd.Timestamp("2025-01-01"):
            rows.append((f"c{i:03d}", t, float(sim_rng.gamma(2, spend / 2))))
            if t > start and sim_rng.random() < drop:
                break
            t = t + pd.Timedelta(hours=min(float(sim_rng.exponential(24 / rate)), 9000.0))
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])


def test_the_pass_summarises_per_day_and_matches_the_models():
    """x, t_x and age in days with one purchase a day, the repeat days' mean spend, the fit of
    all customers of the cutoff: the table equals the models applied to the summary by hand."""
    shop = _shop()
    got = _scores(shop, ["2024-10-01"]).set_index("customer_id")
    before = shop[shop["ts"] < "2024-10-01"].assign(day=lambda d: d["ts"].dt.normalize())
    daily = before.groupby(["customer_id", "day"])["amount"].sum().reset_index()
    first = daily.groupby("customer_id")["day"].transform("min")
    daily["repeat"] = daily["day"] > first
    summary = daily.groupby("customer_id").agg(
        x=("repeat", "sum"), first=("day", "min"), last=("day", "max")
    )
    summary["x"] = summary["x"].astype(float)
    summary["t_x"] = (summary["last"] - summary["first"]).dt.days.astype(float)
    summary["age"] = (pd.Timestamp("2024-10-01") - summary["first"]).dt.days.astype(float)
    summary["zbar"] = daily[daily["repeat"]].groupby("customer_id")["amount"].mean()
    want, _, _ = btyd.btyd_scores(summary[["x", "t_x", "age", "zbar"]], 90, 365, 0.0)
    assert sorted(got.index) == sorted(want.index)  # only customers who bought before
    # the same customers, summed in another order: equal to the optimiser's precision
    pd.testing.assert_frame_equal(
        got.loc[want.index, list(btyd.OUTPUTS)], want, check_names=False, rtol=1e-5
    )


def test_the_pass_is_point_in_time():
    """Purchases at or after a cutoff change nothing at that cutoff; a customer whose first
    purchase comes later has no scores there."""
    shop = _shop()
    later = shop[shop["ts"] >= "2024-07-01"].copy()
    later["amount"] *= 7
    changed = pd.concat(
        [
            shop[shop["ts"] < "2024-07-01"],
            later.sample(frac=0.5, random_state=0),
            _log(
                [
                    ("newcomer", "2024-07-01 00:00:00", 10.0),
                    ("newcomer", "2024-08-03 10:00:00", 5.0),
                ]
            ),
        ]
    )
    a = _scores(shop, ["2024-07-01", "2024-10-01"])
    b = _scores(changed, ["2024-07-01", "2024-10-01"])
    at = pd.Timestamp("2024-07-01")
    pd.testing.assert_frame_equal(
        a[a["cutoff"] == at].reset_index(drop=True), b[b["cutoff"] == at].reset_index(drop=True)
    )
    assert "newcomer" not in set(b.loc[b["cutoff"] == at, "customer_id"])
    assert "newcomer" in set(b.loc[b["cutoff"] > at, "customer_id"])
    assert not a[a["cutoff"] > at].equals(b[b["cutoff"] > at])  # the later cutoff does see it


def test_the_summary_is_exact_and_point_in_time():
    """Spend is summed exactly (whole millionths, as integers), so the fits see the same numbers
    whatever order an engine's threads meet the rows in (the Spark engine's parity rests on this;
    in floats 0.1 + 0.2 + 0.3 is 0.6000000000000001, and 0.3 + 0.2 + 0.1 is 0.6). A customer's
    summary at a cutoff is that of their last purchase day before the cutoff's date: two cutoffs
    between the same purchase days share it (only the age grows), and a purchase on the cutoff's
    date does not count."""
    rows = [
        ("a", "2024-01-01 09:00:00", 5.0),  # the first purchase day: not a repeat
        ("a", "2024-01-02 09:00:00", 0.1),
        ("a", "2024-01-02 18:00:00", 0.2),  # the same day: one purchase day of 0.3
        ("a", "2024-01-05 09:00:00", 0.3),
        ("a", "2024-02-01 09:00:00", 99.0),  # after the first two cutoffs
        ("b", "2024-01-20 09:00:00", 7.0),  # on the second cutoff's date: from the third on
    ]
    cutoffs = [pd.Timestamp(c) for c in ("2024-01-10", "2024-01-20", "2024-03-01")]
    # (a frame built in reverse, not reversed: DuckDB 2.0 fails with std::bad_cast to read a
    # pandas 3 string column taken in reverse)
    for order in (_log(rows), _log(rows[::-1])):
        con = duckdb.connect()
        con.register("transactions", order)
        btyd.summarise(con, cutoffs)
        got = con.execute(
            "SELECT customer_id, cutoff, x, t_x, age, zbar FROM btyd_summary ORDER BY cutoff, 1"
        ).fetchall()
        con.close()
        assert [(r[0], r[1].day) for r in got] == [("a", 10), ("a", 20), ("a", 1), ("b", 1)]
        assert got[0][2:] == (2.0, 4.0, 9.0, 0.6 / 2)  # (0.1 + 0.2 + 0.3) / 2, exactly
        assert got[1][2:] == (2.0, 4.0, 19.0, 0.6 / 2)
        assert got[2][2:] == (3.0, 31.0, 60.0, 99.6 / 3)
        assert got[3][2:] == (0.0, 0.0, 41.0, None)


def test_baseline_probability_fills_customers_without_purchases():
    train = pd.DataFrame({"btyd_p_no_purchase": [0.2, np.nan, np.nan, 0.9], "label": [0, 1, 0, 1]})
    test = pd.DataFrame({"btyd_p_no_purchase": [0.3, np.nan]})
    np.testing.assert_allclose(btyd_probability(train, test), [0.3, 0.5])


def test_gains_of_the_champion_and_the_baselines_on_the_same_rows():
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    perfect, reversed_ = y.astype(float), 1.0 - y
    gains = gains_comparison(y, {"champion": perfect, "btyd": reversed_}, points=11)
    assert list(gains.columns) == ["share_contacted", "champion", "btyd"]
    assert gains["share_contacted"].iloc[-1] == 1.0
    assert gains["champion"].iloc[2] == 1.0  # the three churners first
    assert gains["btyd"].iloc[6] == 0.0 and gains["btyd"].iloc[-1] == 1.0
