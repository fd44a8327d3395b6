"""The synthetic world's retention campaigns (issue 14): the old process flags, a random control
group is held out, and a contact has a known effect by kind of churn."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnlight.features.contract import CONTACT_COLUMNS
from churnlight.features.synthetic import World, WorldConfig, generate_world

PARAMS = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "params.yaml").read_text(encoding="utf-8")
)
GENERATE, SEED = PARAMS["generate"], PARAMS["base"]["seed"]
SMALL = {"n_customers": 1500, "months": 14, "start": "2025-01-01"}
NOT_CAMPAIGNS = ("customers", "transactions", "activity", "feedback", "market")


def _retention(world: World) -> pd.DataFrame:
    """The retention rows of the contact log (the win-back campaigns have their own tests)."""
    return world.contacts[world.contacts["kind"] == "retention"].reset_index(drop=True)


def _world(**changes) -> World:
    return generate_world(WorldConfig.from_params(GENERATE, **changes), seed=SEED)


@pytest.fixture(scope="module")
def world() -> World:
    """The default world (params.yaml, 20k customers): campaigns on."""
    return _world()


@pytest.fixture(scope="module")
def outcomes(world: World) -> pd.DataFrame:
    """Each logged contact with its outcome: churn (and its kind) within 90 days of the cutoff
    opening the contact's month, for cutoffs whose 90 days the data covers."""
    truth = world.truth_contacts.copy()
    truth["cutoff"] = truth["ts"].dt.to_period("M").dt.to_timestamp()
    truth = truth[truth["cutoff"] + pd.Timedelta(days=90) <= world.as_of]
    cust = world.truth_customers.set_index("customer_id")
    churn = truth["customer_id"].map(cust["churn_date"])
    within = (churn >= truth["cutoff"]) & (churn < truth["cutoff"] + pd.Timedelta(days=90))
    kind = truth["customer_id"].map(cust["churn_kind"])
    return truth.assign(churn90=within, passive90=within & (kind == "passive"))


def test_contacts_are_a_raw_table_with_the_interface_columns(world):
    assert list(world.raw_tables()["contacts"].columns) == list(CONTACT_COLUMNS)
    contacts = _retention(world)
    assert set(contacts["group"]) == {"treatment", "control"}
    assert contacts["customer_id"].isin(world.customers["customer_id"]).all()
    month = contacts["ts"].dt.to_period("M").dt.to_timestamp()
    assert ((contacts["ts"] - month) < pd.Timedelta(days=2)).all()  # first 2 days of the month
    assert (contacts["campaign_id"] == month.dt.strftime("%Y-%m") + "-retention").all()
    control = contacts["group"] == "control"
    assert (contacts.loc[control, "cost"] == 0).all()
    assert (contacts.loc[~control, "cost"] > 0).all()
    assert set(contacts.loc[~control, "owner"]) == {"account_manager", "marketing"}
    assert not contacts.duplicated(["customer_id", "campaign_id"]).any()


def test_truth_has_one_row_per_contact(world):
    truth, contacts = world.truth_contacts, _retention(world)
    assert len(truth) == len(contacts)
    keys = ["customer_id", "campaign_id", "ts", "group"]
    assert (truth[keys] == contacts[keys]).all(axis=None)
    assert set(truth["state"]) == {"healthy", "intent", "fading"}
    assert truth[["p_churn_control", "p_churn_treated"]].stack().between(0, 1).all()
    uplift = truth["p_churn_control"] - truth["p_churn_treated"]
    assert (truth["true_uplift"] - uplift).abs().max() < 1e-12
    by_state = truth.groupby("state")["true_uplift"]
    assert (by_state.max()["healthy"], by_state.min()["healthy"]) == (0, 0)  # nothing to fix
    assert by_state.mean()["intent"] > by_state.mean()["fading"] > 0  # active > silent


def test_control_share_is_the_param(world):
    share = (_retention(world)["group"] == "control").mean()
    assert abs(share - GENERATE["campaign_control_share"]) < 0.02


