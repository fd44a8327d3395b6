"""The SQL definition of the snapshot columns equals the pandas reference, as a property over
random aggregates.

The library defines every derived feature, signal and the three-colour rule once, in SQL
(`event_columns`). `reference_derivation` restates them in pandas. Random aggregate rows, typed
exactly as the aggregation SQL types them, go through both: the SQL as the stage runs it (the
snapshot SELECT, written to Parquet with the declared schema), the reference as pandas computes
it; pandas must read back the same values. Times fall on and around the edges that matter
(cutoff, 30/90/365 days before it, one microsecond either side), counts and amounts on the
thresholds of params.yaml, and any of them may be missing, as when a customer has no events.
"""

from __future__ import annotations

import functools
import io

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnlight.features.aggregates import aggregate_select, prepare
from churnlight.features.columns import arrow_schema, snapshot_select
from churnlight.features.derived import event_columns
from churnlight.features.ranges import ROW_ORDER

from .helpers import CFG, DATA_END, LEXICON, connect, customers
from .reference_derivation import aggregate_frame, aggregate_types, finish_rows

BOUNDED = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the project
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CUTOFFS = [pd.Timestamp("2026-01-01"), pd.Timestamp("2025-03-01 12:34:56.789012")]
US = pd.Timedelta(microseconds=1)
IDS = ["A", "B", "C"]
PROFILE = {"plan": False, "seats": True}
TABLES = ("activity", "transactions", "feedback", "market")


@functools.cache
def aggregate_columns() -> dict[str, str]:
    """Name -> DuckDB type of every aggregate column (with the profile and the market)."""
    cust = customers(["A"]).assign(plan="basic", seats=1.0)
    con = connect({"customers": cust})
    try:
        has_geo = prepare(con, {"customers"}, CUTOFFS[:1], DATA_END, LEXICON)
        sql = aggregate_select(con, CFG, has_geo, profile=tuple(PROFILE))
        types = aggregate_types(con, sql)
        return {
            **types,
            **{f"profile:{c}": t for c, t in zip(PROFILE, ("VARCHAR", "DOUBLE"), strict=True)},
        }
    finally:
        con.close()


def moments(cutoff: pd.Timestamp):
    """A time on an edge before the cutoff (or on it), or anywhere in the two years before."""
    days = (0, 30, 30.44 * 2, 30.44 * 3, 90, 91, 120, 180, 365, 400)
    edges = [cutoff - pd.Timedelta(days=d) for d in days]
    return st.one_of(
        st.builds(lambda a, j: a + j * US, st.sampled_from(edges), st.sampled_from([-1, 0, 1])),
        st.integers(1, 730 * 86400 * 10**6).map(lambda us: cutoff - pd.Timedelta(us, "us")),
    )


def value(draw, name: str, sql_type: str, cutoff: pd.Timestamp):
    """A value of the aggregate `name`, or None (missing) now and then."""
    if name == "customer_id" or name == "cutoff":
        raise AssertionError("keys are drawn by the row")
    if name == "start_ts":
        return draw(moments(cutoff).filter(lambda t: t < cutoff))
    if name == "label":
        return draw(st.sampled_from([0, 1, None]))
    if draw(st.integers(0, 5)) == 0:
        return None
    if sql_type == "TIMESTAMP":
        return draw(moments(cutoff))
    if sql_type == "DOUBLE[]":
        return draw(st.lists(st.sampled_from([0.0, 3.0, 5.0, 6.0, 7.0, 9.0, 10.0]), max_size=2))
    if sql_type in ("BIGINT", "INTEGER", "HUGEINT"):
        return draw(st.one_of(st.integers(0, 3), st.integers(0, 60)))
    # DOUBLE: amounts, scores, index changes and ages on and around their thresholds
    edges = [0.0, 1.0, 3.0, 1000.0, 5000.0, 10000.0, 30000.0, 50000.0, -0.05, -0.2, 0.02]
    return draw(st.one_of(st.sampled_from(edges), st.floats(-1.0, 60000.0, allow_nan=False)))


@st.composite
def aggregate_rows(draw) -> tuple[list[dict], pd.DataFrame]:
    """Aggregate rows, and the customers table their profile columns come from."""
    plans = st.sampled_from(["basic", "premium", None])
    seats = st.one_of(st.none(), st.integers(0, 50).map(float))
    cust = pd.DataFrame(
        {
            "customer_id": pd.Series(IDS, dtype="str"),
            "plan": [draw(plans) for _ in IDS],
            "seats": pd.Series([draw(seats) for _ in IDS], dtype="float64"),
        }
    )
    keys = draw(
        st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(CUTOFFS)), max_size=8, unique=True)
    )
    rows = []
    for cid, cutoff in keys:
        row = {"customer_id": cid, "cutoff": cutoff}
        for name, sql_type in aggregate_columns().items():
            if name.startswith("profile:"):
                attribute = cust.set_index("customer_id").loc[cid, name.removeprefix("profile:")]
                row[name] = None if pd.isna(attribute) else attribute
            elif name not in row:
                row[name] = value(draw, name, sql_type, cutoff)
        rows.append(row)
    return rows, cust


def _frame_through_parquet(table, schema) -> pd.DataFrame:
    buf = io.BytesIO()
    pq.write_table(table.cast(schema), buf)
    return pd.read_parquet(io.BytesIO(buf.getvalue()))


def both(
    rows: list[dict], cust: pd.DataFrame, tables: dict[str, bool]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the SQL definition's rows, the reference's rows) for the aggregate `rows` of the
    customers `cust`."""
    types = aggregate_columns()
    con = duckdb.connect()
    try:
        columns = ", ".join(f'"{c}" {t}' for c, t in types.items())
        con.execute(f"CREATE TABLE agg ({columns})")
        marks = ", ".join("?" for _ in types)
        if rows:
            con.executemany(f"INSERT INTO agg VALUES ({marks})", [list(r.values()) for r in rows])
        definition = event_columns(CFG, tables, PROFILE)
        schema = arrow_schema(definition)
        sql = snapshot_select(definition, "agg", ROW_ORDER)
        got = _frame_through_parquet(con.sql(sql).to_arrow_table(), schema)
        agg = aggregate_frame(con, "SELECT * FROM agg")
    finally:
        con.close()
    want = finish_rows(agg, CFG, tables, cust, PROFILE)
    # the stage's row order, and the declared dtypes (pandas' own depend on the values)
    want = want.sort_values(["label", "customer_id", "cutoff"], key=_nulls_last, ignore_index=True)
    want = want.astype({c.name: c.type.pandas for c in definition if c.written})
    return got, _frame_through_parquet(pa.Table.from_pandas(want, preserve_index=False), schema)


def _nulls_last(col: pd.Series) -> pd.Series:
    return col.isna() if col.name == "label" else col


@BOUNDED
@given(drawn=aggregate_rows(), present=st.lists(st.booleans(), min_size=4, max_size=4))
def test_the_sql_definition_equals_the_pandas_reference(drawn, present):
    tables = dict(zip(TABLES, present, strict=True))
    got, want = both(*drawn, tables)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_every_column_is_compared():
    cust = pd.DataFrame({"customer_id": pd.Series(IDS, dtype="str"), "plan": None, "seats": 1.0})
    got, want = both([], cust, dict.fromkeys(TABLES, True))
    assert list(got.columns) == list(want.columns)
    assert len(got.columns) == 93  # the default world's 97, with 2 attributes instead of 6
