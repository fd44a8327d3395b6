"""The campaign's control group (domain.md section 8): seeded and stable, stratified by risk
tier x value tier, only among the customers a campaign would contact, and on no action list."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from churnlight.models.control import (
    CONTROL,
    CONTROL_ACTION,
    CONTROL_COLUMNS,
    TREATMENT,
    action_list,
    assign_groups,
    campaign_id,
    control_count,
    control_list,
    draw,
    hold_out,
)
from churnlight.models.segment import summarise

SEED = 42
CAMPAIGN = "2026-11-retention"
NO_CONTACT = "No contact"
# strata of 200+ of every size the rounding can meet, and some small ones
SIZES = {
    ("high", "platinum"): 200,
    ("high", "gold"): 237,
    ("high", "silver"): 415,
    ("high", "regular"): 1203,
    ("medium", "platinum"): 205,
    ("medium", "gold"): 333,
    ("medium", "silver"): 999,
    ("medium", "regular"): 2501,
    ("low", "silver"): 7,
    ("low", "regular"): 19,
}


def _customers(sizes: dict = SIZES, prefix: str = "C") -> pd.DataFrame:
    rows = [
        (f"{prefix}{risk[0]}{value[0]}{i:05d}", risk, value)
        for (risk, value), n in sizes.items()
        for i in range(n)
    ]
    return pd.DataFrame(rows, columns=["customer_id", "risk_tier", "value_tier"])


def _groups(df: pd.DataFrame, share: float = 0.10, campaign: str = CAMPAIGN) -> pd.Series:
    g = assign_groups(df, np.ones(len(df), dtype=bool), share, campaign, SEED)
    return pd.Series(g, index=df["customer_id"].to_numpy())


def _segments(n: int = 3000) -> pd.DataFrame:
    """A segment table as build_segments leaves it: tiers, actions, some not worth contacting."""
    rng = np.random.default_rng(0)
    risk = rng.choice(["high", "medium", "low"], n, p=[0.2, 0.3, 0.5])
    seg = pd.DataFrame(
        {
            "customer_id": [f"K{i:05d}" for i in range(n)],
            "risk_tier": risk,
            "value_tier": rng.choice(["gold", "regular"], n),
            "action": np.where(risk == "low", "Business as usual", "Call"),
            "owner": np.where(risk == "low", "none", "marketing"),
            "due_within_hours": np.where(risk == "low", 0, 72),
            "angle": np.where(risk == "low", "", "Price"),
        }
    )
    skip = (risk != "low") & (rng.random(n) < 0.1)
    seg.loc[skip, ["action", "owner", "due_within_hours", "angle"]] = [NO_CONTACT, "none", 0, ""]
    return seg


# --- stable ------------------------------------------------------------------------------------


def test_the_draw_depends_only_on_seed_campaign_and_id():
    ids = pd.Series([f"C{i}" for i in range(50)])
    u = draw(ids, CAMPAIGN, SEED)
    assert ((u >= 0) & (u < 1)).all()
    # another order, other customers beside them: the same number per customer
    other = pd.concat([pd.Series(["X1", "X2"]), ids[::-1]], ignore_index=True)
    by_id = dict(zip(other, draw(other, CAMPAIGN, SEED), strict=True))
    assert [by_id[c] for c in ids] == u.tolist()
    # the same id as a number or as text is one customer
    assert draw(pd.Series([123]), CAMPAIGN, SEED)[0] == draw(pd.Series(["123"]), CAMPAIGN, SEED)[0]
    assert not np.array_equal(draw(ids, CAMPAIGN, SEED + 1), u)


def test_the_draw_is_the_same_in_another_process():
    """Not Python's salted hash(): another interpreter (another PYTHONHASHSEED) agrees."""
    ids = [f"C{i}" for i in range(20)]
    code = (
        "import pandas as pd; from churnlight.models.control import draw; "
        f"print(draw(pd.Series({ids!r}), {CAMPAIGN!r}, {SEED}).tolist())"
    )
    out = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(h)},
        ).stdout.strip()
        for h in (1, 2)
    }
    assert out == {str(draw(pd.Series(ids), CAMPAIGN, SEED).tolist())}


def test_same_customers_same_groups_in_any_order_and_run():
    df = _customers()
    first = _groups(df)
    shuffled = df.sample(frac=1, random_state=3).reset_index(drop=True)
    assert _groups(shuffled).reindex(first.index).equals(first)
    assert _groups(df.copy()).equals(first)


def test_other_strata_do_not_change_a_stratum_s_groups():
    """Who else is on the list, outside a customer's stratum, does not matter at all."""
    df = _customers()
    first = _groups(df)
    others = _customers({("high", "gold"): 500, ("medium", "regular"): 77}, prefix="N")
    mixed = pd.concat([df[df["risk_tier"] == "high"], others, df[df["risk_tier"] != "high"]])
    again = _groups(mixed.reset_index(drop=True))
    untouched = df[
        ~df[["risk_tier", "value_tier"]]
        .apply(tuple, axis=1)
        .isin([("high", "gold"), ("medium", "regular")])
    ]["customer_id"]
    assert again[untouched].equals(first[untouched])


