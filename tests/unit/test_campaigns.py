"""Campaign evaluation on hand-made and seeded contact logs with a known planted uplift."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churnlight.models.campaigns import (
    ALL,
    EVALUATED,
    NO_CAMPAIGNS,
    NO_CONTROL,
    NOT_OBSERVED,
    POOLED,
    evaluate_campaigns,
    success_metrics,
)
from churnlight.models.contacts import (
    CONTACT_COLUMNS,
    campaign_cutoffs,
    link_cutoffs,
    risk_tiers_by_cutoff,
)

CUTOFFS = pd.to_datetime(["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01"])
P_CONTROL, P_TREATED, P_OTHER = 0.30, 0.20, 0.10
TARGETS = {"early_identification_before": 0.35, "early_identification_target": 0.8, "roi_target": 5}


def _world(seed: int = 3, n: int = 6000, flagged: int = 3000, control: int = 1000) -> dict:
    """Snapshots at four monthly cutoffs (the last not yet labelled) and one campaign a month:
    `flagged` customers, `control` of them held out; contact cuts churn from 30% to 20%."""
    rng = np.random.default_rng(seed)
    snaps, contacts, truth = [], [], []
    for i, cutoff in enumerate(CUTOFFS):
        ids = np.array([f"C{j:05d}" for j in range(n)])
        risk = np.where(np.arange(n) < n // 2, "high", "medium")
        value_tier = np.where(np.arange(n) % 2 == 0, "gold", "regular")
        value = np.where(value_tier == "gold", 1000.0, 100.0)
        pick = rng.permutation(n // 2)[:flagged]  # flagged among the high-risk half
        group = np.full(n, "", dtype=object)
        group[pick] = "treatment"
        group[pick[:control]] = "control"
        p = np.select([group == "treatment", group == "control"], [P_TREATED, P_CONTROL], P_OTHER)
        label = (rng.random(n) < p).astype(float)
        if i == len(CUTOFFS) - 1:
            label[:] = np.nan  # the newest snapshot: outcome not known yet
        snaps.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "cutoff": cutoff,
                    "label": label,
                    "value": value,
                    "value_tier": value_tier,
                    "risk_tier": risk,
                }
            )
        )
        cid = f"{cutoff:%Y-%m}-retention"
        sel = group != ""
        contacts.append(
            pd.DataFrame(
                {
                    "customer_id": ids[sel],
                    "ts": cutoff + pd.Timedelta(days=1, hours=9),
                    "campaign_id": cid,
                    "kind": "retention",
                    "group": group[sel],
                    "action": np.where(group[sel] == "treatment", "call", ""),
                    "channel": "phone",
                    "owner": "cs",
                    "cost": np.where(group[sel] == "treatment", 10.0, 0.0),
                }
            )
        )
        truth.append(
            pd.DataFrame(
                {
                    "customer_id": ids[sel],
                    "campaign_id": cid,
                    "true_uplift": P_CONTROL - P_TREATED,
                    "p_churn_control": P_CONTROL,
                    "p_churn_treated": P_TREATED,
                }
            )
        )
    return {
        "snapshots": pd.concat(snaps, ignore_index=True),
        "contacts": pd.concat(contacts, ignore_index=True),
        "truth": pd.concat(truth, ignore_index=True),
    }


def _evaluate(contacts, snapshots, truth=None, **kw):
    args = {"step_months": 1, "bootstrap": 1000, "confidence": 0.95, "seed": 42} | kw
    return evaluate_campaigns(contacts, snapshots, truth=truth, **args)


def _get(table, campaign, risk=ALL, value=ALL) -> pd.Series:
    m = (
        (table["campaign_id"] == campaign)
        & (table["risk_tier"] == risk)
        & (table["value_tier"] == value)
    )
    assert m.sum() == 1, (campaign, risk, value)
    return table[m].iloc[0]


@pytest.fixture(scope="module")
def world() -> dict:
    return _world()


@pytest.fixture(scope="module")
def evaluated(world):
    return _evaluate(world["contacts"], world["snapshots"], world["truth"])


def test_planted_uplift_is_recovered_and_covered(evaluated):
    table, summary = evaluated.table, evaluated.summary
    assert summary["status"] == EVALUATED
    assert summary["campaigns_evaluated"] == 3  # the April campaign is not observed yet
    pooled = _get(table, POOLED)
    assert pooled["n_treatment"] == 3 * 2000 and pooled["n_control"] == 3 * 1000
    assert pooled["uplift"] == pytest.approx(P_CONTROL - P_TREATED, abs=0.03)
    assert pooled["uplift_low"] < 0.1 < pooled["uplift_high"]
    assert pooled["uplift_high"] - pooled["uplift_low"] < 0.07  # 6,000 vs 3,000: a tight interval
    assert pooled["true_uplift"] == pytest.approx(0.1)
    assert pooled["covers_truth"] is True or pooled["covers_truth"] == True  # noqa: E712
    for cid in ("2025-01-retention", "2025-02-retention", "2025-03-retention"):
        row = _get(table, cid)
        assert row["uplift_low"] < row["uplift"] < row["uplift_high"]
        assert row["churn_rate_treatment"] == pytest.approx(P_TREATED, abs=0.03)
        assert row["churn_rate_control"] == pytest.approx(P_CONTROL, abs=0.05)
    judged = summary["truth"]
    assert judged["available"] and judged["cells_judged"] >= 4 * 4
    assert judged["coverage"] >= 0.8  # 95% intervals: most cells cover the planted uplift


def test_saved_value_cost_and_roi_follow_the_uplift(evaluated):
    row = _get(evaluated.table, "2025-01-retention", "high", "gold")
    # every high-risk contact; gold customers are worth 1,000 and a treatment costs 10
    assert row["customers_saved"] == pytest.approx(row["uplift"] * row["n_treatment"])
    assert row["value_saved"] == pytest.approx(row["uplift"] * 1000 * row["n_treatment"])
    assert row["cost"] == pytest.approx(10 * row["n_treatment"])
    assert row["roi"] == pytest.approx(row["value_saved"] / row["cost"])


def test_the_same_seed_gives_the_same_interval(world, evaluated):
    again = _evaluate(world["contacts"], world["snapshots"], world["truth"])
    pd.testing.assert_frame_equal(again.table, evaluated.table)
    other = _evaluate(world["contacts"], world["snapshots"], world["truth"], seed=7)
    assert not np.allclose(other.table["uplift_low"], evaluated.table["uplift_low"])
    assert np.allclose(other.table["uplift"], evaluated.table["uplift"], equal_nan=True)


def test_every_tier_and_pair_is_a_row(evaluated):
    rows = evaluated.table[evaluated.table["campaign_id"] == POOLED]
    keys = set(zip(rows["risk_tier"], rows["value_tier"], strict=True))
    assert keys == {
        (ALL, ALL),
        ("high", ALL),
        (ALL, "gold"),
        (ALL, "regular"),
        ("high", "gold"),
        ("high", "regular"),
    }
    # contacts are all high risk, so the medium tier has no contact and no row


def test_unobserved_campaigns_are_skipped_with_a_reason(world):
    late = (
        world["contacts"]
        .query("campaign_id == '2025-01-retention'")
        .assign(campaign_id="2025-09-retention", ts=pd.Timestamp("2025-09-02"))
    )
    ev = _evaluate(pd.concat([world["contacts"], late]), world["snapshots"])
    assert set(ev.summary["skipped"]) == {"2025-04-retention", "2025-09-retention"}
    assert "not fully observed" in ev.summary["skipped"]["2025-09-retention"]
    assert "2025-09-retention" not in set(ev.table["campaign_id"])
    assert ev.summary["latest"]["campaign_id"] == "2025-03-retention"
    early = late.assign(campaign_id="2023-06-retention", ts=pd.Timestamp("2023-06-02"))
    ev = _evaluate(pd.concat([world["contacts"], early]), world["snapshots"])
    assert "before the first labelled snapshot" in ev.summary["skipped"]["2023-06-retention"]
    only_new = world["contacts"].query("campaign_id == '2025-04-retention'")
    none = _evaluate(only_new, world["snapshots"])
    assert none.summary["status"] == NOT_OBSERVED
    assert "2025-04-retention" in none.summary["message"]
    assert none.table.empty


def test_other_kinds_are_left_out(world):
    winback = (
        world["contacts"]
        .query("campaign_id == '2025-01-retention'")
        .assign(campaign_id="2025-01-winback", kind="winback")
    )
    ev = _evaluate(pd.concat([world["contacts"], winback]), world["snapshots"])
    assert "campaigns.kinds" in ev.summary["skipped"]["2025-01-winback"]
    assert "2025-01-winback" not in set(ev.table["campaign_id"])


def test_a_campaign_without_control_has_no_uplift_and_says_why(world):
    contacts = world["contacts"]
    no_control = contacts[
        ~((contacts["campaign_id"] == "2025-02-retention") & (contacts["group"] == "control"))
    ]
    ev = _evaluate(no_control, world["snapshots"])
    row = _get(ev.table, "2025-02-retention")
    assert math.isnan(row["uplift"]) and math.isnan(row["uplift_low"])
    assert math.isnan(row["value_saved"]) and math.isnan(row["roi"])
    assert row["note"] == NO_CONTROL
    assert row["early_identification_rate"] > 0  # the list's reach does not need a control
    pooled = _get(ev.table, POOLED)
    assert pooled["n_treatment"] == 2 * 2000  # the campaign without control is left out
    assert "1 campaign(s) without a control group left out" in pooled["note"]
    assert pooled["uplift"] == pytest.approx(0.1, abs=0.035)


def _hand_made() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ten customers at one cutoff, four of them churn; the list flags two churners (one in
    each group) and one stayer."""
    snaps = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(10)],
            "cutoff": pd.Timestamp("2025-01-01"),
            "label": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
            "value": 100.0,
            "value_tier": ["gold"] * 5 + ["regular"] * 5,
        }
    )
    contacts = pd.DataFrame(
        {
            "customer_id": ["c0", "c1", "c5"],
            "ts": pd.Timestamp("2025-01-02"),
            "campaign_id": "2025-01-retention",
            "kind": "retention",
            "group": ["treatment", "control", "treatment"],
            "action": ["call", "", "call"],
            "channel": "phone",
            "owner": "cs",
            "cost": [20.0, 0.0, 20.0],
        }
    )
    return contacts, snaps


