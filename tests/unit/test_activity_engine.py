"""The fast activity SQL equals its plain definition, as a property over random event tables.

`activity_reference_sql` states every output of f_activity as one filter over the events of a
(customer, cutoff); the stage runs `activity_sql` (two steps, integer keys). Events are drawn
on and around the edges that matter: cutoffs, window starts (cutoff - w days, one microsecond
either side), month starts and leap days; cutoffs are month starts or anywhere in a month, and
windows are random (7, 45, 400 days ...), so the lookback is not always 365 days.
"""

from __future__ import annotations

import dataclasses

import duckdb
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnlight.features.activity import activity_reference_sql, activity_sql
from churnlight.features.aggregates import aggregate_select, prepare

from .helpers import CFG, DATA_END, LEXICON, activity, customers, transactions

BOUNDED = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the project
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IDS = ["A", "B", "C"]
TYPES = ["login", "visit", "booking", "booking_cancelled", "outreach_sent", "outreach_replied"]
TYPES += ["service_due", "service_done", "webinar", None]  # an unknown type and a missing one
EDGES = [pd.Timestamp(d) for d in ("2024-02-29", "2024-03-01", "2025-01-01", "2025-03-01")]
US = pd.Timedelta(microseconds=1)

cutoffs_st = st.lists(
    st.one_of(
        st.sampled_from([pd.Timestamp(f"2025-{m:02d}-01") for m in range(1, 13)]),
        st.integers(0, 500 * 86400).map(
            lambda s: pd.Timestamp("2024-09-01") + pd.Timedelta(s, "s")
        ),
    ),
    min_size=1,
    max_size=4,
    unique=True,
)
windows_st = st.lists(
    st.sampled_from([1, 7, 30, 31, 45, 90, 180, 365, 366, 400]), min_size=1, max_size=4, unique=True
).map(lambda ws: tuple(sorted(ws)))


@st.composite
def events(draw, cutoffs: list[pd.Timestamp], windows: tuple[int, ...]):
    """(customer, ts, type) rows, most of them on an edge of a window, a cutoff or a month."""
    anchors = list(EDGES)
    for c in cutoffs:
        anchors += [c, *(c - pd.Timedelta(days=d) for d in (*windows, 30, 90, 120, 365))]
    when = st.one_of(
        st.builds(lambda a, j: a + j * US, st.sampled_from(anchors), st.sampled_from([-1, 0, 1])),
        st.integers(0, 800 * 86400).map(
            lambda s: pd.Timestamp("2023-10-01") + pd.Timedelta(s, "s")
        ),
    )
    row = st.tuples(st.sampled_from(IDS), when, st.sampled_from(TYPES))
    return draw(st.lists(row, max_size=60))


def _f_activity(rows, cutoffs: list[pd.Timestamp], windows: tuple[int, ...], fast: bool):
    cfg = dataclasses.replace(CFG, windows_days=windows)
    tables = {
        "customers": customers(IDS, signup="2023-01-01"),
        "activity": activity(rows),
        "transactions": transactions([]),
    }
    con = duckdb.connect()
    try:
        for name, df in tables.items():
            con.register(f"{name}_df", df)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_df")
        has_geo = prepare(con, set(tables), cutoffs, DATA_END, LEXICON)
        aggregate_select(con, cfg, has_geo)
        sql = activity_sql if fast else activity_reference_sql
        con.execute(sql(windows, cfg.lookback_days))
        return con.execute("""
            SELECT s.customer_id, s.cutoff, f.* EXCLUDE (sid)
            FROM f_activity f JOIN spine s USING (sid) ORDER BY s.cutoff, s.customer_id
        """).df()
    finally:
        con.close()


@BOUNDED
@given(data=st.data(), cutoffs=cutoffs_st, windows=windows_st)
def test_fast_activity_equals_the_definition(data, cutoffs, windows):
    rows = data.draw(events(cutoffs, windows))
    want = _f_activity(rows, cutoffs, windows, fast=False)
    got = _f_activity(rows, cutoffs, windows, fast=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_definition_counts_by_hand():
    # cutoff 2025-03-01: 30 days before is 2025-01-30; 365 days before is 2024-03-01 (2024 leap)
    cut = pd.Timestamp("2025-03-01")
    rows = [
        ("A", pd.Timestamp("2025-01-30"), "login"),  # in 30d (on its start)
        ("A", pd.Timestamp("2025-01-30") - US, "login"),  # in 90d, not 30d
        ("A", pd.Timestamp("2024-03-01"), "outreach_sent"),  # in 365d (on its start)
        ("A", pd.Timestamp("2024-02-29"), "login"),  # before the lookback: nowhere
        ("A", cut, "login"),  # at the cutoff: nowhere
        ("A", pd.Timestamp("2025-02-01"), "webinar"),  # other
        ("A", pd.Timestamp("2025-02-02"), None),  # no type: counted nowhere
    ]
    for fast in (False, True):
        row = _f_activity(rows, [cut], (30, 90, 365), fast).set_index("customer_id").loc["A"]
        assert (row["login_30d"], row["login_90d"], row["login_365d"]) == (1, 2, 2)
        assert (row["other_30d"], row["outreach_sent_365d"], row["sent_before"]) == (1, 1, 1)
        assert row["last_lvb"] == pd.Timestamp("2025-01-30")