def test_a_changed_stratum_moves_only_customers_near_its_cut():
    """Customers joining or leaving a stratum move only customers whose draw lies between the
    two cuts; the rest keep their group, and a very low draw stays control."""
    stratum = _customers({("high", "gold"): 1000})
    joined = pd.concat(
        [stratum.iloc[150:], _customers({("high", "gold"): 400}, prefix="J")], ignore_index=True
    )
    before, after = _groups(stratum), _groups(joined)
    both = before.index.intersection(after.index)
    u = pd.Series(draw(pd.Series(both), CAMPAIGN, SEED), index=both)
    moved = before[both] != after[both]
    cuts = sorted(
        (
            np.sort(draw(stratum["customer_id"], CAMPAIGN, SEED))[control_count(0.1, 1000) - 1],
            np.sort(draw(joined["customer_id"], CAMPAIGN, SEED))[control_count(0.1, 1250) - 1],
        )
    )
    assert (u[moved] >= cuts[0]).all() and (u[moved] <= cuts[1]).all()
    assert moved.sum() <= 0.03 * len(both)
    assert (after[u[u < 0.05].index] == CONTROL).all()
    assert (after[u[u > 0.2].index] == TREATMENT).all()


# --- stratified --------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.05, 0.10, 0.25])
def test_every_stratum_of_200_or_more_holds_the_share(share):
    df = _customers()
    g = _groups(df, share).to_numpy()
    df["control"] = g == CONTROL
    shares = df.groupby(["risk_tier", "value_tier"])["control"].agg(["mean", "size"])
    big = shares[shares["size"] >= 200]
    assert len(big) == 8
    assert (abs(big["mean"] - share) <= 0.02).all(), big
    assert set(g) == {CONTROL, TREATMENT}


def test_control_count_rounds_half_up_without_float_noise():
    assert control_count(0.1, 25) == 3  # 2.5
    assert control_count(0.1, 24) == 2
    assert control_count(0.07, 100) == 7
    assert control_count(0.1, 4) == 0  # a stratum too small to hold anyone out
    assert control_count(0.0, 10_000) == 0


def test_share_zero_holds_nobody_out():
    df = _customers()
    assert set(_groups(df, 0.0)) == {TREATMENT}
    seg = hold_out(_segments(), 0.0, CAMPAIGN, SEED, NO_CONTACT)
    assert not (seg["group"] == CONTROL).any()
    assert control_list(seg).empty
    assert list(control_list(seg).columns) == CONTROL_COLUMNS
    assert len(action_list(seg)) == len(seg)


def test_another_campaign_is_a_fresh_draw():
    df = _customers()
    a = _groups(df, campaign="2026-10-retention") == CONTROL
    b = _groups(df, campaign="2026-11-retention") == CONTROL
    assert a.sum() == b.sum()  # the same shares per stratum
    both = (a & b).sum()
    # independent draws: about share x share of everyone is held out both times
    assert 0 < both < 2 * 0.1 * a.sum()


# --- who is a candidate, and the lists ---------------------------------------------------------


def test_only_customers_a_campaign_contacts_are_in_it():
    seg = _segments()
    out = hold_out(seg, 0.1, CAMPAIGN, SEED, NO_CONTACT)
    member = out["group"] != ""
    expected = (seg["risk_tier"] != "low") & (seg["action"] != NO_CONTACT)
    assert member.equals(expected)
    assert (out.loc[member, "campaign_id"] == CAMPAIGN).all()
    assert (out.loc[~member, "campaign_id"] == "").all()
    assert set(out.loc[member, "group"]) == {TREATMENT, CONTROL}
    # not worth contacting, and low risk, stay as they were
    assert out.loc[~member, ["action", "owner"]].equals(seg.loc[~member, ["action", "owner"]])
    assert seg.columns.tolist() == [c for c in out.columns if c not in ("campaign_id", "group")]


def test_control_customers_are_on_no_action_list():
    seg = _segments()
    out = hold_out(seg, 0.1, CAMPAIGN, SEED, NO_CONTACT)
    control = out[out["group"] == CONTROL]
    assert len(control) > 50
    assert (control["action"] == CONTROL_ACTION).all()
    assert (control["owner"] == "none").all()
    assert (control["due_within_hours"] == 0).all()
    assert (control["angle"] == "").all()
    acted = action_list(out)
    assert not acted["customer_id"].isin(control["customer_id"]).any()
    assert len(acted) + len(control) == len(out)
    listed = control_list(out)
    assert list(listed.columns) == CONTROL_COLUMNS
    assert listed["customer_id"].tolist() == control["customer_id"].tolist()
    assert set(listed["group"]) == {CONTROL} and set(listed["campaign_id"]) == {CAMPAIGN}
    assert "group" not in seg  # the input is not changed


def test_the_summary_counts_the_control_group_per_tier():
    seg = hold_out(_segments(), 0.1, CAMPAIGN, SEED, NO_CONTACT)
    seg["churn_probability"], seg["customer_value"] = 0.5, 100.0
    reasons = pd.DataFrame({"r1": ""}, index=seg.index)
    out = summarise(seg, reasons, pd.Series(dtype=str), NO_CONTACT)
    counts = seg[seg["group"] == CONTROL].groupby(["risk_tier", "value_tier"]).size()
    got = out.set_index(["risk_tier", "value_tier"])["control"]
    assert got.sum() == counts.sum() > 0
    assert (got.reindex(counts.index) == counts).all()
    assert (got.xs("low", level="risk_tier") == 0).all()


# --- the campaign id ---------------------------------------------------------------------------


def test_campaign_id_as_set_else_from_the_scoring_month():
    assert campaign_id("spring-push", pd.Timestamp("2026-11-01")) == "spring-push"
    assert campaign_id(None, pd.Timestamp("2026-11-01")) == "2026-11-retention"
    assert campaign_id(None, pd.Timestamp("2027-01-31")) == "2027-01-retention"
    assert campaign_id(None, None) == "retention"
    assert campaign_id(None, pd.NaT) == "retention"
