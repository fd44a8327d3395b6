"""Labels: churn within `label_window_days` (90) after the cutoff, only when that window is
fully observed (cutoff + 90 days <= data end, the day after as_of); rows exist only for
customers active at the cutoff.
"""

from __future__ import annotations

import pandas as pd
import pytest

from .helpers import (
    CFG,
    CUTOFF,
    DATA_END,
    activity,
    aggregates,
    build,
    by_customer,
    config,
    customers,
    days_before,
    transactions,
)

LOGINS = [("L", days_before(d), "login") for d in (10, 40)]


def labels(feats: pd.DataFrame, cutoff: pd.Timestamp = CUTOFF) -> dict:
    return {
        k: (None if pd.isna(v) else int(v)) for k, v in by_customer(feats, cutoff)["label"].items()
    }


def test_params_label_window_and_data_end():
    assert (CFG.label_window_days, CFG.churn_definition) == (90, "cancellation")
    assert str(DATA_END.date()) == "2026-07-01"


def test_cancellation_label():
    # window of CUTOFF 2026-01-01: [2026-01-01, 2026-04-01) (2026-01-01 + 90 days = 2026-04-01)
    #   IN     cancels 2026-02-15                      -> 1
    #   EDGE   cancels exactly at the cutoff            -> still a customer at the cutoff, 1
    #   LAST   cancels 2026-03-31 23:59:59              -> 1
    #   AFTER  cancels 2026-04-01 (window end, excl.)   -> 0
    #   LATER  cancels 2026-05-01                       -> 0
    #   STAY   never cancels                            -> 0
    #   GONE   cancelled 2025-12-31, before the cutoff  -> no row
    cancel = {
        "IN": "2026-02-15",
        "EDGE": "2026-01-01",
        "LAST": "2026-03-31 23:59:59",
        "AFTER": "2026-04-01",
        "LATER": "2026-05-01",
        "STAY": None,
        "GONE": "2025-12-31",
    }
    tables = {"customers": customers(list(cancel), cancel=list(cancel.values()))}
    tables["activity"] = activity([(c, days_before(d), "login") for c in cancel for d in (10, 40)])
    assert labels(build(tables)) == {
        "IN": 1,
        "EDGE": 1,
        "LAST": 1,
        "AFTER": 0,
        "LATER": 0,
        "STAY": 0,
    }


def test_only_customers_signed_up_before_the_cutoff_get_a_row():
    # NEW signs up exactly at the cutoff -> no row; JUST signed up one second before -> a row
    cust = customers(["NEW", "JUST"], signup=[CUTOFF, CUTOFF - pd.Timedelta(seconds=1)])
    f = build({"customers": cust, "activity": activity(LOGINS)})
    assert list(by_customer(f).index) == ["JUST"]


@pytest.mark.parametrize(
    ("cutoff", "observed"),
    [
        ("2026-04-01", True),  # + 90 days = 2026-06-30 <= 2026-07-01
        ("2026-04-02", True),  # + 90 days = 2026-07-01: the last fully observed window
        ("2026-04-03", False),  # + 90 days = 2026-07-02 > data end
        ("2026-06-01", False),
    ],
)
def test_windows_not_fully_observed_get_no_label(cutoff, observed):
    cutoff = pd.Timestamp(cutoff)
    # C1 cancels inside every window here (2026-06-15), C2 never
    cust = customers(["C1", "C2"], cancel=["2026-06-15", None])
    f = build({"customers": cust, "activity": activity(LOGINS)}, cutoffs=[cutoff])
    assert f["label"].dtype == "Int8"
    got = labels(f, cutoff)
    assert got == ({"C1": 1, "C2": 0} if observed else {"C1": None, "C2": None})


def test_cancellation_needs_a_cancel_date_column():
    cust = customers(["A"]).drop(columns="cancel_date")
    with pytest.raises(ValueError, match="churn_definition=inactivity"):
        aggregates({"customers": cust, "activity": activity(LOGINS)})


# --- churn_definition: inactivity ----------------------------------------------------------------
# _spine_sql: a customer is active at the cutoff if they had an own event (a transaction, or an
# activity of type login, visit, booking, booking_cancelled, outreach_replied, service_done) in
# [cutoff - n days, cutoff); the label is 1 if they have no own event in [cutoff, cutoff + n days);
# it is set only when cutoff + n days <= data end. cancel_date plays no part.

INACTIVE = config(churn_definition="inactivity", inactivity_days=90)


