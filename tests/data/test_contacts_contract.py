"""The optional `contacts` table (issue 14): validated like every table, always written to
interim (empty when absent), and never read by the features."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnlight.features.contract import (
    CONTACT_COLUMNS,
    ContractError,
    contacts_frame,
    validate_tables,
)
from churnlight.features.synthetic import World
from churnlight.pipelines.validate import validate_folder

CONTRACT = {
    "label_column": "churn",
    "max_examples": 5,
    "score_ranges": {"nps": (0, 10), "csat": (1, 5)},
}
ROOT = Path(__file__).resolve().parents[2]


def _tables(world: World) -> dict[str, pd.DataFrame]:
    return {name: df.copy() for name, df in world.raw_tables().items()}


def _contacts_as_csv(contacts: pd.DataFrame) -> pd.DataFrame:
    """The log as a user's CSV would arrive: every value text."""
    return contacts.astype(str).astype(object)


def test_the_tiny_world_logs_contacts(tiny_world):
    assert tiny_world.contacts is not None and len(tiny_world.contacts) > 0
    assert list(tiny_world.contacts.columns) == list(CONTACT_COLUMNS)


def test_good_contacts_pass_typed_with_every_column(tiny_world):
    tables = _tables(tiny_world)
    tables["contacts"] = _contacts_as_csv(tables["contacts"]).drop(columns=["cost", "owner"])
    data = validate_tables(tables, **CONTRACT)
    got = data.tables["contacts"]
    assert len(got) == len(tiny_world.contacts)
    assert {c: str(got[c].dtype) for c in CONTACT_COLUMNS} == CONTACT_COLUMNS
    assert got["cost"].isna().all() and got["owner"].isna().all()  # optional, absent
    assert (got["ts"] == tiny_world.contacts["ts"].astype("datetime64[ms]")).all()
    assert data.report["rows"]["contacts"] == len(got)
    assert "contacts" not in data.report["tables_missing"]


def test_without_contacts_an_empty_log_with_every_column(tiny_world):
    tables = _tables(tiny_world)
    del tables["contacts"]
    data = validate_tables(tables, **CONTRACT)
    got = data.tables["contacts"]
    assert got.empty
    assert {c: str(got[c].dtype) for c in got.columns} == CONTACT_COLUMNS
    # the report reads as before contacts existed
    assert "contacts" not in data.report["rows"]
    assert data.report["tables_missing"] == []
    assert set(data.report["families"]) == {"behaviour", "attitude", "external", "profile"}


def test_a_header_only_log_is_no_contacts(tiny_world):
    tables = _tables(tiny_world)
    tables["contacts"] = tables["contacts"].head(0)
    assert validate_tables(tables, **CONTRACT).tables["contacts"].empty


def _break(contacts: pd.DataFrame, column: str, value: object, rows: int = 3) -> pd.DataFrame:
    bad = _contacts_as_csv(contacts)
    bad.loc[bad.index[:rows], column] = value
    return bad


BAD = {
    "kind": ("churn-call", "kind"),
    "group": ("holdout", "group"),
    "cost": ("-5.0", "failed check greater_than_or_equal_to"),
    "ts": ("next tuesday", "unparseable date"),
    "customer_id": ("C9999999", "unknown customers"),
}


@pytest.mark.parametrize("column", sorted(BAD))
def test_bad_contacts_name_table_column_and_rows(tiny_world, column):
    value, words = BAD[column]
    tables = _tables(tiny_world)
    tables["contacts"] = _break(tables["contacts"], column, value)
    with pytest.raises(ContractError) as info:
        validate_tables(tables, **CONTRACT)
    found = info.value.violations
    assert len(found) == 1, [str(v) for v in found]
    v = found[0]
    assert (v.table, v.column, v.count) == ("contacts", column, 3)
    assert words in v.problem or words in str(v)
    assert len(v.examples) == 3 and (v.examples[column].astype(str) == value).all()
    assert "[contacts." + column + "]" in str(info.value)


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e999"])
def test_infinite_cost_is_rejected(tiny_world, value):
    tables = _tables(tiny_world)
    tables["contacts"] = _break(tables["contacts"], "cost", value, rows=2)
    with pytest.raises(ContractError) as info:
        validate_tables(tables, **CONTRACT)
    (v,) = info.value.violations
    assert (v.table, v.column, v.count) == ("contacts", "cost", 2)
    assert "infinite" in v.problem


@pytest.mark.parametrize("column", ["customer_id", "ts", "campaign_id", "kind", "group"])
def test_missing_required_contact_column(tiny_world, column):
    tables = _tables(tiny_world)
    tables["contacts"] = tables["contacts"].drop(columns=[column])
    with pytest.raises(ContractError) as info:
        validate_tables(tables, **CONTRACT)
    (v,) = info.value.violations
    assert (v.table, v.column) == ("contacts", column)
    assert v.problem.startswith("missing column")


def test_contacts_checked_against_event_ids_without_customers(tiny_world):
    tables = _tables(tiny_world)
    del tables["customers"]
    tables["contacts"] = _break(tables["contacts"], "customer_id", "C9999999", rows=1)
    with pytest.raises(ContractError) as info:
        validate_tables(tables, **CONTRACT)
    (v,) = info.value.violations
    assert (v.table, v.column, v.count) == ("contacts", "customer_id", 1)


def test_bad_contacts_write_nothing(tmp_path, tiny_world):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, df in _tables(tiny_world).items():
        if name == "contacts":
            df = _break(df, "group", "maybe")
        df.to_csv(raw / f"{name}.csv", index=False)
    out = tmp_path / "interim"
    with pytest.raises(ContractError, match=re.escape("[contacts.group]")):
        validate_folder(raw, out, "2026-06-30", "churn", "utf-8", _rules())
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_validate_always_writes_the_contact_log(tmp_path, tiny_world):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, df in _tables(tiny_world).items():
        if name != "contacts":
            df.to_csv(raw / f"{name}.csv", index=False)
    out = tmp_path / "interim"
    validate_folder(raw, out, "2026-06-30", "churn", "utf-8", _rules())
    got = pd.read_parquet(out / "contacts.parquet")
    assert got.empty and list(got.columns) == list(CONTACT_COLUMNS)
    assert str(got["ts"].dtype) == "datetime64[ms]" and str(got["cost"].dtype) == "float64"


def test_contacts_frame_keeps_extra_columns_after_the_interface():
    log = pd.DataFrame(
        {
            "customer_id": ["a"],
            "ts": pd.to_datetime(["2025-01-01"]).astype("datetime64[ms]"),
            "campaign_id": ["x"],
            "kind": ["retention"],
            "group": ["control"],
            "note": ["vip"],
        }
    )
    got = contacts_frame(log)
    assert list(got.columns) == [*CONTACT_COLUMNS, "note"]
    assert np.isnan(got["cost"].iloc[0]) and pd.isna(got["action"].iloc[0])


def test_features_never_read_the_contact_log():
    """A contact changes behaviour; it is not a signal of it. Only the contract (and its
    part-wise check) names the table among the feature code (the synthetic world writes it)."""
    readers = [
        p.relative_to(ROOT)
        for p in sorted((ROOT / "features").glob("*.py"))
        if "contacts" in p.read_text(encoding="utf-8")
        and p.name not in ("contract.py", "contract_parts.py")
    ]
    assert readers == []
    from churnlight.features.build import FEATURE_TABLES

    assert "contacts" not in FEATURE_TABLES


def _rules():
    from churnlight.features.params import ValidateParams

    return ValidateParams(max_examples=5, nps_range=(0, 10), csat_range=(1, 5), part_rows=1000)