def test_early_identification_rate_on_a_hand_made_case():
    contacts, snaps = _hand_made()
    ev = _evaluate(contacts, snaps, bootstrap=200)
    overall = _get(ev.table, "2025-01-retention")
    assert overall["churners"] == 4 and overall["churners_flagged"] == 2
    assert overall["early_identification_rate"] == 0.5
    assert overall["flagged_share"] == pytest.approx(0.3)
    gold = _get(ev.table, "2025-01-retention", ALL, "gold")  # c0..c4: churners c0..c3
    assert gold["early_identification_rate"] == 0.5
    regular = _get(ev.table, "2025-01-retention", ALL, "regular")  # no churner there
    assert regular["churners"] == 0 and math.isnan(regular["early_identification_rate"])
    # without a model score every contact is in the single risk tier "all"
    assert set(ev.table["risk_tier"]) == {ALL}
    # treatment: c0 churned, c5 stayed; control: c1 churned -> uplift 1 - 0.5
    assert overall["churn_rate_treatment"] == 0.5 and overall["churn_rate_control"] == 1.0
    assert overall["uplift"] == 0.5
    assert overall["cost"] == 40.0
    assert overall["value_saved"] == pytest.approx(0.5 * 200)
    assert ev.summary["latest"]["early_identification_rate"] == 0.5
    assert ev.summary["pooled"]["early_identification_rate"] == 0.5


