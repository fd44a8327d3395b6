"""Column types come from the definitions: the Parquet schema, the dtypes pandas reads back,
which customer attributes are numbers, and the flat mode's rows in the customers' order."""

from __future__ import annotations

import io
import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from churnlight.features.aggregates import relation_types
from churnlight.features.build import build_snapshots
from churnlight.features.columns import (
    CATEGORY,
    INTEGER,
    LABEL,
    NULLABLE_NUMBER,
    NUMBER,
    TEXT,
    TIMESTAMP,
    Column,
    arrow_schema,
    ref,
    snapshot_select,
    source,
)
from churnlight.features.derived import profile_columns

from .helpers import FEATURE_PARAMS


def test_an_empty_file_reads_back_with_the_declared_dtypes():
    types = [TEXT, TIMESTAMP, LABEL, INTEGER, NUMBER, NULLABLE_NUMBER, CATEGORY]
    columns = [Column(f"c{i}", "NULL", t) for i, t in enumerate(types)]
    schema = arrow_schema([*columns, Column("step", "NULL", INTEGER, written=False)])
    assert schema.names == [c.name for c in columns]
    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)
    got = pd.read_parquet(io.BytesIO(buf.getvalue())).dtypes.astype(str).tolist()
    assert got == ["str", "datetime64[us]", "Int8", "int64", "float64", "Float64", "string"]


def test_outputs_that_read_others_are_computed_in_later_layers():
    columns = [
        Column("total", f"{ref('a')} + {ref('b')}", INTEGER),
        Column("a", source("x"), INTEGER),
        Column("b", f"{ref('a')} * 2", INTEGER),
    ]
    sql = snapshot_select(columns, "(SELECT 3 AS x)")
    assert duckdb.sql(sql).fetchall() == [(9, 3, 6)]  # in the definition's order
    with pytest.raises(ValueError, match="cycle"):
        snapshot_select([Column("a", ref("b"), INTEGER), Column("b", ref("a"), INTEGER)])


def test_numeric_attributes_are_those_pandas_calls_numeric():
    frame = pd.DataFrame(
        {
            "customer_id": ["A", "B"],
            "signup_date": pd.to_datetime(["2025-01-01", "2025-02-01"]),
            "seats": [1, 2],
            "nullable_seats": pd.array([1, None], dtype="Int64"),
            "spend": [1.5, np.nan],
            "small": np.array([1, 2], dtype="int8"),
            "vip": [True, False],
            "maybe_vip": pd.array([True, None], dtype="boolean"),
            "plan": ["basic", None],
            "since": pd.to_datetime(["2020-01-01", "2021-01-01"]),
            "churn": ["Yes", "No"],
        }
    )
    con = duckdb.connect()
    con.register("customers", frame)
    got = profile_columns(relation_types(con, "customers"), "churn")
    want = {
        c: bool(pd.api.types.is_numeric_dtype(frame[c]))
        for c in frame.columns
        if c not in ("customer_id", "signup_date", "churn")
    }
    assert got == want


def test_flat_mode_keeps_the_customers_order(tmp_path):
    interim, out = tmp_path / "interim", tmp_path / "out"
    interim.mkdir()
    out.mkdir()
    ids = [f"C{i:03d}" for i in np.random.default_rng(3).permutation(300)]
    customers = pd.DataFrame(
        {
            "customer_id": pd.Series(ids, dtype="string"),
            "seats": np.arange(300, dtype="int64"),
            "plan": pd.Series(["basic", "premium", None] * 100, dtype="string"),
            "churn": pd.array([0, 1, 0] * 100, dtype="Int8"),
        }
    )
    customers.to_parquet(interim / "customers.parquet", index=False, row_group_size=64)
    report = {"mode": "flat", "as_of": "2026-01-31", "families": {"profile": True}}
    summary, registry = build_snapshots(interim, out, report, FEATURE_PARAMS, "churn")
    feats = pd.read_parquet(out / "features.parquet")
    scoring = pd.read_parquet(out / "scoring.parquet")
    assert list(feats["customer_id"]) == ids
    stayed = customers["churn"].eq(0).to_numpy()
    assert list(scoring["customer_id"]) == [i for i, s in zip(ids, stayed, strict=True) if s]
    assert feats["seats"].tolist() == list(range(300)) and feats["seats"].dtype == "float64"
    assert (feats["cutoff"] == pd.Timestamp("2026-02-01")).all()
    assert feats["rule_colour"].eq("green").all() and feats["rule_score"].eq(0.0).all()
    assert list(registry["name"]) == ["seats", "plan"]
    assert json.loads(json.dumps(summary))["churn_rate"] == pytest.approx(1 / 3)
