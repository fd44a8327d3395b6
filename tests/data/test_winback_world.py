"""The synthetic world's returns and win-back campaigns (issue 15): leavers come back, more often
after an offer, never when they moved away; `generate.winback: false` is the world as before."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnlight.features.synthetic import World, WorldConfig, generate_world

PARAMS = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "params.yaml").read_text(encoding="utf-8")
)
GENERATE, SEED = PARAMS["generate"], PARAMS["base"]["seed"]
SMALL = {"n_customers": 1500, "months": 14, "start": "2025-01-01"}
WINDOW = pd.Timedelta(days=GENERATE["winback_window_days"])


def _world(**changes) -> World:
    return generate_world(WorldConfig.from_params(GENERATE, **changes), seed=SEED)


@pytest.fixture(scope="module")
def world() -> World:
    """A mid-size world: 8000 customers over the default 24 months."""
    return _world(n_customers=8000)


@pytest.fixture(scope="module")
def flagged(world: World) -> pd.DataFrame:
    """Flagged leavers whose window the data covers, with the observed return in it."""
    t = world.truth_winback
    t = t[t["group"].notna() & (t["ts"] + WINDOW <= world.as_of)].copy()
    t["back"] = (t["returned_date"] > t["ts"]) & (t["returned_date"] <= t["ts"] + WINDOW)
    return t


def _own_events(world: World) -> pd.DataFrame:
    return pd.concat(
        [world.transactions[["customer_id", "ts"]], world.activity[["customer_id", "ts"]]]
    )


def test_winback_contacts_follow_the_interface(world):
    c = world.contacts[world.contacts["kind"] == "winback"]
    assert len(c) > 0 and set(c["group"]) == {"treatment", "control"}
    month = c["ts"].dt.to_period("M").dt.to_timestamp()
    assert ((c["ts"] - month) < pd.Timedelta(days=2)).all()
    assert (c["campaign_id"] == month.dt.strftime("%Y-%m") + "-winback").all()
    assert (c.loc[c["group"] == "control", "cost"] == 0).all()
    treated = c[c["group"] == "treatment"]
    assert (treated["cost"] > 0).all() and (treated["owner"] != "").all()
    assert not c["customer_id"].duplicated().any()  # at most one offer per leaver
    share = (c["group"] == "control").mean()
    assert abs(share - GENERATE["winback_control_share"]) < 0.03
    # only recent leavers, after they left
    cancel = c["customer_id"].map(world.customers.set_index("customer_id")["cancel_date"])
    assert (cancel <= c["ts"]).all()
    assert (c["ts"] - cancel <= pd.Timedelta(days=GENERATE["winback_lookback_days"] + 2)).all()


def test_truth_has_one_row_per_leaver(world):
    t = world.truth_winback
    leavers = world.customers[world.customers["cancel_date"].notna()]
    assert sorted(t["customer_id"]) == sorted(leavers["customer_id"])
    cancel = t["customer_id"].map(leavers.set_index("customer_id")["cancel_date"])
    assert (t["left_date"] == cancel).all()
    assert t[["p_return_control", "p_return_offer"]].stack().between(0, 1).all()
    assert (t["p_return_offer"] >= t["p_return_control"]).all()
    wb = world.contacts[world.contacts["kind"] == "winback"]
    keyed = t.dropna(subset=["campaign_id"]).set_index("customer_id")
    assert (wb.set_index("customer_id")["group"] == keyed.loc[wb["customer_id"], "group"]).all()


def test_returns_are_the_first_own_event_after_leaving(world):
    """The truth's returned_date is what the data shows: the first own event after the cancel
    date's day (own events before leaving all fall before it)."""
    t = world.truth_winback
    ev = _own_events(world)
    left = ev["customer_id"].map(t.set_index("customer_id")["left_date"])
    after = ev[ev["ts"] >= left + pd.Timedelta(days=1)]
    first = after.groupby("customer_id")["ts"].min()
    truth = t.dropna(subset=["returned_date"]).set_index("customer_id")["returned_date"]
    assert len(truth) > 50
    pd.testing.assert_series_equal(
        first.sort_index(), truth.sort_index(), check_names=False, check_dtype=False
    )


