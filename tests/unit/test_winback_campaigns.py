"""The win-back evaluation on a constructed log whose answer is known: who came back within the
window, each leaver's value tier before leaving, rates, uplift, value won back, ROI, targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnlight.models.campaigns import ALL
from churnlight.models.winback_campaigns import (
    COLUMNS,
    EVALUATED,
    NO_CONTACTS,
    NOT_OBSERVED,
    POOLED,
    evaluate_winback,
    leaver_snapshot,
    returned_after,
)

TARGETS = {"platinum": 0.7, "gold": 0.5, "silver": 0.3}
END = pd.Timestamp("2026-01-01")
# campaign -> tier -> (treated, treated back, control, control back)
PLAN = {
    "2025-06-winback": {"platinum": (40, 24, 30, 6), "gold": (60, 24, 40, 8)},
    "2025-07-winback": {"platinum": (40, 28, 30, 3), "gold": (60, 30, 40, 4)},
}
COST = {"platinum": 300.0, "gold": 100.0}
VALUE = {"platinum": 40000.0, "gold": 20000.0}


def _world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    """Contacts, own events, snapshots and left dates for PLAN; each leaver left 5 days before
    its campaign; a returning one is back 20 days after the contact, the others only after
    the window (day 120), so the window decides."""
    contacts, events, snaps, left = [], [], [], {}
    k = 0
    for cid, tiers in PLAN.items():
        ts = pd.Timestamp(cid[:7] + "-01 10:00")
        for tier, (nt, kt, nc, kc) in tiers.items():
            for group, n, back in (("treatment", nt, kt), ("control", nc, kc)):
                for i in range(n):
                    cust = f"C{k:05d}"
                    k += 1
                    contacts.append(
                        {
                            "customer_id": cust,
                            "ts": ts,
                            "campaign_id": cid,
                            "kind": "winback",
                            "group": group,
                            "cost": COST[tier] if group == "treatment" else 0.0,
                        }
                    )
                    days = 20 if i < back else 120
                    events += [
                        {"customer_id": cust, "ts": ts - pd.Timedelta(days=8)},  # before leaving
                        {"customer_id": cust, "ts": ts + pd.Timedelta(days=days)},
                    ]
                    left[cust] = (ts - pd.Timedelta(days=5)).normalize()
                    # snapshots: the month before leaving holds the tier; a later one (after
                    # leaving) says regular and must not be used
                    for cutoff, t in ((ts - pd.DateOffset(months=1), tier), (ts, "regular")):
                        snaps.append(
                            {
                                "customer_id": cust,
                                "cutoff": cutoff.normalize(),
                                "value": VALUE[tier],
                                "value_tier": t,
                            }
                        )
    return (
        pd.DataFrame(contacts),
        pd.DataFrame(events),
        pd.DataFrame(snaps),
        pd.Series(left),
    )


def _evaluate(**changes):
    contacts, events, snaps, left = _world()
    args = {
        "data_end": END,
        "window_days": 90,
        "bootstrap": 400,
        "confidence": 0.9,
        "seed": 1,
        "targets": TARGETS,
        "roi_target": 5.0,
        "min_group": 20,
        "left_date": left,
    }
    return evaluate_winback(contacts, events, snaps, **{**args, **changes})


def _cell(table: pd.DataFrame, campaign: str, tier: str) -> pd.Series:
    return table[(table["campaign_id"] == campaign) & (table["value_tier"] == tier)].iloc[0]


def test_rates_uplift_value_and_roi_are_the_known_answer():
    table, summary = _evaluate()
    assert list(table.columns) == COLUMNS
    assert summary["status"] == EVALUATED and summary["campaigns_evaluated"] == 2
    assert (table["kind"] == "winback").all() and (table["risk_tier"] == ALL).all()
    june = _cell(table, "2025-06-winback", "platinum")
    assert june["n_treatment"] == 40 and june["n_control"] == 30
    assert june["return_rate_treatment"] == pytest.approx(24 / 40)
    assert june["return_rate_control"] == pytest.approx(6 / 30)
    assert june["uplift"] == pytest.approx(0.6 - 0.2)
    assert june["customers_saved"] == pytest.approx(0.4 * 40)
    assert june["value_saved"] == pytest.approx(0.4 * 40 * 40000)
    assert june["cost"] == pytest.approx(40 * 300)
    assert june["roi"] == pytest.approx(0.4 * 40 * 40000 / (40 * 300))
    assert june["target_rate"] == 0.7 and june["meets_target"] is False
    assert june["uplift_low"] < june["uplift"] < june["uplift_high"]
    lo, hi = june["return_rate_treatment_low"], june["return_rate_treatment_high"]
    assert lo < 0.6 < hi
    # pooled: treated-weighted control rate per campaign (equal treated counts: the mean)
    pooled = _cell(table, POOLED, "platinum")
    assert pooled["return_rate_treatment"] == pytest.approx(52 / 80)
    assert pooled["return_rate_control"] == pytest.approx((6 / 30 + 3 / 30) / 2)
    overall = _cell(table, POOLED, ALL)
    assert overall["n_treatment"] == 200 and overall["n_control"] == 140
    assert overall["return_rate_treatment"] == pytest.approx(106 / 200)
    assert np.isnan(overall["target_rate"]) and overall["roi_target"] == 5.0
    gold = _cell(table, POOLED, "gold")
    assert gold["return_rate_treatment"] == pytest.approx(54 / 120)
    assert gold["meets_target"] is False
    assert summary["pooled"]["tiers"]["gold"]["target_rate"] == 0.5
    assert summary["latest"]["campaign_id"] == "2025-07-winback"


def test_same_seed_same_intervals():
    a, _ = _evaluate()
    b, _ = _evaluate()
    pd.testing.assert_frame_equal(a, b)
    c, _ = _evaluate(seed=2)
    assert not c["uplift_low"].equals(a["uplift_low"])


def test_the_tier_is_the_last_snapshot_before_leaving():
    contacts, _, snaps, left = _world()
    got = leaver_snapshot(contacts, snaps, left)
    assert set(got["value_tier"]) == {"platinum", "gold"}  # never the later "regular" row
    without_left = leaver_snapshot(contacts, snaps, None)  # the contact's ts: the later row
    assert set(without_left["value_tier"]) == {"regular"}


def test_a_return_is_an_own_event_strictly_after_the_contact_within_the_window():
    ts = pd.Timestamp("2025-06-01")
    contacts = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "ts": [ts] * 4})
    events = pd.DataFrame(
        {
            "customer_id": ["a", "b", "b", "c", "d"],
            "ts": [
                ts + pd.Timedelta(days=90),  # on the window's last instant: back
                ts,  # at the contact: not after it
                ts + pd.Timedelta(days=91),  # too late
                ts - pd.Timedelta(days=3),  # before
                ts + pd.Timedelta(seconds=1),
            ],
        }
    )
    got = returned_after(contacts, events, 90)
    assert got["returned"].tolist() == [True, False, False, True]


def test_truth_is_set_beside():
    contacts, _, _, _ = _world()
    truth = contacts[["customer_id", "campaign_id"]].assign(
        p_return_control=0.1, p_return_offer=0.45
    )
    table, summary = _evaluate(truth=truth)
    row = _cell(table, POOLED, ALL)
    assert row["true_uplift"] == pytest.approx(0.35)
    assert row["true_return_rate_treatment"] == pytest.approx(0.45)
    assert row["true_return_rate_control"] == pytest.approx(0.1)
    assert row["covers_truth"] in (True, False)
    assert summary["truth"]["available"] is True
    plain, _ = _evaluate()
    assert plain["true_uplift"].isna().all() and plain["covers_truth"].isna().all()


def test_unobserved_campaigns_are_skipped_with_a_reason():
    _table, summary = _evaluate(data_end=pd.Timestamp("2025-09-15"))  # July's window: open
    assert summary["campaigns_evaluated"] == 1
    assert "not fully observed" in summary["skipped"]["2025-07-winback"]
    _, none = _evaluate(data_end=pd.Timestamp("2025-08-01"))
    assert none["status"] == NOT_OBSERVED and none["campaigns_evaluated"] == 0


def test_small_groups_get_no_interval():
    table, _ = _evaluate(min_group=35)  # 30 held out per platinum campaign
    june = _cell(table, "2025-06-winback", "platinum")
    assert not np.isnan(june["uplift"]) and np.isnan(june["uplift_low"])
    assert "no interval" in june["note"]


def test_without_winback_contacts_it_says_what_to_log():
    contacts, events, snaps, _left = _world()
    retention = contacts.assign(kind="retention")
    table, summary = evaluate_winback(
        retention,
        events,
        snaps,
        data_end=END,
        window_days=90,
        bootstrap=100,
        confidence=0.9,
        seed=0,
        targets=TARGETS,
        roi_target=5.0,
    )
    assert table.empty and summary["status"] == NO_CONTACTS
    assert 'kind "winback"' in summary["message"]


def test_returns_seen_counts_customers_with_an_own_event_after_their_cancel_day():
    from churnlight.models.winback_inputs import returns_seen

    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "cancel_date": pd.to_datetime(["2026-01-10", "2026-01-10", None, "2026-02-01"]),
        }
    )
    events = pd.DataFrame(
        {
            # a: back the day after; b: only on its cancel day (not back); c: never left;
            # d: twice after (counted once)
            "customer_id": ["a", "b", "b", "c", "d", "d"],
            "ts": pd.to_datetime(
                [
                    "2026-01-11 00:00",
                    "2026-01-10 23:59",
                    "2026-01-09 12:00",
                    "2026-03-01 00:00",
                    "2026-02-03 00:00",
                    "2026-02-09 00:00",
                ]
            ).astype("datetime64[ns]"),
        }
    )
    assert returns_seen(customers, events) == 2
    assert returns_seen(customers, events.iloc[0:0]) == 0
    assert returns_seen(customers.drop(columns="cancel_date"), events) is None


def test_the_campaigns_stage_reads_own_events_only(tmp_path):
    # a company's outreach to a leaver is not the leaver coming back (the winback stage's rule)
    from churnlight.pipelines.events import read_own_events

    pd.DataFrame(
        {
            "customer_id": ["x", "x", "y"],
            "ts": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
            "event_type": ["outreach_sent", "login", "service_due"],
            "channel": ["email", None, None],
        }
    ).to_parquet(tmp_path / "activity.parquet")
    pd.DataFrame(
        {"customer_id": ["y"], "ts": pd.to_datetime(["2026-01-05"]), "amount": [9.0]}
    ).to_parquet(tmp_path / "transactions.parquet")
    got = read_own_events(tmp_path).sort_values("ts", ignore_index=True)
    # the in-memory definition gives the same table
    from churnlight.models.winback import own_events

    tables = [pd.read_parquet(tmp_path / f"{n}.parquet") for n in ("transactions", "activity")]
    want = own_events(*tables).sort_values("ts", ignore_index=True)
    pd.testing.assert_frame_equal(got, want)
    assert list(got.columns) == ["customer_id", "ts"]
    assert got["customer_id"].tolist() == ["x", "y"]
    assert got["ts"].tolist() == [pd.Timestamp("2026-01-02"), pd.Timestamp("2026-01-05")]
    (tmp_path / "activity.parquet").unlink()
    assert read_own_events(tmp_path)["customer_id"].tolist() == ["y"]
