"""The three-colour warning (domain.md section 2) on hand-made feature rows.

green: no family triggered; yellow: one family; red: two or more families, or spend down 70%+
(`spend_90d_vs_baseline <= 1 - 0.7`) on its own. A missing input never fires.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnlight.features.rules import apply_rules

from .helpers import SIGNALS, build, by_customer, customers, days_before, transactions

# a healthy row: every input present, no signal fires
CALM = {
    "activity_30d_vs_baseline": 1.0,
    "months_without_purchase": 0.0,
    "gap_ratio": 1.0,
    "reply_rate_90d": 0.8,
    "reply_rate_before": 0.8,
    "booking_cancelled_90d": 0,
    "service_overdue_days": 0.0,
    "vague_replies_90d": 0,
    "csat_last": 5.0,
    "nps_last": 9.0,
    "nps_change": 0.0,
    "complaints_open": 0,
    "silent_days_after_complaint": 0.0,
    "competitor_mentions_90d": 0,
    "industry_index_change_6m": 0.02,
    "competitor_launch_90d": 0,
    "policy_shock_180d": 0,
    "spend_90d_vs_baseline": 1.0,
}

# (family, changes that fire exactly at the threshold, changes just short of it)
SIGNAL_CASES = {
    "activity_drop": (
        "behaviour",
        {"activity_30d_vs_baseline": 0.5},
        {"activity_30d_vs_baseline": 0.51},
    ),
    "no_purchase": (
        "behaviour",
        {"months_without_purchase": 2.0},
        {"months_without_purchase": 1.0},
    ),
    "gap": ("behaviour", {"gap_ratio": 2.01}, {"gap_ratio": 2.0}),
    "reply_drop": (
        "behaviour",
        {"reply_rate_90d": 0.4, "reply_rate_before": 0.8},
        {"reply_rate_90d": 0.41, "reply_rate_before": 0.8},
    ),
    "cancellations": ("behaviour", {"booking_cancelled_90d": 2}, {"booking_cancelled_90d": 1}),
    "service_overdue": (
        "behaviour",
        {"service_overdue_days": 90.0},
        {"service_overdue_days": 89.9},
    ),
    "vague": ("attitude", {"vague_replies_90d": 1}, {"vague_replies_90d": 0}),
    "csat_low": ("attitude", {"csat_last": 3.0}, {"csat_last": 4.0}),
    "nps_detractor": ("attitude", {"nps_last": 6.0}, {"nps_last": 7.0}),
    "nps_drop": ("attitude", {"nps_change": -2.0}, {"nps_change": -1.0}),
    "complaint_open": ("attitude", {"complaints_open": 1}, {"complaints_open": 0}),
    "silence": (
        "attitude",
        {"silent_days_after_complaint": 0.5},
        {"silent_days_after_complaint": 0.0},
    ),
    "competitor": ("attitude", {"competitor_mentions_90d": 1}, {"competitor_mentions_90d": 0}),
    "industry_decline": (
        "external",
        {"industry_index_change_6m": -0.05},
        {"industry_index_change_6m": -0.049},
    ),
    "competitor_launch": ("external", {"competitor_launch_90d": 1}, {"competitor_launch_90d": 0}),
    "policy": ("external", {"policy_shock_180d": 1}, {"policy_shock_180d": 0}),
}


def frame(*changes: dict, base: dict | None = None) -> pd.DataFrame:
    return pd.DataFrame([{**(CALM if base is None else base), **c} for c in changes])


def three_colour(df: pd.DataFrame, signals: dict) -> pd.DataFrame:
    """The rule's outputs for feature rows, through the SQL the stage runs."""
    return apply_rules(df, signals)[["rule_colour", "rule_families", "rule_score"]]


def rule_signals(df: pd.DataFrame, signals: dict) -> pd.DataFrame:
    """The signals counted per family, and spend drop, through the SQL the stage runs."""
    return apply_rules(df, signals).filter(regex="^rule_(.*_signals|spend_drop)$")


def colours(df: pd.DataFrame) -> list[str]:
    return three_colour(df, SIGNALS)["rule_colour"].tolist()


def test_params_thresholds_are_the_domain_defaults():
    s = SIGNALS
    assert (s["activity_drop"], s["spend_drop"], s["months_without_purchase"]) == (0.5, 0.7, 2)
    assert (s["gap_ratio"], s["service_overdue_days"], s["nps_detractor_max"]) == (2.0, 90, 6)


def test_green_without_any_signal():
    out = three_colour(frame({}), SIGNALS)
    assert out["rule_colour"].tolist() == ["green"]
    assert out["rule_families"].tolist() == [0]
    assert out["rule_score"].tolist() == [0.0]


@pytest.mark.parametrize("name", list(SIGNAL_CASES))
def test_each_signal_fires_at_its_threshold_in_its_own_family(name):
    family, fires, short = SIGNAL_CASES[name]
    df = frame(fires, short)
    sig = rule_signals(df, SIGNALS)
    assert sig[f"rule_{family}_signals"].tolist() == [1, 0]
    others = [f for f in ("behaviour", "attitude", "external") if f != family]
    assert all(sig[f"rule_{f}_signals"].tolist() == [0, 0] for f in others)
    # one family -> yellow; just short of the threshold -> green
    assert colours(df) == ["yellow", "green"]