def test_returned_customers_resume_about_their_former_level(world):
    """Spend per month after coming back about as before leaving (the default level 1.0)."""
    t = world.truth_winback.dropna(subset=["returned_date"])
    tx = world.transactions
    tx = tx[tx["customer_id"].isin(t["customer_id"])]
    back = tx["customer_id"].map(t.set_index("customer_id")["returned_date"])
    after = tx[tx["ts"] > back].groupby("customer_id")["amount"].sum()
    months_back = (world.as_of - t.set_index("customer_id")["returned_date"]).dt.days / 30.44
    per_month = (after / months_back).dropna()
    yearly = t.set_index("customer_id")["yearly_value"] / 12
    ratio = per_month.sum() / yearly[per_month.index].sum()
    assert 0.6 < ratio < 1.5


def test_moved_away_leavers_never_return(world):
    t = world.truth_winback
    moved = t[t["churn_reason"] == "moved"]
    assert len(moved) > 100
    assert moved["returned_date"].isna().all()
    assert (moved[["p_return_control", "p_return_offer"]] == 0).all(axis=None)


def test_offers_raise_return_rates(flagged):
    """In truth and in the data: treated leavers come back more than the control group, overall
    and for active leavers over service or price; passive and silent ones rarely either way."""
    rate = flagged.groupby("group")["back"].mean()
    assert rate["treatment"] - rate["control"] > 0.08
    active = flagged[flagged["churn_reason"].isin(["service", "price"])]
    assert (active["p_return_offer"] - active["p_return_control"]).mean() > 0.2
    by = active.groupby("group")["back"].mean()
    assert by["treatment"] - by["control"] > 0.15
    rare = flagged[flagged["churn_reason"].isin(["need_gone", "asset_sold", "fading"])]
    assert rare["p_return_offer"].mean() < 0.1
    # the truth is calibrated: observed rates near the true chances
    for group, col in (("treatment", "p_return_offer"), ("control", "p_return_control")):
        g = flagged[flagged["group"] == group]
        assert abs(g["back"].mean() - g[col].mean()) < 0.05


def test_return_chances_fade_with_time_since_leaving(world):
    """Without an offer, a leaver is likelier back in its first two months than in the next
    two (given not back by then)."""
    t = world.truth_winback
    untreated = t["group"].fillna("") != "treatment"
    t = t[untreated & (t["left_date"] + pd.Timedelta(days=120) <= world.as_of)]
    t = t[t["churn_reason"].isin(["service", "price", "convenience", "relationship"])]
    days = (t["returned_date"] - t["left_date"]).dt.days
    first = (days <= 60).mean()
    later = ((days > 60) & (days <= 120)).sum() / (~(days <= 60)).sum()
    assert len(t) > 300 and first > 1.5 * later > 0


def test_offers_follow_value_tiers(flagged):
    """A stronger (and dearer) offer for more valuable leavers."""
    treated = flagged[flagged["group"] == "treatment"]
    lift = (treated["p_return_offer"] - treated["p_return_control"]).groupby(treated["value_tier"])
    assert lift.mean()["platinum"] > lift.mean()["gold"] > lift.mean()["silver"]
    assert lift.mean()["silver"] > lift.mean()["regular"]


def test_without_winback_the_world_is_exactly_as_before():
    """winback: false writes no win-back rows and no truth; and the win-back draws from its own
    generator, so the world with it differs only by the returned customers' new events and the
    win-back contacts."""
    off = _world(**SMALL, winback=False)
    on = _world(**SMALL)
    assert off.truth_winback is None and "winback" not in off.truth_tables()
    assert set(off.contacts["kind"]) == {"retention"}
    pd.testing.assert_frame_equal(
        off.contacts, on.contacts[on.contacts["kind"] == "retention"].reset_index(drop=True)
    )
    for name in ("customers", "feedback", "market"):
        pd.testing.assert_frame_equal(off.raw_tables()[name], on.raw_tables()[name])
    for name in ("customers", "risk", "contacts"):
        pd.testing.assert_frame_equal(off.truth_tables()[name], on.truth_tables()[name])
    back = on.truth_winback.set_index("customer_id")["returned_date"]
    for name in ("transactions", "activity"):
        new = on.raw_tables()[name]
        cut = new["customer_id"].map(back)
        before = new[~(new["ts"] >= cut)].reset_index(drop=True)  # NaT: never back
        pd.testing.assert_frame_equal(off.raw_tables()[name], before)
        assert len(new) > len(before)
    neither = _world(**SMALL, campaigns=False, winback=False)
    assert neither.contacts is None


def test_same_seed_same_returns():
    a, b = _world(**SMALL), _world(**SMALL)
    pd.testing.assert_frame_equal(a.truth_winback, b.truth_winback)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
