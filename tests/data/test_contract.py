"""The data contract: every kind of violation is reported with table, column, count and rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnlight.features.contract import (
    ContractError,
    Violation,
    validate_tables,
)

# the contract's settings, as params.yaml sets them (the tests below name the label "churn")
CONTRACT = {
    "label_column": "churn",
    "max_examples": 5,
    "score_ranges": {"nps": (0, 10), "csat": (1, 5)},
}


def _violations(tables: dict[str, pd.DataFrame], **kwargs) -> list[Violation]:
    with pytest.raises(ContractError) as info:
        validate_tables(tables, **{**CONTRACT, **kwargs})
    assert info.value.violations, "ContractError raised without violations"
    return info.value.violations


def _only(tables: dict[str, pd.DataFrame], **kwargs) -> Violation:
    found = _violations(tables, **kwargs)
    assert len(found) == 1, [str(v) for v in found]
    return found[0]


def _as_object(series: pd.Series) -> pd.Series:
    """A column as plain Python objects, so that a bad value can be put into it."""
    return series.astype(str).astype(object)


# --- clean data ---------------------------------------------------------------------------


def test_clean_tiny_world_validates_with_every_family_on(tiny_world, tiny_tables):
    data = validate_tables(tiny_tables, as_of=tiny_world.as_of, **CONTRACT)

    assert data.mode == "events"
    assert data.as_of == pd.Timestamp("2026-06-30")
    assert data.report["families"] == {
        "behaviour": True,
        "attitude": True,
        "external": True,
        "profile": True,
    }
    assert data.report["tables_missing"] == []
    assert data.report["customers_derived_from_events"] is False
    assert data.report["rows"] == {name: len(df) for name, df in tiny_tables.items()}
    tx = data.tables["transactions"]
    assert tx["ts"].dtype == "datetime64[ms]"
    assert tx["amount"].dtype == "float64"
    assert pd.api.types.is_string_dtype(tx["customer_id"])
    assert data.tables["market"]["competitor_launch"].dtype == "Int8"


def test_clean_world_without_stated_as_of_uses_latest_event(tiny_tables):
    data = validate_tables(tiny_tables, **CONTRACT)
    assert data.as_of == pd.Timestamp("2026-06-30")
    assert data.report["as_of"] == "2026-06-30"


def test_missing_optional_table_validates_and_switches_attitude_off(tiny_tables):
    del tiny_tables["feedback"]
    data = validate_tables(tiny_tables, **CONTRACT)

    assert data.report["families"]["attitude"] is False
    assert data.report["families"]["behaviour"] is True
    assert data.report["families"]["external"] is True
    assert data.report["families"]["profile"] is True
    assert data.report["tables_missing"] == ["feedback"]
    assert "feedback" not in data.tables


def test_customers_table_is_derived_from_events_when_absent(tiny_tables):
    event_ids = pd.concat(
        [tiny_tables[t]["customer_id"] for t in ("transactions", "activity", "feedback")]
    )
    del tiny_tables["customers"]
    data = validate_tables(tiny_tables, **CONTRACT)

    customers = data.tables["customers"]
    assert list(customers.columns) == ["customer_id"]
    assert set(customers["customer_id"]) == set(event_ids)
    assert customers["customer_id"].is_unique
    assert customers["customer_id"].is_monotonic_increasing
    assert pd.api.types.is_string_dtype(customers["customer_id"])
    assert data.report["customers_derived_from_events"] is True
    assert data.report["families"]["profile"] is False
    assert data.report["rows"]["customers"] == len(customers)


# --- flat labelled table ------------------------------------------------------------------


def _flat_customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["A1", "A2", "A3", "A4", "A5"],
            "churn": ["Yes", "No", "yes", " NO ", "Y"],
            "region": ["north", "south", "east", "west", "north"],
            "plan": ["basic", "plus", "premium", "basic", "plus"],
            "signup_date": ["2024-01-05", "2023-07-01", "2025-02-11", "2022-12-31", "2024-06-30"],
        }
    )


def test_flat_labelled_table_validates_in_flat_mode():
    data = validate_tables({"customers": _flat_customers()}, **CONTRACT)

    assert data.mode == "flat"
    assert data.report["mode"] == "flat"
    assert data.report["families"] == {
        "behaviour": False,
        "attitude": False,
        "external": False,
        "profile": True,
    }
    assert data.report["customers_derived_from_events"] is False
    customers = data.tables["customers"]
    assert customers["churn"].tolist() == [1, 0, 1, 0, 1]
    assert customers["signup_date"].dtype == "datetime64[ms]"
    assert set(data.tables) == {"customers", "contacts"}  # the contact log: always, empty


def test_flat_table_with_unparseable_label_is_rejected():
    flat = _flat_customers()
    flat.loc[2, "churn"] = "maybe"
    v = _only({"customers": flat})

    assert (v.table, v.column, v.count) == ("customers", "churn", 1)
    assert "label not understood" in v.problem
    assert v.examples["customer_id"].tolist() == ["A3"]
    assert v.examples["churn"].tolist() == ["maybe"]


# --- one test per violation kind ----------------------------------------------------------


def test_missing_event_files(tiny_tables):
    del tiny_tables["transactions"]
    del tiny_tables["activity"]
    v = _only(tiny_tables)

    assert v.table == "transactions|activity"
    assert v.column == "-"
    assert v.count == 0
    assert v.problem.startswith("missing file")
    assert "['contacts', 'customers', 'feedback', 'market']" in v.problem  # tells what was found


def test_missing_required_column(tiny_tables):
    n = len(tiny_tables["transactions"])
    tiny_tables["transactions"] = tiny_tables["transactions"].drop(columns="amount")
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("transactions", "amount", n)
    assert v.problem.startswith("missing column")
    assert "customer_id" in v.problem  # lists the columns that were found


def test_wrong_type_amount(tiny_tables):
    tx = tiny_tables["transactions"]
    tx["amount"] = _as_object(tx["amount"])
    tx.loc[[3, 10], "amount"] = "abc"
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("transactions", "amount", 2)
    assert v.problem == "wrong type: expected a number"
    assert v.examples.index.tolist() == [3, 10]
    assert v.examples["amount"].tolist() == ["abc", "abc"]
    assert v.examples["customer_id"].tolist() == tx.loc[[3, 10], "customer_id"].tolist()


def test_unparseable_date(tiny_tables):
    act = tiny_tables["activity"]
    act["ts"] = _as_object(act["ts"])
    act.loc[5, "ts"] = "31/02/2025 25:61"
    act.loc[7, "ts"] = "not a date"
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("activity", "ts", 2)
    assert v.problem == "unparseable date"
    assert v.examples["ts"].tolist() == ["31/02/2025 25:61", "not a date"]


def test_duplicate_customer_id(tiny_tables):
    customers = tiny_tables["customers"]
    dup_ids = customers["customer_id"].iloc[[0, 1]].tolist()
    tiny_tables["customers"] = pd.concat([customers, customers.iloc[[0, 1]]], ignore_index=True)
    v = _only(tiny_tables)

    assert (v.table, v.column) == ("customers", "customer_id")
    assert v.problem == "duplicate values (must be unique)"
    assert v.count == 4  # every row that shares a duplicated id: 2 ids x 2 rows
    assert len(v.examples) == 4
    assert sorted(v.examples["customer_id"]) == sorted(dup_ids * 2)


def test_events_for_unknown_customers(tiny_tables):
    tx = tiny_tables["transactions"]
    tx.loc[[0, 1, 2], "customer_id"] = "GHOST-1"
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("transactions", "customer_id", 3)
    assert v.problem.startswith("events for unknown customers")
    assert v.examples["customer_id"].tolist() == ["GHOST-1"] * 3


def test_negative_amount(tiny_tables):
    tx = tiny_tables["transactions"]
    tx.loc[[4, 8, 15], "amount"] = [-5.0, -0.01, -1200.0]
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("transactions", "amount", 3)
    assert "greater_than_or_equal_to(0)" in v.problem
    assert v.examples.index.tolist() == [4, 8, 15]
    assert v.examples["amount"].tolist() == [-5.0, -0.01, -1200.0]


def test_an_amount_too_large_to_sum_exactly(tiny_tables):
    """Spend is summed in whole millionths as 64-bit integers (the BTYD pass): an amount past
    `MAX_AMOUNT` is an error that names it, not an overflow deep in the feature SQL."""
    tx = tiny_tables["transactions"]
    tx.loc[[3, 9], "amount"] = [2e12, 1e19]
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("transactions", "amount", 2)
    assert "less_than_or_equal_to(1000000000000.0)" in v.problem
    assert v.examples["amount"].tolist() == [2e12, 1e19]


def test_empty_table(tiny_tables):
    tiny_tables["feedback"] = tiny_tables["feedback"].iloc[:0]
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("feedback", "-", 0)
    assert v.problem == "empty table (no rows)"
    assert v.examples.empty


def test_timestamps_after_stated_end_date(tiny_world, tiny_tables):
    assert tiny_world.as_of == pd.Timestamp("2026-06-30")
    tx = tiny_tables["transactions"]
    tx.loc[[0, 1], "ts"] = pd.Timestamp("2026-07-01 00:00:00")
    tx.loc[2, "ts"] = pd.Timestamp("2026-06-30 23:59:59")  # still on the last day: allowed
    v = _only(tiny_tables, as_of=tiny_world.as_of)

    assert (v.table, v.column, v.count) == ("transactions", "ts", 2)
    assert "after the data's stated end date" in v.problem
    assert "2026-06-30" in v.problem
    assert v.examples.index.tolist() == [0, 1]
    assert (v.examples["ts"] == pd.Timestamp("2026-07-01")).all()


def test_every_violation_is_collected_before_failing(tiny_tables):
    tiny_tables["transactions"].loc[0, "amount"] = -1.0
    tiny_tables["activity"].loc[0, "customer_id"] = "GHOST-2"
    found = {(v.table, v.column) for v in _violations(tiny_tables)}
    assert found == {("transactions", "amount"), ("activity", "customer_id")}


def test_max_examples_caps_example_rows(tiny_tables):
    tx = tiny_tables["transactions"]
    tx.loc[:19, "amount"] = -1.0
    v = _only(tiny_tables, max_examples=3)
    assert v.count == 20
    assert len(v.examples) == 3


def test_timestamps_with_different_utc_offsets_do_not_crash(tiny_tables):
    act = tiny_tables["activity"]
    act["ts"] = _as_object(act["ts"])
    act.loc[0, "ts"] = "2025-03-01T10:00:00+01:00"
    act.loc[1, "ts"] = "2025-04-01T10:00:00+02:00"
    try:
        data = validate_tables(tiny_tables, **CONTRACT)
    except ContractError as err:  # reporting it as a violation would be acceptable too
        assert any(v.column == "ts" for v in err.violations)
    else:
        assert data.tables["activity"]["ts"].iloc[1] == pd.Timestamp("2025-04-01 08:00:00")


# --- the message is for people --------------------------------------------------------------


def test_error_message_names_table_column_and_shows_example_rows(tiny_tables):
    tx = tiny_tables["transactions"]
    tx["amount"] = _as_object(tx["amount"])
    tx.loc[3, "amount"] = "abc"
    bad_customer = tx.loc[3, "customer_id"]
    with pytest.raises(ContractError) as info:
        validate_tables(tiny_tables, **CONTRACT)
    msg = str(info.value)

    assert msg.startswith("data contract violated (1 problem(s)):")
    assert "[transactions.amount] wrong type: expected a number: 1 row(s)" in msg
    assert "e.g." in msg
    example_lines = msg.split("e.g.", 1)[1].splitlines()
    assert any("abc" in line and bad_customer in line for line in example_lines)


# --- values no business can have (issue 13) -------------------------------------------------


def test_infinite_amount_is_rejected(tiny_tables):
    """inf passes `amount >= 0` and would poison every sum and mean built on it."""
    tx = tiny_tables["transactions"]
    tx.loc[[2, 9], "amount"] = [float("inf"), float("-inf")]
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("transactions", "amount", 2)
    assert v.problem == "infinite value (must be a finite number)"
    assert v.examples.index.tolist() == [2, 9]


def test_infinite_amount_written_as_text_is_rejected(tiny_tables):
    """What a CSV holds: pandas reads all of these as +-inf."""
    tx = tiny_tables["transactions"]
    tx["amount"] = _as_object(tx["amount"])
    tx.loc[[1, 4, 6, 7], "amount"] = ["inf", "Infinity", "-INF", "1e999"]
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("transactions", "amount", 4)
    assert v.examples["amount"].tolist() == ["inf", "Infinity", "-INF", "1e999"]


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("feedback", "score"),
        ("market", "industry_index"),
        ("market", "competitor_launch"),  # a 0/1 flag: would not even cast to an integer
    ],
)
def test_infinite_value_in_other_numeric_columns_is_rejected(tiny_tables, table, column):
    df = tiny_tables[table]
    df[column] = _as_object(df[column])
    df.loc[3, column] = "inf"
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == (table, column, 1)
    assert v.problem.startswith("infinite value")
    assert v.examples.index.tolist() == [3]


def test_infinite_numeric_customer_attribute_is_rejected(tiny_tables):
    """An extra numeric column (monthly charges) is a model input: inf is never a value."""
    customers = tiny_tables["customers"]
    customers["monthly_charges"] = [f"{20 + i % 50}.5" for i in range(len(customers))]
    customers.loc[[5, 8], "monthly_charges"] = ["inf", "-inf"]
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("customers", "monthly_charges", 2)
    assert v.problem.startswith("infinite value")
    assert v.examples["customer_id"].tolist() == customers.loc[[5, 8], "customer_id"].tolist()


def test_fractional_flag_is_a_violation_not_a_crash(tiny_tables):
    tiny_tables["market"]["competitor_launch"] = tiny_tables["market"]["competitor_launch"].astype(
        float
    )
    tiny_tables["market"].loc[0, "competitor_launch"] = 0.5
    v = _only(tiny_tables)
    assert (v.table, v.column, v.count) == ("market", "competitor_launch", 1)
    assert v.problem == "wrong type: expected 0 or 1"


def _feedback_rows(fb: pd.DataFrame, kind: str, n: int) -> list[int]:
    return fb.index[(fb["kind"] == kind) & fb["score"].notna()][:n].tolist()


def test_scores_outside_their_scale_are_rejected(tiny_tables):
    """NPS is 0..10 and CSAT 1..5: an 11, a -1 or a CSAT of 6 is a broken export, not a fan."""
    fb = tiny_tables["feedback"]
    nps, csat = _feedback_rows(fb, "nps", 2), _feedback_rows(fb, "csat", 2)
    fb.loc[nps, "score"] = [11.0, -1.0]
    fb.loc[csat, "score"] = [0.0, 6.0]
    found = {v.problem: v for v in _violations(tiny_tables)}

    assert set(found) == {"nps score outside 0..10", "csat score outside 1..5"}
    v = found["nps score outside 0..10"]
    assert (v.table, v.column, v.count) == ("feedback", "score", 2)
    assert v.examples.index.tolist() == nps
    assert v.examples["score"].tolist() == [11.0, -1.0]
    assert found["csat score outside 1..5"].examples["score"].tolist() == [0.0, 6.0]


def test_scale_ends_and_missing_scores_are_valid(tiny_tables):
    fb = tiny_tables["feedback"]
    nps, csat = _feedback_rows(fb, "nps", 3), _feedback_rows(fb, "csat", 3)
    fb.loc[nps, "score"] = [0.0, 10.0, float("nan")]
    fb.loc[csat, "score"] = [1.0, 5.0, float("nan")]
    message = fb.index[fb["kind"] == "message"][0]
    fb.loc[message, "score"] = 42.0  # no scale for other kinds
    validate_tables(tiny_tables, **CONTRACT)


def test_score_ranges_come_from_the_caller(tiny_tables):
    """The scales are params (validate.nps_range / csat_range), not constants."""
    fb = tiny_tables["feedback"]
    fb.loc[_feedback_rows(fb, "nps", 1), "score"] = 8.0
    v = _only(tiny_tables, score_ranges={"nps": (0, 5), "csat": (1, 5)})
    assert v.problem == "nps score outside 0..5"
    assert v.count == int(((fb["kind"] == "nps") & (fb["score"] > 5)).sum())


def test_params_yaml_holds_the_standard_scales():
    import yaml

    root = Path(__file__).resolve().parents[2]
    rules = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))["validate"]
    assert (rules["nps_range"], rules["csat_range"]) == ([0, 10], [1, 5])
    assert tuple(rules["nps_range"]) == CONTRACT["score_ranges"]["nps"]
    assert tuple(rules["csat_range"]) == CONTRACT["score_ranges"]["csat"]


def test_cancel_date_before_signup_date_is_rejected(tiny_tables):
    customers = tiny_tables["customers"]
    rows = customers.index[customers["cancel_date"].notna()][:2].tolist()
    customers.loc[rows, "cancel_date"] = customers.loc[rows, "signup_date"] - pd.Timedelta(days=3)
    same_day = customers.index[customers["cancel_date"].notna()][2]
    customers.loc[same_day, "cancel_date"] = customers.loc[same_day, "signup_date"]  # allowed
    v = _only(tiny_tables)

    assert (v.table, v.column, v.count) == ("customers", "cancel_date", 2)
    assert v.problem == "cancel_date before signup_date"
    assert v.examples["customer_id"].tolist() == customers.loc[rows, "customer_id"].tolist()


def test_cancel_before_signup_in_a_flat_table_is_rejected():
    flat = _flat_customers().assign(cancel_date=["2023-12-01", None, None, None, None])
    v = _only({"customers": flat})
    assert (v.table, v.column, v.count) == ("customers", "cancel_date", 1)
    assert v.examples["customer_id"].tolist() == ["A1"]
