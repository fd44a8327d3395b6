"""Issue 15's library: leavers and their returns by the shared definitions, the offer at a
cutoff, the point-in-time training table, the return model and the win-back list's ranking
and control group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnlight.features.params import WinbackPlay
from churnlight.models.control import CONTROL, CONTROL_ACTION
from churnlight.models.winback import (
    LIST_COLUMNS,
    empty_list,
    hold_out_leavers,
    leavers,
    offers,
    own_events,
    rank_leavers,
    return_labels,
    training_table,
    winback_campaign_id,
    winback_summary,
)
from churnlight.models.winback_model import (
    compare_orderings,
    fit_return_model,
    return_probabilities,
)

T = pd.Timestamp
K = [T("2026-01-01"), T("2026-02-01"), T("2026-03-01")]
DATA_END = T("2026-07-01")


def _events(rows: list[tuple[str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["customer_id", "ts"])
    return df.assign(ts=pd.to_datetime(df["ts"], format="ISO8601").astype("datetime64[ns]"))


CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["c1", "c2", "c3", "c4", "c5"],
        "cancel_date": pd.to_datetime(
            ["2026-01-20", "2025-12-15", "2026-01-25", "2026-01-10", None]
        ),
    }
)
EVENTS = _events(
    [
        ("c1", "2026-01-19 10:00"),
        ("c1", "2026-03-15 09:00"),  # c1 returns 43 days after the February cutoff
        ("c3", "2026-01-28 12:00"),  # c3 is back before the February cutoff
        ("c4", "2026-01-10 15:00"),  # on its cancel day: no return
        ("c4", "2026-06-01 08:00"),  # beyond 90 days of February 1
        ("c5", "2026-02-10 08:00"),
    ]
)


def test_cancellation_leavers_left_in_the_lookback_and_not_back_yet():
    out = leavers(CUSTOMERS, EVENTS, K, "cancellation", 90, 30)
    got = {(r.customer_id, str(r.cutoff.date())) for r in out.itertuples()}
    assert got == {("c2", "2026-01-01"), ("c1", "2026-02-01"), ("c4", "2026-02-01")}
    assert set(out["churn_kind"]) == {"cancelled"}
    c1 = out[out["customer_id"] == "c1"].iloc[0]
    assert c1["left_date"] == T("2026-01-20")


def test_inactivity_leavers_from_the_last_own_event():
    events = _events([("a", "2025-10-15 12:00"), ("b", "2025-12-20"), ("b", "2025-09-01")])
    out = leavers(pd.DataFrame({"customer_id": ["a", "b"]}), events, K, "inactivity", 90, 30)
    assert out["customer_id"].tolist() == ["a"]
    assert out["cutoff"].tolist() == [T("2026-02-01")]
    assert out["left_date"].tolist() == [T("2026-01-13 12:00")]
    assert set(out["churn_kind"]) == {"inactive"}


def test_no_cancel_date_or_no_cutoff_means_no_leavers():
    no_cancel = CUSTOMERS.drop(columns="cancel_date")
    assert leavers(no_cancel, EVENTS, K, "cancellation", 90, 30).empty
    assert leavers(CUSTOMERS, EVENTS, [], "cancellation", 90, 30).empty


def test_return_labels_count_the_window_after_the_cutoff_once_it_is_over():
    rows = pd.DataFrame(
        {"customer_id": ["c1", "c4", "c1"], "cutoff": [T("2026-02-01"), T("2026-02-01"), K[2]]}
    )
    y = return_labels(rows, EVENTS, 90, DATA_END)
    assert y.tolist() == [1.0, 0.0, 1.0]
    late = return_labels(rows, EVENTS, 90, T("2026-04-01"))
    assert late.isna().all()  # no window over yet


def test_offers_are_winback_treatment_contacts_in_the_cutoffs_month():
    rows = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4"], "cutoff": [T("2026-02-01")] * 4})
    contacts = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4"],
            "ts": pd.to_datetime(
                ["2026-02-01 09:00", "2026-02-02", "2026-02-01", "2026-03-01"], format="ISO8601"
            ),
            "kind": ["winback", "winback", "retention", "winback"],
            "group": ["treatment", "control", "treatment", "treatment"],
        }
    )
    assert offers(rows, contacts).tolist() == [1, 0, 0, 0]
    assert offers(rows, contacts.drop(columns="kind")).tolist() == [0, 0, 0, 0]


def test_own_events_leave_the_companys_outreach_out():
    activity = pd.DataFrame(
        {
            "customer_id": ["x", "x"],
            "ts": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            "event_type": ["outreach_sent", "login"],
        }
    )
    out = own_events(None, activity)
    assert out["ts"].tolist() == [T("2026-01-02")]


# --- point in time: nothing at or after the cutoff but the label -------------------------------


def _snapshots(customers: pd.Series, cutoffs: list[pd.Timestamp], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product([customers, cutoffs], names=["customer_id", "cutoff"])
    df = idx.to_frame(index=False)
    return df.assign(f1=rng.normal(size=len(df)), f2=rng.integers(0, 9, len(df)))


@pytest.mark.parametrize("definition", ["cancellation", "inactivity"])
def test_changing_everything_at_or_after_a_cutoff_changes_only_the_label(tiny_tables, definition):
    customers = tiny_tables["customers"]
    events = own_events(tiny_tables["transactions"], tiny_tables["activity"])
    cutoffs = list(pd.date_range("2025-06-01", "2026-03-01", freq="MS"))
    snaps = _snapshots(customers["customer_id"].astype(str), cutoffs, 0)
    contacts = pd.DataFrame(columns=["customer_id", "ts", "kind", "group"])
    rng = np.random.default_rng(1)
    checked = flipped = 0
    for k in cutoffs[3:]:
        base = training_table(
            leavers(customers, events, [k], definition, 90, 30),
            snaps,
            events,
            contacts,
            90,
            DATA_END,
        )
        # after k: every event moved by a random amount, one more for every customer, every
        # snapshot from k on redrawn
        late = events["ts"] >= k
        moved = events.copy()
        moved.loc[late, "ts"] += pd.to_timedelta(rng.uniform(0, 30, int(late.sum())), unit="D")
        extra = pd.DataFrame({"customer_id": customers["customer_id"].astype(str), "ts": k})
        changed_events = pd.concat([moved, extra], ignore_index=True)
        later = snaps["cutoff"] >= k
        changed_snaps = snaps.copy()
        changed_snaps.loc[later, "f1"] = rng.normal(size=int(later.sum()))
        changed = training_table(
            leavers(customers, changed_events, [k], definition, 90, 30),
            changed_snaps,
            changed_events,
            contacts,
            90,
            DATA_END,
        )
        features = [c for c in base.columns if c != "label"]
        pd.testing.assert_frame_equal(base[features], changed[features])
        checked += len(base)
        flipped += int((base["label"] != changed["label"]).sum())
    assert checked > 20, "too few leavers: the check would pass vacuously"
    assert flipped > 0, "the labels must see the changed future"


# --- the list ----------------------------------------------------------------------------------

PLAYBOOK = {
    "platinum": WinbackPlay(action="call", owner="account_manager", due_within_hours=24, cost=100),
    "gold": WinbackPlay(action="call", owner="account_manager", due_within_hours=72, cost=50),
    "silver": WinbackPlay(action="msg", owner="customer_success", due_within_hours=168, cost=10),
    "regular": WinbackPlay(action="offer", owner="marketing", due_within_hours=168, cost=5),
}


def _rows() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "left_date": pd.to_datetime(["2026-10-20"] * 4),
            "days_since_leaving": [12.0] * 4,
            "churn_kind": ["cancelled"] * 4,
            "stated_reason": ["price", "", "moved", ""],
            "value": [1000.0, 5000.0, 20.0, 300.0],
            "value_tier": ["gold", "platinum", "regular", "silver"],
        }
    )
    for c in LIST_COLUMNS:
        if c.startswith("reason_"):
            df[c] = "why"
    return df


def test_the_list_ranks_by_expected_win_back_value_and_skips_losses():
    p_offer = np.array([0.5, 0.05, 0.1, 0.2])
    out = rank_leavers(_rows(), p_offer, p_offer / 2, PLAYBOOK, T("2026-11-01"), "none please")
    assert list(out.columns) == LIST_COLUMNS
    # expected values: a 450, b 150, c -3 (no offer), d 50
    assert out["customer_id"].tolist() == ["a", "b", "d", "c"]
    assert out["rank"].tolist() == [1, 2, 3, 4]
    assert out["expected_value"].tolist() == [450.0, 150.0, 50.0, -3.0]
    c = out.iloc[3]
    assert (c["action"], c["owner"], c["due_within_hours"]) == ("none please", "none", 0)
    assert pd.isna(c["deadline"])
    assert out.iloc[0]["deadline"] == T("2026-11-04")  # gold: 72 hours


def test_without_a_return_model_the_list_goes_by_value():
    out = rank_leavers(_rows(), None, None, PLAYBOOK, T("2026-11-01"), "none")
    assert out["customer_id"].tolist() == ["b", "a", "d", "c"]
    assert out["p_return_offer"].isna().all() and out["owner"].ne("none").all()


def test_the_control_group_is_held_out_per_value_tier_and_costs_nothing():
    n = 400
    rows = pd.concat([_rows()] * (n // 4), ignore_index=True)
    rows["customer_id"] = [f"c{i}" for i in range(n)]
    ranked = rank_leavers(rows, np.full(n, 0.5), np.full(n, 0.2), PLAYBOOK, T("2026-11-01"), "x")
    campaign = winback_campaign_id(None, T("2026-11-01"))
    assert campaign == "2026-11-winback"
    out = hold_out_leavers(ranked, 0.1, campaign, 42, "x")
    control = out[out["group"] == CONTROL]
    offered = ranked["action"].ne("x")
    assert len(control) == round(0.1 * offered.sum())
    assert (control["action"] == CONTROL_ACTION).all() and (control["cost"] == 0).all()
    assert out.loc[~offered.to_numpy(), "group"].eq("").all()  # no offer: no campaign
    again = hold_out_leavers(ranked.sample(frac=1, random_state=3), 0.1, campaign, 42, "x")
    assert set(again.loc[again["group"] == CONTROL, "customer_id"]) == set(control["customer_id"])
    summary = winback_summary(out, "x")
    assert summary["control"].sum() == len(control)
    assert summary["leavers"].sum() == n


def test_the_empty_list_has_every_column():
    assert list(empty_list().columns) == LIST_COLUMNS


# --- the return model --------------------------------------------------------------------------


def _leaver_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cutoffs = pd.date_range("2025-01-01", periods=10, freq="MS")
    df = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "cutoff": rng.choice(cutoffs, n),
            "x": rng.normal(size=n),
            "days_since_leaving": rng.uniform(0, 30, n),
            "snapshot_age_days": rng.uniform(0, 30, n),
            "offer": (rng.random(n) < 0.8).astype(int),
        }
    )
    logit = -1.5 + 1.5 * df["x"] + 1.2 * df["offer"] - 0.03 * df["days_since_leaving"]
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df.sort_values("cutoff", ignore_index=True)


@pytest.mark.parametrize("kind", ["logreg", "lgbm"])
def test_the_return_model_learns_the_offer_and_the_signal(kind):
    from churnlight.features.params import LgbmParams, LogregParams

    hyper = (
        LogregParams(C=1.0).model_dump()
        if kind == "logreg"
        else LgbmParams(
            n_estimators=150,
            learning_rate=0.05,
            num_leaves=7,
            max_depth=3,
            min_child_samples=20,
            subsample=1.0,
            colsample_bytree=1.0,
            reg_lambda=1.0,
            n_jobs=1,
        ).model_dump()
    )
    train, test = _leaver_table(3000, 0), _leaver_table(1000, 1)
    features = ["x", "days_since_leaving", "snapshot_age_days", "offer"]
    rm = fit_return_model(
        train,
        features,
        kind,
        hyper,
        folds=2,
        window_days=60,
        calibration=("none", "sigmoid"),
        tie=0.001,
        floor=0.001,
        seed=0,
    )
    p_offer, p_none = return_probabilities(rm, test)
    assert (p_offer >= p_none).mean() > 0.9
    assert 0.15 < (p_offer - p_none).mean() < 0.35  # about the true 0.2 lift
    test = test.assign(value=np.exp(np.random.default_rng(2).normal(size=len(test))))
    p_obs = rm.model.predict_proba(test[features])[:, 1]
    got = compare_orderings(test, p_obs, p_offer * test["value"], 0.5)
    assert got["model"]["roc_auc"] > 0.75
    assert got["model"]["roc_auc"] > got["most_recent_first"]["roc_auc"]
    assert got["model"]["roc_auc"] > got["highest_value_first"]["roc_auc"]


def test_orderings_count_the_value_of_the_returned_in_the_top_share():
    test = pd.DataFrame(
        {
            "label": [1, 0, 1, 0],
            "value": [10.0, 100.0, 50.0, 1.0],
            "days_since_leaving": [1.0, 2.0, 30.0, 3.0],
        }
    )
    p = np.array([0.9, 0.05, 0.8, 0.2])
    got = compare_orderings(test, p, p * test["value"], 0.5)
    assert got["model"]["value_won_back_at_capacity"] == 60.0  # c (40), a (9)
    assert got["model"]["roc_auc"] == 1.0
    assert got["most_recent_first"]["value_won_back_at_capacity"] == 10.0  # a, b
    assert got["highest_value_first"]["value_won_back_at_capacity"] == 50.0  # b, c
    assert got["highest_value_first"]["share_of_value_won_back"] == round(50 / 60, 4)


def test_the_stated_reason_is_read_for_the_list_and_never_a_churn_feature():
    from churnlight.features.derived import profile_columns
    from churnlight.models.winback import stated_reason

    # written at cancellation: as a churn feature it would be the label in disguise
    cols = profile_columns({"cancel_reason": "VARCHAR", "region": "VARCHAR"})
    assert "cancel_reason" not in cols and "region" in cols
    customers = pd.DataFrame(
        {"customer_id": ["a", "b", "c"], "cancel_reason": [" Moved", None, "price"]}
    )
    assert stated_reason(customers).tolist() == ["moved", "", "price"]
    assert stated_reason(customers.drop(columns="cancel_reason")).tolist() == ["", "", ""]
