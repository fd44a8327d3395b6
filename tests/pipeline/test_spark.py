"""The Spark engine (issue 18) writes the DuckDB engine's files: same rows, same values.

The feature stage runs on one small world with `features.engine: duckdb` and `spark`; the
files must hold the same rows in the same order, exactly the same keys, counts, labels and
categories, floats within 1e-9 relative, and the same Parquet schema. The dialect traps are
then checked one at a time on values chosen to hit them: each expression is run by DuckDB and
by Spark (through `to_spark`) and must give DuckDB's answer, which is the definition's.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import SPARK_TEST_CONF, SPARK_TEST_MASTER, spark_available

from churnlight.features.params import parse_params
from churnlight.features.snapshots import snapshot_differences
from churnlight.pipelines.common import Layout, run_stage

pytestmark = pytest.mark.skipif(spark_available() is not None, reason=str(spark_available()))

FILES = ("features.parquet", "scoring.parquet")


@pytest.fixture(scope="module")
def world(tmp_path_factory, make_pipeline_params, run_stages) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("spark-world")
    params = make_pipeline_params()
    paths = run_stages(root, params, ("generate", "validate"))
    return paths["interim"], params


def run_features(
    interim: Path, root: Path, params: dict, engine: str, master: str = SPARK_TEST_MASTER, **kw
) -> Path:
    """The features stage on `interim` with `engine` (and `kw` in `features`) in `root`; the
    processed folder."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "interim").symlink_to(interim.resolve())
    params = json.loads(json.dumps(params))
    params["features"].update(engine=engine, **kw)
    params["spark"] = {"master": master, "conf": dict(SPARK_TEST_CONF)}
    run_stage("features", Layout(root), parse_params(params))
    return root / "data" / "processed"


def _close(x, y) -> bool:
    """The reports' values equal, floats (the BTYD fits) within 1e-9 relative."""
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(map(_close, x, y))
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-9)
    return x == y


@pytest.fixture(scope="module")
def duckdb_files(world, tmp_path_factory) -> Path:
    interim, params = world
    return run_features(interim, tmp_path_factory.mktemp("duck"), params, "duckdb")


@pytest.mark.slow
def test_spark_writes_the_duckdb_engines_files(world, duckdb_files, spark, tmp_path):
    interim, params = world
    processed = run_features(interim, tmp_path, params, "spark")
    assert snapshot_differences(duckdb_files, processed) == {f: [] for f in FILES}
    assert len(pd.read_parquet(processed / FILES[0])) > 1000  # not vacuous: a real world
    reports = [
        json.loads((p / "features_report.json").read_text()) for p in (duckdb_files, processed)
    ]
    assert _close(*reports)
    assert reports[0]["btyd_fits"]  # the BTYD pass ran on both
    registry = [pd.read_csv(p / "feature_registry.csv") for p in (duckdb_files, processed)]
    pd.testing.assert_frame_equal(*registry)
    # the comparison sees a float off by 1e-6 and a count off by one
    changed = pd.read_parquet(processed / FILES[1])
    changed.loc[3, "tenure_days"] *= 1 + 1e-6
    changed.loc[5, "complaints_365d"] += 1
    changed.to_parquet(processed / FILES[1], index=False)
    found = snapshot_differences(duckdb_files, processed)[FILES[1]]
    assert [p for p in found if p != "schema"] == [("tenure_days", 1), ("complaints_365d", 1)]


@pytest.mark.slow
def test_spark_follows_the_inactivity_churn_definition(world, spark, tmp_path):
    """The other spine and label (EXISTS over the customer's own events)."""
    interim, params = world
    settings = {"churn_definition": "inactivity", "btyd": {**params["features"]["btyd"]}}
    settings["btyd"]["enabled"] = False
    duck = run_features(interim, tmp_path / "duck", params, "duckdb", **settings)
    on_spark = run_features(interim, tmp_path / "spark", params, "spark", **settings)
    assert snapshot_differences(duck, on_spark) == {f: [] for f in FILES}


# --- the traps, one at a time ------------------------------------------------------------------


def _both(spark, sql: str, tables: dict[str, pd.DataFrame]) -> tuple[list, list]:
    """The rows of `sql` (DuckDB's dialect) from DuckDB and from Spark on the same `tables`."""
    import duckdb

    from churnlight.features.spark import SparkConnection

    duck = duckdb.connect()
    con = SparkConnection(spark)
    try:
        for name, frame in tables.items():
            duck.register(name, frame)
            con.register(name, frame)
            con.local_tables.discard(name)  # run by Spark, not by the driver's DuckDB
        return duck.execute(sql).fetchall(), con.execute(sql).fetchall()
    finally:
        con.close()
        duck.close()


