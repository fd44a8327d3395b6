"""Column roles guessed from names (English, Chinese) and values; the mapping applied as written:
YAML's unquoted Yes/No, blank numbers, derived amounts, rows left out, errors that name things."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from churnlight.features.contract import ALL_TABLES
from churnlight.features.inspect import guess_column, inspect_files, mapping_dict, mapping_yaml
from churnlight.features.mapping import MappingError, apply_mapping, parse_mapping, to_number


@pytest.mark.parametrize(
    ("name", "values", "role"),
    [
        ("客户编号", ["KH1", "KH2", "KH1"], "customer_id"),
        ("CustomerID", ["12346", "12347", ""], "customer_id"),
        ("交易时间", ["2025-01-03 10:00:00", "2025-02-01 11:30:00"], "timestamp"),
        ("InvoiceDate", ["12/1/2010 8:26", "12/1/2010 9:01"], "timestamp"),
        ("金额", ["12.5", "3"], "amount"),
        ("是否流失", ["是", "否", "否"], "label"),
        ("Churn", ["Yes", "No"], "label"),
        ("满意度", ["1", "5", "3"], "score"),
        ("备注", ["价格太高，考虑换供应商", "服务很好"], "text"),
        ("Quantity", ["6", "-2"], "quantity"),
        ("UnitPrice", ["2.55", "3.39"], "unit_price"),
        ("exited_flag", ["yes", "no"], "label"),  # by values alone
        ("SeniorCitizen", ["0", "1", "0"], "number"),  # a 0/1 flag is no label by values
        ("signup", ["2024/01/02", "2024/03/04"], "signup_date"),
    ],
)
def test_roles(name, values, role):
    assert guess_column(name, pd.Series(values)).role == role


def test_a_name_whose_values_do_not_fit_is_doubted():
    guess = guess_column("金额", pd.Series(["a lot", "little"]))
    assert guess.role == "amount" and guess.confidence < 0.5 and "check" in guess.note


def _files() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {"客户编号": ["A", "B", "C"], "性别": ["男", "女", "男"], "是否流失": ["是", "否", "否"]}
    )
    logins = pd.DataFrame(
        {
            "客户编号": ["A", "A", "B", "C"],
            "时间": ["2025-01-01", "2025-01-02", "2025-01-05", "2025-02-01"],
            "行为": ["登录", "浏览", "登录", "下载"],
        }
    )
    return {"客户.xlsx": customers, "行为.csv": logins}


def test_an_event_log_of_actions_becomes_activity_with_its_words_mapped():
    guesses = inspect_files(_files())
    spec = mapping_dict(guesses)["tables"]
    assert spec["activity"]["values"]["event_type"] == {"登录": "login", "浏览": "visit"}
    assert "是否流失" not in spec["customers"]["columns"].values()  # events: the label would leak
    text = mapping_yaml(guesses, "export")
    assert "下载" in text  # an event type the features do not know is pointed out
    assert yaml.safe_load(text) == mapping_dict(guesses)  # the comments change nothing


def test_the_written_yaml_round_trips_and_applies():
    guesses = inspect_files(_files())
    spec = parse_mapping(yaml.safe_load(mapping_yaml(guesses, "x")), "x", ALL_TABLES)
    tables, report = apply_mapping(_files(), spec)
    assert list(tables["activity"]["event_type"]) == ["login", "visit", "login", "下载"]
    assert list(tables["customers"].columns) == ["customer_id", "gender"]
    assert report["activity"]["file"] == "行为.csv"


def test_unquoted_yes_no_keys_still_map_the_label():
    raw = yaml.safe_load(
        "tables:\n  customers:\n    file: t.csv\n    columns: {customer_id: id, churn: Churn}\n"
        "    values:\n      churn: {Yes: 1, No: 0}\n"
    )
    assert True in raw["tables"]["customers"]["values"]["churn"]  # YAML 1.1 read it as a bool
    files = {"t.csv": pd.DataFrame({"id": ["a", "b"], "Churn": ["Yes", "no"]})}
    tables, _ = apply_mapping(files, parse_mapping(raw, "m.yaml", ALL_TABLES))
    assert list(tables["customers"]["churn"]) == [1, 0]


def test_derived_amount_and_rows_left_out():
    raw = {
        "tables": {
            "transactions": {
                "file": "inv.csv",
                "columns": {
                    "customer_id": "cid",
                    "ts": "when",
                    "amount": {"multiply": ["qty", "price"]},
                },
                "drop_missing": ["customer_id"],
                "drop_negative": ["amount"],
            }
        }
    }
    inv = pd.DataFrame(
        {
            "cid": ["1", "", "2", "3"],
            "when": ["2025-01-01"] * 4,
            "qty": ["2", "1", "-1", "1,000"],
            "price": ["1.5", "2", "3", "$0.5"],
        }
    )
    tables, report = apply_mapping({"inv.csv": inv}, parse_mapping(raw, "m", ALL_TABLES))
    assert list(tables["transactions"]["amount"]) == [3.0, 500.0]
    assert report["transactions"]["rows_left_out"] == {
        "missing customer_id": 1,
        "negative amount": 1,
    }
    assert list(inv["qty"]) == ["2", "1", "-1", "1,000"]  # the input is not changed


def test_to_number_reads_blanks_as_missing_and_words_as_not_numbers():
    out = to_number(pd.Series([" ", "1,234.5", "¥12", "n/a", None]))
    assert out.iloc[1] == 1234.5 and out.iloc[2] == 12
    assert out.isna().tolist() == [True, False, False, True, True]


def test_every_shape_problem_is_named_at_once():
    raw = {
        "tables": {
            "transactions": {"file": "a.csv", "columns": {"ts": {"divide": ["a", "b"]}}},
            "orders": {"file": "b.csv", "columns": {"x": "y"}},
            "customers": {"file": "a.csv", "columns": {"customer_id": "id"}, "types": {"z": "n"}},
        }
    }
    with pytest.raises(MappingError) as err:
        parse_mapping(raw, "exports/mapping.yaml", ALL_TABLES)
    msg = str(err.value)
    assert msg.startswith("mapping exports/mapping.yaml does not fit")
    assert "table transactions, column ts: expected a source column name" in msg
    assert "table orders: not a contract table" in msg
    assert "table customers: file a.csv is already table transactions" in msg
    assert "table customers, column z: type 'n' unknown" in msg