def test_inactivity_label_and_activity_at_the_cutoff():
    #  BACK    login -10d, login +30d                       -> active, label 0
    #  QUIET   login -10d, nothing after                    -> label 1
    #  EDGE    login -10d, next login exactly +90d           -> outside [cutoff, cutoff+90d): 1
    #  AT      login -10d, login exactly at the cutoff       -> inside the label window: 0
    #  BUYER   purchase -5d and purchase +5d                 -> transactions count: 0
    #  SENT    login -10d; after: only outreach_sent/service_due (the business's own actions): 1
    #  OLD     last own event -91d                           -> not active: no row
    #  OLD90   last own event exactly -90d                   -> active (window edge), 1
    #  PASSIVE only outreach_sent before the cutoff          -> not active: no row
    #  CANCEL  cancel_date inside the window, but logs in +20d -> 0 (cancel_date ignored)
    act = [
        ("BACK", days_before(10), "login"),
        ("BACK", days_before(-30), "login"),
        ("QUIET", days_before(10), "login"),
        ("EDGE", days_before(10), "login"),
        ("EDGE", days_before(-90), "login"),
        ("AT", days_before(10), "login"),
        ("AT", CUTOFF, "login"),
        ("SENT", days_before(10), "visit"),
        ("SENT", days_before(-10), "outreach_sent"),
        ("SENT", days_before(-20), "service_due"),
        ("OLD", days_before(91), "booking"),
        ("OLD90", days_before(90), "booking"),
        ("PASSIVE", days_before(5), "outreach_sent"),
        ("CANCEL", days_before(10), "login"),
        ("CANCEL", days_before(-20), "login"),
    ]
    tx = [("BUYER", days_before(5), 10.0), ("BUYER", days_before(-5), 10.0)]
    ids = ["BACK", "QUIET", "EDGE", "AT", "BUYER", "SENT", "OLD", "OLD90", "PASSIVE", "CANCEL"]
    cancel = ["2026-02-01" if c == "CANCEL" else None for c in ids]
    tables = {
        "customers": customers(ids, cancel=cancel),
        "activity": activity(act),
        "transactions": transactions(tx),
    }
    assert labels(build(tables, cfg=INACTIVE)) == {
        "AT": 0,
        "BACK": 0,
        "BUYER": 0,
        "CANCEL": 0,
        "EDGE": 1,
        "OLD90": 1,
        "QUIET": 1,
        "SENT": 1,
    }


def test_inactivity_works_without_cancel_dates_and_waits_for_its_own_horizon():
    # no cancel_date column at all; with inactivity_days = 120 the window of 2026-04-01 ends
    # 2026-07-30 > data end -> no label, while 2026-03-01 + 120 days = 2026-06-29 is observed
    cfg = config(churn_definition="inactivity", inactivity_days=120)
    cust = customers(["A"]).drop(columns="cancel_date")
    act = activity([("A", pd.Timestamp("2026-02-20"), "login")])
    cutoffs = [pd.Timestamp("2026-03-01"), pd.Timestamp("2026-04-01")]
    f = build({"customers": cust, "activity": act}, cutoffs=cutoffs, cfg=cfg)
    assert labels(f, cutoffs[0]) == {"A": 1}
    assert labels(f, cutoffs[1]) == {"A": None}


@pytest.mark.parametrize(
    ("definition", "kept"),
    [
        # cancellation: 90-day window; data end 2026-04-01 -> cutoffs up to 2026-01-01 labelled
        ("cancellation", ["2025-11-01", "2025-12-01", "2026-01-01", "2026-04-01"]),
        # inactivity: its own 59-day horizon -> 2026-02-01 + 59 days = 2026-04-01 still fits
        ("inactivity", ["2025-11-01", "2025-12-01", "2026-01-01", "2026-02-01", "2026-04-01"]),
    ],
)
def test_the_stage_skips_cutoffs_that_get_neither_a_label_nor_scored(definition, kept):
    from churnlight.features.config import make_cutoffs, needed_cutoffs

    data_end = pd.Timestamp("2026-04-01")
    cutoffs = make_cutoffs(data_end - pd.Timedelta(days=1), "2025-11-01", None, 1)
    assert [str(c.date()) for c in cutoffs][-2:] == ["2026-03-01", "2026-04-01"]
    cfg = config(churn_definition=definition, label_window_days=90, inactivity_days=59)
    got = needed_cutoffs(cutoffs, cfg, data_end)
    assert [str(c.date()) for c in got] == kept
    assert needed_cutoffs([], cfg, data_end) == []
