"""Validation a part at a time (`validate.part_rows`): what a large export needs to fit in
memory. The typed tables, the report and every violation (counts, examples) must be those of
the whole-table check, whatever the part size and whether the file is CSV or Parquet."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from churnlight.features.contract import ContractError, validate_tables
from churnlight.features.params import ValidateParams
from churnlight.pipelines.validate import validate_folder

CONTRACT = {
    "label_column": "churn",
    "max_examples": 5,
    "score_ranges": {"nps": (0, 10), "csat": (1, 5)},
}
AS_OF = "2026-06-30"


def _rules(part_rows: int) -> ValidateParams:
    return ValidateParams(max_examples=5, nps_range=(0, 10), csat_range=(1, 5), part_rows=part_rows)


def _write(tables: dict[str, pd.DataFrame], folder, fmt: str) -> None:
    folder.mkdir()
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False, row_group_size=97)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_parts_give_the_whole_tables_and_report(tmp_path, tiny_tables, fmt):
    raw = tmp_path / "raw"
    _write(tiny_tables, raw, fmt)
    whole = validate_folder(raw, tmp_path / "whole", AS_OF, "churn", "utf-8", _rules(10**9))
    parts = validate_folder(raw, tmp_path / "parts", AS_OF, "churn", "utf-8", _rules(333))
    assert len(tiny_tables["activity"]) > 10 * 333  # many parts
    assert parts.report == whole.report
    saved = json.loads((tmp_path / "parts" / "contract_report.json").read_text())
    assert saved == json.loads((tmp_path / "whole" / "contract_report.json").read_text())
    for name in whole.tables:
        got = pd.read_parquet(tmp_path / "parts" / f"{name}.parquet")
        want = pd.read_parquet(tmp_path / "whole" / f"{name}.parquet")
        pd.testing.assert_frame_equal(got, want)
    if fmt == "csv":  # the in-memory check of the same tables: the same typed tables
        from churnlight.pipelines.common import read_raw_folder

        mem = validate_tables(read_raw_folder(raw, encoding="utf-8"), as_of=AS_OF, **CONTRACT)
        assert mem.report == whole.report
        for name, df in mem.tables.items():
            want = pd.read_parquet(tmp_path / "whole" / f"{name}.parquet")
            pd.testing.assert_frame_equal(df.reset_index(drop=True), want, check_dtype=False)


def _broken(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Problems spread over the activity table (many parts) and one in transactions."""
    act = tables["activity"].copy()
    rows = np.arange(5, len(act), 401)
    act.loc[rows, "customer_id"] = "NOBODY"
    act.loc[rows[::2], "event_type"] = ""
    tx = tables["transactions"].copy()
    tx.loc[[3, len(tx) - 2], "amount"] = -1.0
    return {**tables, "activity": act, "transactions": tx}


def test_violations_over_parts_are_the_whole_tables(tmp_path, tiny_tables):
    tables = dict(sorted(_broken(tiny_tables).items()))  # a folder gives them in name order
    with pytest.raises(ContractError) as whole:
        validate_tables(tables, as_of=AS_OF, **CONTRACT)
    raw = tmp_path / "raw"
    _write(tables, raw, "parquet")
    with pytest.raises(ContractError) as parts:
        validate_folder(raw, tmp_path / "out", AS_OF, "churn", "utf-8", _rules(250))
    assert not (tmp_path / "out").exists()
    got, want = parts.value.violations, whole.value.violations
    assert [(v.table, v.column, v.problem, v.count) for v in got] == [
        (v.table, v.column, v.problem, v.count) for v in want
    ]
    assert any(v.count > 1 and v.table == "activity" for v in want)
    for g, w in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(g.examples, w.examples, check_dtype=False)


def test_an_untypable_part_fails_the_table_with_its_typing_problems_only(tmp_path, tiny_tables):
    act = tiny_tables["activity"].astype({"ts": str})
    act.loc[len(act) - 3, "ts"] = "not a date"
    act.loc[7, "event_type"] = ""  # a value rule broken in an earlier part: not reported
    raw = tmp_path / "raw"
    _write({**tiny_tables, "activity": act}, raw, "csv")
    match = re.escape("[activity.ts] unparseable date: 1 row")
    with pytest.raises(ContractError, match=match) as parts:
        validate_folder(raw, tmp_path / "out", AS_OF, "churn", "utf-8", _rules(200))
    with pytest.raises(ContractError) as whole:
        validate_tables({**tiny_tables, "activity": act}, as_of=AS_OF, **CONTRACT)
    assert [(v.table, v.column) for v in whole.value.violations] == [("activity", "ts")]
    assert [str(v) for v in parts.value.violations] == [str(v) for v in whole.value.violations]