T = pd.Timestamp


@pytest.mark.parametrize(
    ("what", "sql", "rows"),
    [
        (
            # boundaries (DuckDB) vs elapsed units (Spark's datediff): 1.5 s crosses 2 seconds
            "date_diff by second counts boundaries",
            "SELECT date_diff('second', a, b), date_diff('day', a, b) FROM t",
            {"a": [T("2025-01-01 23:59:59.5")], "b": [T("2025-01-02 00:00:01")]},
        ),
        (
            "date_diff by microsecond, before 1970 too",
            "SELECT date_diff('microsecond', a, b), date_diff('second', b, a) FROM t",
            {"a": [T("1969-12-31 23:59:59.25")], "b": [T("2025-03-01 12:00:00.000001")]},
        ),
        (
            # a decimal literal: Spark divides DECIMALs as DECIMALs, rounded
            "a decimal literal divides as a double",
            "SELECT date_diff('second', a, b) / 86400.0, n / 3, n % 3 FROM t",
            {"a": [T("2025-01-01")], "b": [T("2025-01-01 00:00:05")], "n": [-7]},
        ),
        (
            "a list index past the end is NULL",
            "SELECT max_by(x, k, 2)[1], max_by(x, k, 2)[2] FROM t",
            {"k": [T("2025-01-01")], "x": [3.0]},
        ),
        (
            "the n largest keys, largest first",
            "SELECT max_by(x, k, 2) FILTER (WHERE x IS NOT NULL) FROM t",
            {"k": [T(f"2025-01-0{i}") for i in range(1, 5)], "x": [1.0, 9.0, None, 4.0]},
        ),
        (
            # the filter is fixed too: hours counted by boundaries, not elapsed (2 h 50 min is 3)
            "the n largest keys under a filter that needs a fix",
            "SELECT max_by(x, k, 3) FILTER (WHERE date_diff('hour', k, TIMESTAMP "
            "'2025-01-01 03:20:00') <= 2) FROM t",
            {
                "k": [T("2025-01-01 00:30"), T("2025-01-01 01:10"), T("2025-01-01 02:50")],
                "x": [1.0, 2.0, 3.0],
            },
        ),
        (
            "the n largest keys of no row",
            "SELECT max_by(x, k, 2) FILTER (WHERE x > 100), max_by(x, k, 3) FROM t WHERE x < 0",
            {"k": [T("2025-01-01")], "x": [1.0]},
        ),
        (
            # the order of a float sum changes its last bits: ordered, both add the same way
            "an ordered float sum",
            "SELECT sum(x ORDER BY x) FROM t",
            {"x": [1e16, 1.0, -1e16, 3.3, 1e-3, 2.2]},
        ),
        (
            # RE2's \b is ASCII; Java's also sees CJK letters as word characters
            "a whole-word match next to Chinese text",
            "SELECT regexp_matches(lower(s), '\\b(?:rival)\\b') FROM t ORDER BY s",
            {"s": ["用rival的", "arrival", "Rival offer", "rivals"]},
        ),
        (
            "NULLs last in ORDER BY, as DuckDB",
            "SELECT x FROM t ORDER BY x",
            {"x": [2.0, None, 1.0]},
        ),
        (
            "greatest and least skip NULLs",
            "SELECT greatest(a, b), least(a, b) FROM t",
            {"a": [T("2025-01-01"), None], "b": [None, None]},
        ),
        (
            "interval arithmetic on wall-clock times (no time zone, no DST)",
            "SELECT k - INTERVAL 90 DAY, k + INTERVAL 1 MONTH, CAST(k AS DATE) FROM t",
            {"k": [T("2025-03-30 01:30:00"), T("2025-01-31")]},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith("SELECT") else None,
)
def test_a_dialect_trap_gives_duckdbs_answer(spark, what, sql, rows):
    duck, on_spark = _both(spark, sql, {"t": pd.DataFrame(rows)})
    assert _normalise(on_spark) == _normalise(duck), what


def _normalise(rows: list[tuple]) -> list[tuple]:
    """Engine-neutral values: datetimes naive, numbers as floats, lists as tuples."""

    def one(v):
        if isinstance(v, dt.datetime):
            return v.replace(tzinfo=None)
        if isinstance(v, bool):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, list):
            return tuple(one(x) for x in v)
        if hasattr(v, "__float__"):  # Decimal
            return float(v)
        return v

    return [tuple(one(v) for v in r) for r in rows]


def test_a_frame_without_its_order_by_has_the_same_rows_unsorted(spark):
    """The feature stage computes the final select unsorted (the driver orders the rows as it
    streams them, `_write_rows`): `frame(ordered=False)` must drop the select's own ORDER BY (a
    range shuffle of every row), nothing else."""
    from churnlight.features.spark import SparkConnection

    con = SparkConnection(spark)
    try:
        con.register("t", pd.DataFrame({"k": [3, 1, 2, 5, 4], "v": [1.5, 2.5, None, 4.0, 0.5]}))
        con.local_tables.discard("t")
        sql = "WITH a AS (SELECT k, v FROM t WHERE k > 1) SELECT k, v * 2 AS w FROM a"
        sql += " ORDER BY k DESC"
        ordered = [tuple(r) for r in con.frame(sql).collect()]
        loose = con.frame(sql, ordered=False)
        plan = loose._jdf.queryExecution().optimizedPlan().toString()
        assert [k for k, _ in ordered] == [5, 4, 3, 2]
        assert "Sort [" not in plan
        assert sorted(tuple(r) for r in loose.collect()) == sorted(ordered)
    finally:
        con.close()


def test_a_dropped_or_replaced_table_frees_its_checkpoint(spark):
    """A table is a local checkpoint, whose blocks `DataFrame.unpersist` does not free: a
    dropped or replaced table must give its memory back (else every table of the pass stays
    in the block manager to the end), and an insert must keep what its union still reads."""
    from churnlight.features.spark import SparkConnection

    def held() -> set[int]:
        return {int(i) for i in spark.sparkContext._jsc.getPersistentRDDs().keySet()}

    con = SparkConnection(spark)
    try:
        con.register("t", pd.DataFrame({"k": [1, 2, 3]}))
        con.local_tables.discard("t")
        start = held()
        con.execute("CREATE TABLE a AS SELECT k FROM t")
        first = held() - start
        assert len(first) == 1 and con.blocks["a"] == first
        con.execute("CREATE OR REPLACE TABLE a AS SELECT k * 10 AS k FROM t")
        second = held() - start
        assert len(second) == 1 and not second & first  # the first table's blocks are gone
        con.execute("CREATE TABLE b AS SELECT k FROM t WHERE k > 1")
        con.execute("INSERT INTO a SELECT k FROM b")  # a's rows are still read by the union
        assert second < con.blocks["a"] <= held()  # and b's rows, kept apart from b's table
        con.execute("DROP TABLE b")
        assert sorted(r[0] for r in con.execute("SELECT k FROM a").fetchall()) == [2, 3, 10, 20, 30]
        con.execute("INSERT INTO a VALUES (7)")  # computed already: nothing more to keep
        assert sorted(r[0] for r in con.execute("SELECT k FROM a").fetchall()) == [
            2,
            3,
            7,
            10,
            20,
            30,
        ]
        con.execute("DROP TABLE a")
        assert held() == start
    finally:
        con.close()


def test_the_btyd_pass_on_spark_gives_duckdbs_fits_and_scores(spark):
    """The Spark pass (`score_cutoffs_spark`: each cutoff fitted in a Python worker) and DuckDB's
    (`btyd.score_cutoffs`) on one purchase log: the same fitted parameters and scores, bit for
    bit, and the same list of fits, a cutoff before anyone's first purchase included."""
    import duckdb
    import numpy as np

    from churnlight.features import btyd
    from churnlight.features.spark import SparkConnection, score_cutoffs_spark

    rng = np.random.default_rng(5)
    rows = []
    for i in range(300):
        days = np.cumsum(rng.exponential(20.0, size=int(rng.integers(1, 12))))
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 150)))
        for d in days:
            ts = (start + pd.Timedelta(hours=float(d) * 24)).floor("s")
            rows.append((f"c{i:03d}", ts, float(np.round(rng.gamma(2.0, 15.0), 2))))
    shop = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    cutoffs = [pd.Timestamp(c) for c in ("2023-06-01", "2024-05-01", "2024-09-01")]
    order = "ORDER BY cutoff, customer_id"

    duck = duckdb.connect()
    duck.register("transactions", shop)
    want_fits = btyd.score_cutoffs(duck, cutoffs, 90, 365, 0.0)
    want = duck.execute(f"SELECT * FROM {btyd.SCORES_TABLE} {order}").df()
    duck.close()

    con = SparkConnection(spark)
    try:
        con.register("transactions", shop)
        con.local_tables.discard("transactions")  # read by Spark, not the driver's DuckDB
        got_fits = score_cutoffs_spark(con, cutoffs, 90, 365, 0.0)
        got = con.execute(f"SELECT * FROM {btyd.SCORES_TABLE} {order}").df()
    finally:
        con.close()
    assert got_fits == want_fits
    assert want_fits[0]["customers"] == 0 and want_fits[0]["bgnbd"] is None
    assert len(want) > 300 and want["btyd_p_alive"].notna().all()
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)
