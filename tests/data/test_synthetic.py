"""The synthetic world: reproducible, with truth kept apart and events inside each lifetime."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnlight.features.synthetic import World, WorldConfig, generate_world
from churnlight.pipelines.generate import write_world

GENERATE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "params.yaml").read_text(encoding="utf-8")
)["generate"]
TINY = WorldConfig.from_params(GENERATE, n_customers=400, months=18, start="2025-01-01")
TRUTH_COLUMNS = {"churn_kind", "churn_reason", "true_risk"}
EVENT_TABLES = ("transactions", "activity", "feedback")


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path, tiny_world):
    write_world(tiny_world, tmp_path / "a")
    write_world(generate_world(TINY, seed=7), tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")

    expected = (
        {f"{t}.parquet" for t in tiny_world.raw_tables()}
        | {f"_truth/{t}.parquet" for t in tiny_world.truth_tables()}
        | {"_truth/as_of.txt"}
    )
    truth = {"_truth/customers.parquet", "_truth/risk.parquet", "_truth/contacts.parquet"}
    assert truth <= expected
    assert set(a) == expected
    assert set(b) == expected
    for name in sorted(expected):
        assert a[name] == b[name], f"{name} differs between two runs with the same seed"


def test_different_seed_gives_a_different_world(tmp_path, tiny_world):
    write_world(tiny_world, tmp_path / "a")
    write_world(generate_world(TINY, seed=8), tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")

    for name in ("customers", "transactions", "activity", "feedback"):
        assert a[f"{name}.parquet"] != b[f"{name}.parquet"], name
    assert a["_truth/customers.parquet"] != b["_truth/customers.parquet"]
    assert a["_truth/as_of.txt"] == b["_truth/as_of.txt"]  # the calendar is config, not seed


def test_churn_kinds_present_and_active_is_the_largest(tiny_world):
    kinds = tiny_world.truth_customers["churn_kind"].dropna().value_counts()
    assert {"active", "passive", "silent"} <= set(kinds.index)
    assert set(kinds.index) <= {"active", "passive", "silent"}
    assert kinds.idxmax() == "active"
    assert kinds["active"] > kinds["passive"] + kinds["silent"]  # domain: most churn is active


def test_truth_is_consistent_with_cancel_dates(tiny_world):
    truth = tiny_world.truth_customers.set_index("customer_id")
    customers = tiny_world.customers.set_index("customer_id")
    assert truth.index.equals(customers.index)
    churned = truth["churn_date"].notna()
    assert churned.equals(customers["cancel_date"].notna())
    assert churned.equals(truth["churn_kind"].notna())
    churn_day = truth.loc[churned, "churn_date"].dt.normalize()
    assert (churn_day == customers.loc[churned, "cancel_date"]).all()


def test_truth_tables_exist_and_raw_tables_hold_no_truth(tiny_world):
    truth = tiny_world.truth_tables()
    assert set(truth) == {"customers", "risk", "contacts", "winback"}
    assert {"churn_kind", "churn_reason"} <= set(truth["customers"].columns)
    assert "true_risk" in truth["risk"].columns
    assert len(truth["risk"]) > 0
    assert truth["risk"]["true_risk"].between(0, 1).all()
    for name, df in tiny_world.raw_tables().items():
        assert not TRUTH_COLUMNS & set(df.columns), name


def test_write_world_keeps_truth_apart(tmp_path, tiny_world):
    out = tmp_path / "raw"
    write_world(tiny_world, out)
    for path in out.glob("*.parquet"):
        assert not TRUTH_COLUMNS & set(pd.read_parquet(path).columns), path.name
    assert (out / "_truth" / "as_of.txt").read_text().strip() == "2026-06-30"


@pytest.mark.parametrize("table", EVENT_TABLES)
def test_no_events_outside_a_customers_lifetime(tiny_world: World, table: str):
    events = tiny_world.raw_tables()[table]
    assert len(events) > 0
    customers = tiny_world.customers.set_index("customer_id")
    assert events["customer_id"].isin(customers.index).all()
    signup = events["customer_id"].map(customers["signup_date"])
    cancel = events["customer_id"].map(customers["cancel_date"])
    day = events["ts"].dt.normalize()

    # a leaver who came back (generate.winback) has events again from its return on
    back = events["customer_id"].map(
        tiny_world.truth_winback.set_index("customer_id")["returned_date"]
    )
    before_signup = events["ts"] < signup
    after_cancel = cancel.notna() & (day > cancel) & ~(events["ts"] >= back)
    assert not before_signup.any(), events[before_signup].head()
    assert not after_cancel.any(), events[after_cancel].head()
    if table != "feedback":  # own events resume after a return (no surveys modelled then)
        assert (events["ts"] >= back).any()


@pytest.mark.parametrize("table", EVENT_TABLES)
def test_all_events_before_the_end_of_as_of(tiny_world: World, table: str):
    assert tiny_world.as_of == pd.Timestamp("2026-06-30")
    ts = tiny_world.raw_tables()[table]["ts"]
    assert (ts < tiny_world.as_of + pd.Timedelta(days=1)).all()
    assert (ts >= pd.Timestamp("2025-01-01")).all()
