"""Behaviour family: windowed counts and sums, recency, gaps, baselines, RFM, tiers, care layers.

All events are placed relative to CUTOFF = 2026-01-01 00:00 (`days_before(d)` = CUTOFF - d days).
The SQL bounds every window as `ts >= cutoff - INTERVAL w DAY AND ts < cutoff`: an event exactly
at the cutoff is never seen, one exactly w days before is inside the w-day window.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from .helpers import (
    CFG,
    CUTOFF,
    activity,
    build,
    by_customer,
    customers,
    days_before,
    transactions,
)

ONE_SECOND = pd.Timedelta(seconds=1)
WINDOWS = CFG.windows_days  # (30, 90, 180, 365) in params.yaml


def test_params_windows_are_the_documented_ones():
    assert WINDOWS == (30, 90, 180, 365)


# --- window bounds -------------------------------------------------------------------------------


@pytest.mark.parametrize("w", WINDOWS)
def test_window_bounds_are_half_open_at_the_cutoff(w):
    # three logins and three purchases: at the cutoff (excluded: ts < cutoff fails),
    # exactly w days before (included: ts >= cutoff - w days) and one second earlier (excluded)
    # -> login_{w}d = 1, purchases_{w}d = 1, spend_{w}d = 10 (the amount at cutoff - w days)
    at_edge = days_before(w)
    tables = {
        "customers": customers(["A"]),
        "activity": activity(
            [("A", CUTOFF, "login"), ("A", at_edge, "login"), ("A", at_edge - ONE_SECOND, "login")]
        ),
        "transactions": transactions(
            [("A", CUTOFF, 1.0), ("A", at_edge, 10.0), ("A", at_edge - ONE_SECOND, 100.0)]
        ),
    }
    row = by_customer(build(tables)).loc["A"]
    assert row[f"login_{w}d"] == 1
    assert row[f"purchases_{w}d"] == 1
    assert row[f"spend_{w}d"] == 10.0


def test_activity_counts_per_type_and_window():
    # A logins at -1s, -30d (in 30d), -30d-1s, -90d (in 90d), -365d (in 365d), -365d-1s (nowhere),
    # and one at the cutoff itself (nowhere):
    #   login_30d = 2, login_90d = 4, login_180d = 4, login_365d = 5
    # booking_cancelled at -10d, -89d, -91d, -200d:
    #   booking_cancelled_30d = 1, _90d = 2, _180d = 3, _365d = 4
    # an unknown event type "chat" at -1d is counted as other: other_30d = 1, login_30d unchanged
    rows = [
        ("A", CUTOFF, "login"),
        ("A", CUTOFF - ONE_SECOND, "login"),
        ("A", days_before(30), "login"),
        ("A", days_before(30) - ONE_SECOND, "login"),
        ("A", days_before(90), "login"),
        ("A", days_before(365), "login"),
        ("A", days_before(365) - ONE_SECOND, "login"),
        ("A", days_before(10), "booking_cancelled"),
        ("A", days_before(89), "booking_cancelled"),
        ("A", days_before(91), "booking_cancelled"),
        ("A", days_before(200), "booking_cancelled"),
        ("A", days_before(1), "chat"),
    ]
    tables = {"customers": customers(["A", "B"]), "activity": activity(rows)}
    feats = by_customer(build(tables))
    a = feats.loc["A"]
    assert [a[f"login_{w}d"] for w in WINDOWS] == [2, 4, 4, 5]
    assert [a[f"booking_cancelled_{w}d"] for w in WINDOWS] == [1, 2, 3, 4]
    assert [a[f"other_{w}d"] for w in WINDOWS] == [1, 1, 1, 1]
    assert a["visit_365d"] == 0
    # B has no activity at all: every count is 0, not missing
    b = feats.loc["B"]
    assert all(b[f"{e}_{w}d"] == 0 for e in ("login", "other", "booking") for w in WINDOWS)


def test_spend_and_purchase_sums():
    # amounts 100 at -10d, 200 at -60d, 300 at -150d, 400 at -300d, 500 at -400d, 9999 at cutoff
    #   spend_30d = 100, _90d = 300, _180d = 600, _365d = 1000
    #   purchases    1,       2,        3,         4
    # frequency_per_year = 4 purchases in 365 days, monetary_per_year = 1000
    tables = {
        "customers": customers(["A"]),
        "transactions": transactions(
            [
                ("A", days_before(10), 100),
                ("A", days_before(60), 200),
                ("A", days_before(150), 300),
                ("A", days_before(300), 400),
                ("A", days_before(400), 500),
                ("A", CUTOFF, 9999),
            ]
        ),
    }
    a = by_customer(build(tables)).loc["A"]
    assert [a[f"spend_{w}d"] for w in WINDOWS] == [100.0, 300.0, 600.0, 1000.0]
    assert [a[f"purchases_{w}d"] for w in WINDOWS] == [1, 2, 3, 4]
    assert a["frequency_per_year"] == 4.0
    assert a["monetary_per_year"] == 1000.0


# --- recency and tenure --------------------------------------------------------------------------


def test_recency_and_tenure():
    # A: signup 2025-01-01 -> tenure 365 days; last purchase at -10d 12h -> recency 10.5;
    #    last login at -3d -> activity_recency 3; service_done at -1d does not count for it
    # B: signup 2025-07-05 (180 days before the cutoff), never bought nor logged in:
    #    both recencies fall back to the tenure, 180
    # C: no signup date: tenure from its first event (a purchase at -200d) -> 200
    cust = customers(["A", "B", "C"], signup=["2025-01-01", "2025-07-05", None])
    tables = {
        "customers": cust,
        "transactions": transactions(
            [
                ("A", days_before(10.5), 50),
                ("A", days_before(40), 50),
                ("C", days_before(200), 50),
                ("C", days_before(20), 50),
            ]
        ),
        "activity": activity(
            [
                ("A", days_before(3), "login"),
                ("A", days_before(1), "service_done"),
                ("C", days_before(5), "visit"),
            ]
        ),
    }
    f = by_customer(build(tables))
    assert f.loc["A", "tenure_days"] == 365.0
    assert f.loc["A", "recency_days"] == pytest.approx(10.5)
    assert f.loc["A", "activity_recency_days"] == pytest.approx(3.0)
    assert f.loc["B", "tenure_days"] == 180.0
    assert f.loc["B", "recency_days"] == 180.0
    assert f.loc["B", "activity_recency_days"] == 180.0
    assert f.loc["C", "tenure_days"] == 200.0
    assert f.loc["C", "recency_days"] == 20.0
    assert f.loc["C", "activity_recency_days"] == 5.0


def test_activity_recency_beyond_the_yearly_lookback():
    # activity is read over the yearly lookback (documented in the registry): a last login 400
    # days ago reads as 365, "none within a year", never as the tenure (1000)
    cust = customers(["A"], signup=days_before(1000))
    tables = {"customers": cust, "activity": activity([("A", days_before(400), "login")])}
    assert by_customer(build(tables)).loc["A", "activity_recency_days"] == pytest.approx(365.0)
    # a newer customer with no login, visit or booking reads as their tenure
    young = customers(["B"], signup=days_before(100))
    assert by_customer(
        build({"customers": young, "activity": activity([("B", days_before(5), "outreach_sent")])})
    ).loc["B", "activity_recency_days"] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("days", "months"),
    [
        (0.5, 0),
        (30.44, 1),  # floor(30.44 / 30.44) = 1
        (60.0, 1),  # floor(60 / 30.44 = 1.97) = 1: not yet two months
        (60.88, 2),  # 2 * 30.44 = 60.88
        (61.0, 2),
        (92.0, 3),  # 3 * 30.44 = 91.32 <= 92
    ],
)
def test_months_without_purchase(days, months):
    tables = {
        "customers": customers(["A"]),
        "transactions": transactions([("A", days_before(days), 10)]),
    }
    assert by_customer(build(tables)).loc["A", "months_without_purchase"] == months


def test_mean_gap_and_gap_ratio():
    # G1: purchases at -130, -110, -90, -70 -> span 60 days over 3 gaps -> mean gap 20;
    #     recency 70 -> gap_ratio 70 / 20 = 3.5
    # G2: purchases at -400 (outside every window, still history) and -100 -> gap 300;
    #     recency 100 -> gap_ratio 1/3
    # G3: a single purchase -> no gap: mean_gap_days and gap_ratio missing
    # a purchase after the cutoff (G1 at +5d) is invisible
    tables = {
        "customers": customers(["G1", "G2", "G3"]),
        "transactions": transactions(
            [
                ("G1", days_before(130), 10),
                ("G1", days_before(110), 10),
                ("G1", days_before(90), 10),
                ("G1", days_before(70), 10),
                ("G1", days_before(-5), 10),
                ("G2", days_before(400), 10),
                ("G2", days_before(100), 10),
                ("G3", days_before(50), 10),
            ]
        ),
    }
    f = by_customer(build(tables))
    assert f.loc["G1", "mean_gap_days"] == pytest.approx(20.0)
    assert f.loc["G1", "gap_ratio"] == pytest.approx(3.5)
    assert f.loc["G2", "mean_gap_days"] == pytest.approx(300.0)
    assert f.loc["G2", "gap_ratio"] == pytest.approx(1 / 3)
    assert pd.isna(f.loc["G3", "mean_gap_days"])
    assert pd.isna(f.loc["G3", "gap_ratio"])


def test_spend_90d_vs_baseline():
    # S1: 300 at -30d (last 90 days), 3000 at -200d (the 275 days before, inside 365):
    #     earlier quarterly average = (3300 - 300) / 3 = 1000 -> ratio 0.3
    # S2: 500 at -10d and 500 at -100d: 500 / (500 / 3) = 3.0
    # S3: only recent spend -> no baseline -> missing
    # S4: nothing in the last 90 days, 600 at -300d: 0 / 200 = 0.0
    tables = {
        "customers": customers(["S1", "S2", "S3", "S4"]),
        "transactions": transactions(
            [
                ("S1", days_before(30), 300),
                ("S1", days_before(200), 3000),
                ("S2", days_before(10), 500),
                ("S2", days_before(100), 500),
                ("S3", days_before(5), 700),
                ("S4", days_before(300), 600),
            ]
        ),
    }
    f = by_customer(build(tables))
    assert f.loc["S1", "spend_90d_vs_baseline"] == pytest.approx(0.3)
    assert f.loc["S2", "spend_90d_vs_baseline"] == pytest.approx(3.0)
    assert pd.isna(f.loc["S3", "spend_90d_vs_baseline"])
    assert f.loc["S4", "spend_90d_vs_baseline"] == 0.0


def test_activity_30d_vs_baseline():
    # last 30 days = [-30d, cutoff): logins at -5d and exactly -30d -> lv_30d = 2
    # prior 90 days = [-120d, -30d): logins at -31d, -60d, -90d, visits at -100d and exactly
    #   -120d -> 5; a booking at -50d and a login at -121d do not count
    # baseline = 5 / 3 per month -> ratio 2 / (5/3) = 1.2
    # B: logins in the last 30 days only -> no baseline -> missing
    rows = [
        ("A", days_before(5), "login"),
        ("A", days_before(30), "login"),
        ("A", days_before(31), "login"),
        ("A", days_before(60), "login"),
        ("A", days_before(90), "login"),
        ("A", days_before(100), "visit"),
        ("A", days_before(120), "visit"),
        ("A", days_before(50), "booking"),
        ("A", days_before(121), "login"),
        ("B", days_before(3), "login"),
    ]
    tables = {"customers": customers(["A", "B"]), "activity": activity(rows)}
    f = by_customer(build(tables))
    assert f.loc["A", "activity_30d_vs_baseline"] == pytest.approx(1.2)
    assert pd.isna(f.loc["B", "activity_30d_vs_baseline"])


def test_reply_rates():
    # last 90 days: outreach_sent at -10, -20, -40, -90 (exact edge, inside) = 4; replied at -11 = 1
    #   -> reply_rate_90d = 0.25
    # before ([-365d, -90d)): sent at -100, -200, -300 = 3; replied at -101, -201 = 2
    #   (sent at -400 and replied at -401 are outside the 365-day lookback)
    #   -> reply_rate_before = 2/3; change = 0.25 - 2/3 = -5/12
    # B: never contacted: every rate missing
    rows = [
        ("A", days_before(d), "outreach_sent") for d in (10, 20, 40, 90, 100, 200, 300, 400)
    ] + [("A", days_before(d), "outreach_replied") for d in (11, 101, 201, 401)]
    tables = {"customers": customers(["A", "B"]), "activity": activity(rows)}
    f = by_customer(build(tables))
    assert f.loc["A", "reply_rate_90d"] == pytest.approx(0.25)
    assert f.loc["A", "reply_rate_before"] == pytest.approx(2 / 3)
    assert f.loc["A", "reply_rate_change"] == pytest.approx(-5 / 12)
    for c in ("reply_rate_90d", "reply_rate_before", "reply_rate_change"):
        assert pd.isna(f.loc["B", c])


def test_service_overdue_days():
    # S1 due at -120d, never done -> 120 days overdue
    # S2 due at -120d, done at -100d -> 0
    # S3 done at -220d, due again at -200d, not done since -> 200
    # S4 no service at all -> 0
    # S5 due and done at the same instant (-10d) -> not overdue -> 0
    # S6 due at -50d, done only after the cutoff (+3d) -> 50
    rows = [
        ("S1", days_before(120), "service_due"),
        ("S2", days_before(120), "service_due"),
        ("S2", days_before(100), "service_done"),
        ("S3", days_before(220), "service_done"),
        ("S3", days_before(200), "service_due"),
        ("S4", days_before(10), "login"),
        ("S5", days_before(10), "service_due"),
        ("S5", days_before(10), "service_done"),
        ("S6", days_before(50), "service_due"),
        ("S6", days_before(-3), "service_done"),
    ]
    tables = {
        "customers": customers(["S1", "S2", "S3", "S4", "S5", "S6"]),
        "activity": activity(rows),
    }
    f = by_customer(build(tables))["service_overdue_days"]
    assert f.to_dict() == {"S1": 120.0, "S2": 0.0, "S3": 200.0, "S4": 0.0, "S5": 0.0, "S6": 50.0}


def test_service_overdue_beyond_the_yearly_lookback():
    # a yearly service due at -400d and never done
    tables = {
        "customers": customers(["A"]),
        "activity": activity([("A", days_before(400), "service_due")]),
    }
    # services that fell due more than a year ago are outside the lookback (the registry says
    # "due within the last year"), so they do not count as overdue
    assert by_customer(build(tables)).loc["A", "service_overdue_days"] == pytest.approx(0.0)


def test_booking_cancellations_in_the_last_90_days():
    # cancellations at -10d, -89d, -90d (edge: inside) and -91d -> booking_cancelled_90d = 3
    rows = [("A", days_before(d), "booking_cancelled") for d in (10, 89, 90, 91)]
    tables = {"customers": customers(["A"]), "activity": activity(rows)}
    assert by_customer(build(tables)).loc["A", "booking_cancelled_90d"] == 3


# --- RFM scores and value tiers (domain.md section 3) -------------------------------------------


@pytest.mark.parametrize(
    ("days", "score"),
    [
        (0.5, 5),
        (30, 5),  # <= 1 month -> 5
        (30 + 1 / 86400, 4),  # one second more
        (90, 4),
        (90 + 1 / 86400, 3),
        (180, 3),
        (180 + 1 / 86400, 2),
        (365, 2),
        (365 + 1 / 86400, 1),
        (700, 1),
    ],
)
def test_recency_score_boundaries(days, score):
    tables = {
        "customers": customers(["A"], signup="2020-01-01"),
        "transactions": transactions([("A", days_before(days), 10)]),
    }
    assert by_customer(build(tables)).loc["A", "r_score"] == score


def test_frequency_score_boundaries():
    # purchases in the last 365 days: F5 has 5, F4 4, F3 3, F2 2, F1 1, F0 0 (one at -400d)
    # scores: >= 4 -> 5; 3 -> 4; 2 -> 3; 1 -> 2; < 1 -> 1
    counts = {"F5": 5, "F4": 4, "F3": 3, "F2": 2, "F1": 1}
    rows = [(cid, days_before(10 + 50 * i), 10) for cid, n in counts.items() for i in range(n)]
    rows += [("F0", days_before(400), 10), ("F1", days_before(366), 10)]
    ids = [*counts, "F0"]
    tables = {"customers": customers(ids), "transactions": transactions(rows)}
    f = by_customer(build(tables))
    assert f["frequency_per_year"].to_dict() == {
        "F5": 5.0,
        "F4": 4.0,
        "F3": 3.0,
        "F2": 2.0,
        "F1": 1.0,
        "F0": 0.0,
    }
    assert f["f_score"].to_dict() == {"F5": 5, "F4": 5, "F3": 4, "F2": 3, "F1": 2, "F0": 1}


def test_monetary_score_boundaries():
    # yearly spend (one purchase at -10d each) against 50k / 30k / 10k / 5k
    spend = {
        "M50000": (50000.0, 5),
        "M49999": (49999.99, 4),
        "M30000": (30000.0, 4),
        "M29999": (29999.99, 3),
        "M10000": (10000.0, 3),
        "M9999": (9999.99, 2),
        "M5000": (5000.0, 2),
        "M4999": (4999.99, 1),
        "M0": (0.0, 1),
    }
    rows = [(cid, days_before(10), amount) for cid, (amount, _) in spend.items()]
    tables = {"customers": customers(list(spend)), "transactions": transactions(rows)}
    f = by_customer(build(tables))
    assert f["m_score"].to_dict() == {cid: s for cid, (_, s) in spend.items()}


def test_value_tiers_at_13_10_7():
    # tier from the RFM sum: >= 13 platinum, >= 10 gold, >= 7 silver, else regular
    #   P15: 4 purchases in the year (F5), last at -10d (R5), 60000 (M5)   -> 15 platinum
    #   P13: 4 purchases (F5), last -10d (R5), 12000 (M3)                  -> 13 platinum
    #   G12: 3 purchases (F4), last -10d (R5), 12000 (M3)                  -> 12 gold
    #   G10: 2 purchases (F3), last -10d (R5), 6000 (M2)                   -> 10 gold
    #   S9 : 1 purchase (F2) at -10d (R5), 6000 (M2)                       ->  9 silver
    #   S7 : 1 purchase (F2) at -60d (R4), 1000 (M1)                       ->  7 silver
    #   R6 : 1 purchase (F2) at -120d (R3), 1000 (M1)                      ->  6 regular
    #   R3 : 1 purchase at -400d: R1, F1, M1                               ->  3 regular
    def spread(cid, n, total, last=10):
        return [(cid, days_before(last + 20 * i), total / n) for i in range(n)]

    rows = (
        spread("P15", 4, 60000)
        + spread("P13", 4, 12000)
        + spread("G12", 3, 12000)
        + spread("G10", 2, 6000)
        + spread("S9", 1, 6000)
        + spread("S7", 1, 1000, last=60)
        + spread("R6", 1, 1000, last=120)
        + spread("R3", 1, 1000, last=400)
    )
    expected = {
        "P15": (5, 5, 5, 15, "platinum"),
        "P13": (5, 5, 3, 13, "platinum"),
        "G12": (5, 4, 3, 12, "gold"),
        "G10": (5, 3, 2, 10, "gold"),
        "S9": (5, 2, 2, 9, "silver"),
        "S7": (4, 2, 1, 7, "silver"),
        "R6": (3, 2, 1, 6, "regular"),
        "R3": (1, 1, 1, 3, "regular"),
    }
    tables = {"customers": customers(list(expected)), "transactions": transactions(rows)}
    f = by_customer(build(tables))
    got = {
        cid: tuple(f.loc[cid, ["r_score", "f_score", "m_score", "rfm_sum", "value_tier"]])
        for cid in expected
    }
    assert got == expected


# --- care layers (domain.md section 3) -----------------------------------------------------------


def test_care_layers_core_active_dormant():
    # interactions per month = (own activity events in 365d + purchases in 365d) / 12
    # CORE : 4 purchases totalling 6000 (>= 5000) + 20 logins -> 24 / 12 = 2 per month -> core
    # ACT  : 2 purchases totalling 2000 + 10 logins -> 12 / 12 = 1 per month -> active
    # HALF : 6000 spend but 4 purchases + 14 logins -> 1.5 per month: not core, but active
    # DORM : 20000 spend, 30 logins, but nothing in the last 90 days (last purchase and last
    #        login exactly -90d) -> dormant (no interaction for >= 90 days wins over spend)
    # AWAKE: the same as DORM one day later (-89d) -> core
    # outreach_sent (the business's own action) is not an interaction
    def purchases(cid, n, total, first=5):
        return [(cid, days_before(first + 10 * i), total / n) for i in range(n)]

    def logins(cid, n, first=5):
        return [(cid, days_before(first + 5 * i), "login") for i in range(n)]

    tx = (
        purchases("CORE", 4, 6000)
        + purchases("ACT", 2, 2000)
        + purchases("HALF", 4, 6000)
        + purchases("DORM", 10, 20000, first=90)
        + purchases("AWAKE", 10, 20000, first=89)
    )
    act = (
        logins("CORE", 20)
        + logins("ACT", 10)
        + logins("HALF", 14)
        + logins("DORM", 30, first=90)
        + logins("AWAKE", 30, first=89)
        + [("ACT", days_before(d), "outreach_sent") for d in range(1, 40)]
    )
    ids = ["CORE", "ACT", "HALF", "DORM", "AWAKE"]
    tables = {
        "customers": customers(ids),
        "transactions": transactions(tx),
        "activity": activity(act),
    }
    f = by_customer(build(tables))
    assert f["care_layer"].to_dict() == {
        "CORE": "core",
        "ACT": "active",
        "HALF": "active",
        "DORM": "dormant",
        "AWAKE": "core",
    }


def test_no_inf_in_behaviour_ratios():
    # zero baselines give missing values, never infinities
    tables = {
        "customers": customers(["A"]),
        "transactions": transactions([("A", days_before(1), 0.0)]),
        "activity": activity([("A", days_before(1), "login")]),
    }
    row = by_customer(build(tables)).loc["A"]
    for c in ("spend_90d_vs_baseline", "activity_30d_vs_baseline", "gap_ratio", "mean_gap_days"):
        assert pd.isna(row[c]) or math.isfinite(row[c])