def test_control_and_treatment_are_comparable(world):
    """The holdout is random: the same true risk and the same mix of states."""
    truth = world.truth_contacts
    risk = truth.groupby("group")["p_churn_control"].mean()
    assert abs(risk["treatment"] - risk["control"]) < 0.02
    mix = pd.crosstab(truth["group"], truth["state"], normalize="index")
    assert (mix.loc["treatment"] - mix.loc["control"]).abs().max() < 0.03


def test_treated_intent_customers_churn_less(outcomes):
    intent = outcomes[outcomes["state"] == "intent"]
    # the truth says so...
    assert (intent["true_uplift"] > 0).all()
    # ...and so does the data: churn within 90 days of the contact's cutoff
    rate = intent.groupby("group")["churn90"].mean()
    assert rate["control"] - rate["treatment"] > 0.1
    overall = outcomes.groupby("group")["churn90"].mean()
    assert overall["control"] > overall["treatment"]


def test_passive_churn_is_unaffected(outcomes):
    rate = outcomes.groupby("group")["passive90"].mean()
    assert rate["control"] > 0
    assert abs(rate["control"] - rate["treatment"]) < 0.02


def test_volume_and_identification_of_the_old_process(world, outcomes):
    """A practice-like old process: a small share of customers flagged a month, catching a
    minority of the churners to come (domain.md section 2: ~35%)."""
    alive = len(world.truth_risk)
    assert 0.03 < len(_retention(world)) / alive < 0.15
    risk = world.truth_risk
    risk = risk[risk["cutoff"] + pd.Timedelta(days=90) <= world.as_of]
    churn = risk["customer_id"].map(world.truth_customers.set_index("customer_id")["churn_date"])
    churners = risk[(churn >= risk["cutoff"]) & (churn < risk["cutoff"] + pd.Timedelta(days=90))]
    flagged = set(zip(outcomes["customer_id"], outcomes["cutoff"], strict=True))
    pairs = zip(churners["customer_id"], churners["cutoff"], strict=True)
    caught = [pair in flagged for pair in pairs]
    assert 0.15 < sum(caught) / len(caught) < 0.5


def test_without_campaigns_no_contacts_and_the_same_random_stream():
    """campaigns: false writes no contact log; and the campaigns draw from their own generator,
    so a world whose contacts have no effect equals the world without campaigns, table by
    table (the effects are the only way campaigns change the world)."""
    off = _world(**SMALL, campaigns=False, winback=False)
    assert off.contacts is None and off.truth_contacts is None
    assert "contacts" not in off.raw_tables() and "contacts" not in off.truth_tables()
    no_effect = _world(
        **SMALL,
        campaigns=True,
        winback=False,
        campaign_effect_active=0.0,
        campaign_effect_silent=0.0,
    )
    assert len(no_effect.contacts) > 0
    for name in NOT_CAMPAIGNS:
        pd.testing.assert_frame_equal(off.raw_tables()[name], no_effect.raw_tables()[name])
    for name in ("customers", "risk"):
        pd.testing.assert_frame_equal(off.truth_tables()[name], no_effect.truth_tables()[name])
    on = _world(**SMALL, campaigns=True, winback=False)
    assert not on.truth_customers.equals(off.truth_customers)  # the effects change lives


def test_same_seed_same_campaigns():
    a, b = _world(**SMALL), _world(**SMALL)
    pd.testing.assert_frame_equal(a.contacts, b.contacts)
    pd.testing.assert_frame_equal(a.truth_contacts, b.truth_contacts)


def test_a_flagged_customer_rests_for_the_cooldown(world):
    """Held out (or contacted) once, a customer is not flagged again inside the outcome window:
    otherwise next month's contact would reach the control group and hide the uplift."""
    contacts = _retention(world)
    month = contacts["ts"].dt.year * 12 + contacts["ts"].dt.month
    gaps = month.groupby(contacts["customer_id"]).apply(lambda m: m.sort_values().diff().min())
    assert (gaps.dropna() >= GENERATE["campaign_cooldown_months"]).all()
    assert (gaps.dropna() == GENERATE["campaign_cooldown_months"]).any()  # they do come back