@pytest.mark.parametrize("name", list(SIGNAL_CASES))
def test_each_signal_is_one_named_step(name):
    # the NPS detractor score and the NPS drop are two ways of one signal, nps_low
    signal = "nps_low" if name.startswith("nps_") else name
    _, fires, short = SIGNAL_CASES[name]
    out = apply_rules(frame(fires, short), SIGNALS)
    assert out[f"signal_{signal}"].tolist() == [True, False]
    others = [c for c in out.columns if c.startswith("signal_") and c != f"signal_{signal}"]
    assert not out[others].to_numpy().any()


@pytest.mark.parametrize(
    ("a", "b"),
    [("activity_drop", "complaint_open"), ("vague", "policy"), ("gap", "competitor_launch")],
)
def test_red_with_two_families(a, b):
    out = three_colour(frame({**SIGNAL_CASES[a][1], **SIGNAL_CASES[b][1]}), SIGNALS)
    assert out["rule_colour"].tolist() == ["red"]
    assert out["rule_families"].tolist() == [2]


def test_two_signals_of_one_family_stay_yellow_and_three_families_are_red():
    two_behaviour = {**SIGNAL_CASES["gap"][1], **SIGNAL_CASES["cancellations"][1]}
    all_three = {
        **SIGNAL_CASES["gap"][1],
        **SIGNAL_CASES["vague"][1],
        **SIGNAL_CASES["policy"][1],
    }
    out = three_colour(frame(two_behaviour, all_three), SIGNALS)
    assert out["rule_colour"].tolist() == ["yellow", "red"]
    assert out["rule_families"].tolist() == [1, 3]


def test_red_on_a_70_percent_spend_drop_alone():
    # spend now at 30% of the baseline (down 70%) -> red with no family triggered;
    # at 31% (down 69%) -> green
    out = three_colour(
        frame({"spend_90d_vs_baseline": 0.3}, {"spend_90d_vs_baseline": 0.31}), SIGNALS
    )
    assert out["rule_colour"].tolist() == ["red", "green"]
    assert out["rule_families"].tolist() == [0, 0]


def test_spend_drop_from_events_is_red():
    # 300 in the last 90 days against (3300 - 300) / 3 = 1000 per earlier quarter: ratio 0.3.
    # Purchases at -30d and -200d: recency 30 (months_without_purchase 0), mean gap 170,
    # gap ratio 30/170: no behaviour signal, yet the core metric is down 70% -> red
    tables = {
        "customers": customers(["A"]),
        "transactions": transactions([("A", days_before(30), 300), ("A", days_before(200), 3000)]),
    }
    row = by_customer(build(tables)).loc["A"]
    assert row["spend_90d_vs_baseline"] == pytest.approx(0.3)
    assert (row["rule_colour"], row["rule_families"]) == ("red", 0)


def test_missing_inputs_never_fire():
    # every input missing (NaN, pandas NA in nullable columns) -> green, no signal
    nan_row = {k: np.nan for k in CALM}
    df = frame({}, base=nan_row)
    for c in ("reply_rate_90d", "reply_rate_before", "gap_ratio"):
        df[c] = pd.array([pd.NA], dtype="Float64")
    out = three_colour(df, SIGNALS)
    assert out["rule_colour"].tolist() == ["green"]
    sig = rule_signals(df, SIGNALS)
    assert sig.filter(like="_signals").sum(axis=None) == 0
    assert not sig["rule_spend_drop"].any()


def test_half_missing_pairs_never_fire():
    # a reply rate now of 0 with no reply rate before cannot be a drop; a spend ratio that is
    # missing cannot be a 70% drop even next to other signals' inputs
    df = frame(
        {"reply_rate_90d": 0.0, "reply_rate_before": np.nan, "spend_90d_vs_baseline": np.nan}
    )
    assert colours(df) == ["green"]


def test_absent_columns_never_fire():
    # a frame with none of the inputs (e.g. every event table missing) is green
    out = three_colour(pd.DataFrame({"customer_id": ["A", "B"]}), SIGNALS)
    assert out["rule_colour"].tolist() == ["green", "green"]
    assert out["rule_score"].tolist() == [0.0, 0.0]


def test_score_orders_colours_then_number_of_signals():
    # green 0.0 < yellow with 1 signal 1.1 < yellow with 2 signals 1.2 < red spend-drop 2.0
    # < red with 2 families 2.2
    df = frame(
        {},
        SIGNAL_CASES["gap"][1],
        {**SIGNAL_CASES["gap"][1], **SIGNAL_CASES["cancellations"][1]},
        {"spend_90d_vs_baseline": 0.2},
        {**SIGNAL_CASES["gap"][1], **SIGNAL_CASES["vague"][1]},
    )
    out = three_colour(df, SIGNALS)
    assert out["rule_colour"].tolist() == ["green", "yellow", "yellow", "red", "red"]
    assert out["rule_score"].tolist() == pytest.approx([0.0, 1.1, 1.2, 2.0, 2.2])