def test_no_contacts_says_so_and_what_to_log():
    empty = pd.DataFrame(columns=list(CONTACT_COLUMNS))
    _, snaps = _hand_made()
    ev = _evaluate(empty, snaps)
    assert ev.summary["status"] == NO_CAMPAIGNS == "no campaigns logged yet"
    for column in ("customer_id", "ts", "campaign_id", "group", "control"):
        assert column in ev.summary["message"]
    assert ev.table.empty and list(ev.table.columns)[:2] == ["campaign_id", "cutoff"]
    assert ev.summary["latest"] is None and ev.summary["pooled"] is None
    success = success_metrics(ev.summary, None, TARGETS)
    assert success["early_identification"]["campaigns_pooled"] is None
    assert success["early_identification"]["target"] == 0.8


def test_a_customer_in_both_groups_is_an_error():
    contacts, snaps = _hand_made()
    both = pd.concat([contacts, contacts.iloc[[0]].assign(group="control")])
    with pytest.raises(ValueError, match="both treatment and control"):
        _evaluate(both, snaps)
    with pytest.raises(ValueError, match="column 'group'"):
        _evaluate(contacts.assign(group="held out"), snaps)
    with pytest.raises(ValueError, match="missing column"):
        _evaluate(contacts.drop(columns="group"), snaps)


def test_repeated_contacts_of_one_customer_count_once_with_their_costs():
    contacts, snaps = _hand_made()
    twice = pd.concat([contacts, contacts.iloc[[0]].assign(ts=pd.Timestamp("2025-01-03"))])
    row = _get(_evaluate(twice, snaps, bootstrap=200).table, "2025-01-retention")
    assert row["n_treatment"] == 2 and row["cost"] == 60.0


def test_contacts_link_to_the_cutoff_that_opens_their_month():
    cutoffs = pd.Series(pd.to_datetime(["2025-01-01", "2025-02-01", "2025-04-01"]))
    ts = pd.Series(
        pd.to_datetime(
            ["2024-12-31", "2025-01-01", "2025-01-31 23:00", "2025-03-05", "2025-04-02"],
            format="ISO8601",
        )
    )
    linked = link_cutoffs(ts, cutoffs, step_months=1)
    expected = pd.to_datetime([None, "2025-01-01", "2025-01-01", None, "2025-04-01"])
    assert list(linked) == list(expected)
    # March has no labelled cutoff: its contact links to nothing (not to February's)
    contacts = pd.DataFrame({"ts": ts})
    assert campaign_cutoffs(contacts, cutoffs, 1) == list(
        pd.to_datetime(["2025-01-01", "2025-04-01"])
    )


def test_risk_tiers_are_cut_within_each_cutoff():
    p = np.array([0.9, 0.1, 0.2, 0.3, 0.05, 0.8])
    cutoff = pd.Series(pd.to_datetime(["2025-01-01"] * 3 + ["2025-02-01"] * 3))
    tiers = risk_tiers_by_cutoff(p, cutoff, "capacity", high_share=0.3, medium_share=0.3)
    assert list(tiers) == ["high", "low", "medium", "medium", "low", "high"]


def test_success_metrics_put_the_model_beside_the_targets(evaluated):
    metrics = {
        "champion": "lgbm",
        "capacity": 0.1,
        "test_cutoff": "2025-03-01",
        "lgbm": {"recall_at_capacity": 0.41},
        "rules": {"recall_at_capacity": 0.3},
    }
    s = success_metrics(evaluated.summary, metrics, TARGETS)
    e = s["early_identification"]
    assert e["model"] == 0.41 and e["before"] == 0.35 and e["target"] == 0.8
    assert e["campaigns_pooled"] == evaluated.summary["pooled"]["early_identification_rate"]
    assert s["model"]["rules_early_identification_rate"] == 0.3
    assert s["roi"]["target"] == 5


def test_the_card_reads_the_table_back_overall_first(evaluated, tmp_path):
    """reports/campaigns.csv read back as the card does: overall, risk tiers, value tiers;
    the truth's verdict survives the CSV."""
    from churnlight.models.report.campaigns import campaign_rows, chart_rows

    evaluated.table.to_csv(tmp_path / "campaigns.csv", index=False)
    table = pd.read_csv(tmp_path / "campaigns.csv")
    rows = campaign_rows(table, POOLED)
    assert [r["tier"] for r in rows] == [ALL, "high", "gold", "regular"]
    assert rows[0]["n_treatment"] == 6000 and rows[0]["covers"] is True
    bars = chart_rows(table)
    assert list(bars["tier"]) == [ALL, "high"]


def test_pooled_early_identification_counts_every_campaigns_churners():
    """A second campaign flags only regular customers: its cutoff's gold churners still count
    in the pooled gold row (2 of 4 flagged, then 0 of 4)."""
    contacts, snaps = _hand_made()
    feb = pd.Timestamp("2025-02-01")
    second = pd.DataFrame(
        {
            "customer_id": ["c5", "c6"],
            "ts": feb + pd.Timedelta(days=1),
            "campaign_id": "2025-02-retention",
            "kind": "retention",
            "group": ["treatment", "control"],
        }
    )
    ev = _evaluate(
        pd.concat([contacts, second]), pd.concat([snaps, snaps.assign(cutoff=feb)]), bootstrap=200
    )
    assert _get(ev.table, "2025-01-retention", ALL, "gold")["early_identification_rate"] == 0.5
    assert ("2025-02-retention", "gold") not in set(
        zip(ev.table["campaign_id"], ev.table["value_tier"], strict=True)
    )
    pooled = _get(ev.table, POOLED, ALL, "gold")
    assert (pooled["churners"], pooled["churners_flagged"]) == (8, 2)
    assert pooled["early_identification_rate"] == 0.25
    assert _get(ev.table, POOLED)["early_identification_rate"] == 2 / 8


def test_the_card_lists_campaigns_skipped_for_one_reason_on_one_line():
    from churnlight.models.report.campaigns import _grouped

    skipped = {f"2025-{m:02d}-retention": "before" for m in range(1, 12)}
    skipped["2026-10-retention"] = "not observed"
    assert _grouped(skipped) == [
        ("2025-01-retention` … `2025-11-retention", "11 campaigns: before"),
        ("2026-10-retention", "not observed"),
    ]
