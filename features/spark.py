"""The feature definitions run on Apache Spark (`features.engine: spark`), without a second copy.

The feature modules write DuckDB SQL and hand it to a connection (`execute`, `sql`, `register`,
`DESCRIBE`). `SparkConnection` is such a connection backed by a SparkSession: each statement is
parsed once (SQLGlot, DuckDB dialect), the places where the two engines mean different things by
the same text are rewritten by `spark_sql.to_spark` (the one list of dialect fixes), and Spark
runs the result. A `CREATE TABLE ... AS` becomes a materialised temporary view (a local
checkpoint: what the statement computed is what later statements read, as with DuckDB's
table). Small side tables registered from the driver (the lexicon) are also kept in a DuckDB on
the driver, which answers the queries that read only those (the lexicon's RE2 escaping has no
Spark function).

`build_snapshots_spark` is `churnlight.features.build.build_snapshots` on that connection: the
same plan, BTYD pass, aggregates, derivations, rules and labels; the rows are written by Spark
as sorted Parquet parts and streamed on the driver into the same features.parquet /
scoring.parquet files (same schema, same row order) through the same `SnapshotWriter`.

pyspark is an optional extra (`churnlight[spark]`): it is imported only when this engine runs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from churnlight.features.aggregates import FULL, aggregate_select, prepare
from churnlight.features.build import btyd_pass, build_flat_snapshots, features_report, plan_events
from churnlight.features.params import FeaturesParams
from churnlight.features.ranges import ROW_ORDER
from churnlight.features.registry import registry_frame
from churnlight.features.snapshots import SnapshotWriter
from churnlight.features.spark_session import arrow_ready
from churnlight.features.spark_sql import (
    bind_params,
    fixed_sql,
    spark_order,
    substitute,
    to_spark,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# Spark type (simpleString) -> the DuckDB type name the feature modules expect from DESCRIBE
_DUCK_TYPES = {
    "string": "VARCHAR",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP",
    "date": "DATE",
    "binary": "BLOB",
}
# --- the connection ---------------------------------------------------------------------------


class Result:
    """What `SparkConnection.execute` and `.sql` return: DuckDB's fetch methods on a Spark
    DataFrame (or on a driver-side DuckDB answer)."""

    def __init__(self, frame: DataFrame | None = None, local: Any = None) -> None:
        self.frame, self.local = frame, local

    def to_arrow_table(self) -> pa.Table:
        if self.local is not None:
            return self.local.to_arrow_table()
        return self.frame.toArrow()

    def df(self) -> pd.DataFrame:
        if self.local is not None:
            return self.local.df()
        return self.to_arrow_table().to_pandas()

    def fetchall(self) -> list[tuple]:
        if self.local is not None:
            return self.local.fetchall()
        return [tuple(r) for r in self.frame.collect()]

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None


class SparkConnection:
    """The part of a DuckDB connection the feature modules use, run by Spark (module doc)."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.local = duckdb.connect()  # the small driver-side tables (the lexicon)
        self.local_tables: set[str] = set()
        self.views: dict[str, DataFrame] = {}

    # DuckDB's API ------------------------------------------------------------------------
    def execute(self, sql: str, params: list | tuple | None = None) -> Result:
        result = Result()
        for statement in sqlglot.parse(bind_params(sql, params), read="duckdb"):
            if statement is not None:
                result = self._run(statement)
        return result

    def sql(self, sql: str) -> Result:
        return self.execute(sql)

    def executemany(self, sql: str, rows: list) -> None:
        statement = sqlglot.parse_one(sql, read="duckdb")
        if not isinstance(statement, exp.Insert):
            raise NotImplementedError(f"executemany of {type(statement).__name__}")
        filled = [substitute(statement.copy(), row).expression for row in rows]
        if not all(isinstance(v, exp.Values) for v in filled):
            raise NotImplementedError("executemany of an INSERT without VALUES")
        tuples = [t for v in filled for t in v.expressions]
        if tuples:
            many = statement.copy()
            many.set("expression", exp.Values(expressions=tuples))
            self._run(many)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """A driver-side frame: a Spark view, and a table of the local DuckDB."""
        self._set(name, self.spark.createDataFrame(arrow_ready(frame)), materialise=False)
        self.local.register(name, frame)
        self.local_tables.add(name)

    def unregister(self, name: str) -> None:
        self._drop(name)

    def close(self) -> None:
        self.drop_views()
        self.local.close()

    def drop_views(self) -> None:
        """Forget every table and view (their cached blocks too)."""
        for name in list(self.views):
            self._drop(name)

    # Spark -------------------------------------------------------------------------------
    def frame(self, sql: str, ordered: bool = True) -> DataFrame:
        """The Spark DataFrame of one SELECT; without its ORDER BY unless `ordered` (where the
        caller sorts: a sort in a subquery is one more range shuffle of every row)."""
        statement = sqlglot.parse_one(sql, read="duckdb")
        if not ordered:
            statement.set("order", None)
        return self.spark.sql(to_spark(statement))

    def read_parquet(self, name: str, path: str) -> None:
        self._set(name, self.spark.read.parquet(path), materialise=False)

    def _run(self, st: exp.Expression) -> Result:
        if isinstance(st, exp.Create):
            return self._create(st)
        if isinstance(st, exp.Insert):
            return self._insert(st)
        if isinstance(st, exp.Drop):
            for table in st.args.get("tables") or [st.this]:
                self._drop(table.name)
            return Result()
        if isinstance(st, exp.Describe):
            return self._describe(st.this.name)
        if self._is_local(st):
            return Result(local=self.local.sql(st.sql("duckdb")))
        return Result(self.spark.sql(to_spark(st)))

    def _is_local(self, st: exp.Expression) -> bool:
        tables = {t.name for t in st.find_all(exp.Table)}
        ctes = {c.alias for c in st.find_all(exp.CTE)}
        return bool(tables - ctes) and (tables - ctes) <= self.local_tables

    def _create(self, st: exp.Create) -> Result:
        kind = (st.args.get("kind") or "").upper()
        target = st.this
        if isinstance(target, exp.Schema):  # CREATE TABLE name (col TYPE, ...): empty
            name = target.this.name
            cols = ", ".join(
                f"CAST(NULL AS {c.args['kind'].sql('spark')}) AS `{c.name}`"
                for c in target.expressions
            )
            self._set(name, self.spark.sql(f"SELECT {cols} WHERE false"), materialise=False)
            return Result()
        name = target.name
        query = st.expression
        if self._is_local(query):
            self.local.execute(f"CREATE OR REPLACE TABLE {name} AS {query.sql('duckdb')}")
            self.local_tables.add(name)
        frame = self.spark.sql(to_spark(query))
        self._set(name, frame, materialise=kind != "VIEW")
        return Result()

    def _insert(self, st: exp.Insert) -> Result:
        name = st.this.name
        old = self.views[name]
        source = st.expression
        if isinstance(source, exp.Values):
            cols = old.columns
            rows = [
                "SELECT "
                + ", ".join(
                    f"{fixed_sql(v)} AS `{c}`" for v, c in zip(row.expressions, cols, strict=True)
                )
                for row in source.expressions
            ]
            new = self.spark.sql(" UNION ALL ".join(rows))
        else:
            new = self.spark.sql(to_spark(source))
        # by position, as INSERT INTO ... SELECT; cast to the table's types
        from pyspark.sql.functions import col

        new = new.toDF(*old.columns)
        new = new.select(*[col(f"`{f.name}`").cast(f.dataType) for f in old.schema])
        # not materialised again: the rows inserted are computed already (values, a
        # materialised query or a driver frame), and copying the table at every insert of a
        # loop (the BTYD pass: one per cutoff) costs quadratic time
        self._set(name, old.unionByName(new), materialise=False)
        return Result()

    def _describe(self, name: str) -> Result:
        rows = [(f.name, _duck_type(f.dataType.simpleString())) for f in self.views_schema(name)]
        return Result(local=self.local.sql(_values_sql(rows)))

    def views_schema(self, name: str):
        return self.spark.table(name).schema.fields

    def _set(self, name: str, frame: DataFrame, materialise: bool) -> None:
        if materialise:
            frame = frame.localCheckpoint(eager=True)
        old = self.views.get(name)
        frame.createOrReplaceTempView(name)
        self.views[name] = frame
        if old is not None and old is not frame:
            old.unpersist()

    def _drop(self, name: str) -> None:
        frame = self.views.pop(name, None)
        self.spark.catalog.dropTempView(name)
        if frame is not None:
            frame.unpersist()
        if name in self.local_tables:
            self.local_tables.discard(name)
            try:
                self.local.unregister(name)
            except duckdb.Error:
                self.local.execute(f"DROP TABLE IF EXISTS {name}")


def _duck_type(spark_type: str) -> str:
    if spark_type.startswith("decimal"):
        return spark_type.upper()
    return _DUCK_TYPES.get(spark_type, spark_type.upper())


def _values_sql(rows: list[tuple[str, str]]) -> str:
    if not rows:
        return "SELECT NULL::VARCHAR AS column_name, NULL::VARCHAR AS column_type WHERE false"
    values = ", ".join(
        "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in r) + ")" for r in rows
    )
    return f"SELECT * FROM (VALUES {values}) t(column_name, column_type)"


# --- the stage's work -------------------------------------------------------------------------


def build_snapshots_spark(
    spark: SparkSession,
    interim: str,
    folder: Path,
    report: dict,
    params: FeaturesParams,
    label_column: str,
) -> tuple[dict, pd.DataFrame]:
    """`build_snapshots` on Spark: features.parquet and scoring.parquet of the validated
    tables in `interim` (a local folder or any URI Spark reads, with the `<table>.parquet`
    names validate writes) into `folder`, and features_report.json's content and the registry.
    The rows are those of the DuckDB engine (tests/pipeline/test_spark.py)."""
    con = SparkConnection(spark)
    present = _present(spark, interim)
    try:
        for name in present:
            con.read_parquet(name, f"{interim.rstrip('/')}/{name}.parquet")
        if report["mode"] == "flat":
            counts, specs = build_flat_snapshots(con, folder, report, params, label_column)
        else:
            plan, specs = plan_events(con, present, report, params)
            written = {c.name for c in plan.columns if c.written}
            missing = [s.name for s in specs if s.name not in written]
            if missing:
                raise RuntimeError(f"registered features not computed: {missing}")
            fits = btyd_pass(con, plan)
            t0 = time.perf_counter()
            has_geo = prepare(con, present, list(plan.cutoffs), plan.data_end, plan.lexicon)
            agg = aggregate_select(con, plan.cfg, has_geo, FULL, tuple(plan.profile), plan.btyd)
            rows = con.frame(f"WITH agg AS ({agg}) {plan.select}", ordered=False)
            # computed once: the global sort samples its input before it shuffles it, and
            # would otherwise run the whole select (every join and derivation) twice
            t1 = time.perf_counter()
            rows = rows.localCheckpoint(eager=True)
            log.info("Spark computed the rows in %.1f s", time.perf_counter() - t1)
            con.drop_views()  # the sort's memory: the rows no longer need the tables
            counts = _write_rows(rows, folder, plan)
            counts.update({"btyd_fits": fits} if fits else {})
            log.info(
                "Spark aggregated, derived and wrote %d labelled + %d scoring rows over %d "
                "cutoffs in %.1f s",
                counts["labelled_rows"],
                counts["scoring_rows"],
                len(plan.cutoffs),
                time.perf_counter() - t0,
            )
    finally:
        con.close()
    registry = registry_frame(specs)
    return features_report(report, registry, counts), registry


def _present(spark: SparkSession, interim: str) -> set[str]:
    """The validated tables in `interim`: `<name>.parquet` files or folders."""
    from churnlight.features.build import FEATURE_TABLES

    jvm = spark.sparkContext._jvm
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(interim)
    fs = path.getFileSystem(hadoop)
    names = {s.getPath().getName() for s in fs.listStatus(path)}
    wanted = {"customers", *FEATURE_TABLES}
    return {n.removesuffix(".parquet") for n in names if n.endswith(".parquet")} & wanted


def _write_rows(rows: DataFrame, folder: Path, plan) -> dict:
    """Spark writes the rows (materialised), sorted as `ranges.ROW_ORDER` (labelled first, then
    by customer and cutoff), as Parquet parts; the driver streams the parts, in order, into the
    snapshot files. The same files as the DuckDB engine's, in the same row order."""
    order = [c.strip() for c in ROW_ORDER.replace("a.", "").split(",")]
    with tempfile.TemporaryDirectory(prefix="churnlight-spark-", dir=folder) as scratch:
        parts = Path(scratch) / "rows"
        t1 = time.perf_counter()
        rows.createOrReplaceTempView("snapshot_rows")
        spark = rows.sparkSession
        spark.sql(
            "SELECT * FROM snapshot_rows ORDER BY " + ", ".join(spark_order(o) for o in order)
        ).write.parquet(parts.resolve().as_uri())
        spark.catalog.dropTempView("snapshot_rows")
        rows.unpersist()
        t2 = time.perf_counter()
        writer = SnapshotWriter(folder, plan.columns, plan.last)
        try:
            for part in sorted(parts.glob("part-*.parquet")):
                for batch in pq.ParquetFile(part).iter_batches(batch_size=1 << 18):
                    table = pa.Table.from_batches([batch])
                    writer.write(_cast(table, plan.schema))
        finally:
            writer.close()
        shutil.rmtree(parts, ignore_errors=True)
    log.info(
        "Spark sorted and wrote the rows in %.1f s; the driver streamed them into the snapshot "
        "files in %.1f s",
        t2 - t1,
        time.perf_counter() - t2,
    )
    return writer.summary()


def _cast(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A part's batch in the snapshot schema (Spark writes the same types, without pandas'
    metadata, and TINYINT as int8 through Parquet's INT32)."""
    table = table.select(schema.names)
    return table.cast(schema)


# --- parity -----------------------------------------------------------------------------------


def snapshot_differences(a: Path, b: Path, rel: float = 1e-9) -> dict[str, list]:
    """Where the snapshot files of two processed folders differ (the engines' parity): per file,
    "schema" when the Parquet schemas (with pandas' metadata) differ, the shapes when those do,
    else the columns with the number of rows beyond exact equality (keys, counts, labels,
    categories) or beyond `rel` relative difference (floats; NaN equals NaN); [] where equal."""
    import numpy as np

    out: dict[str, list] = {}
    for name in ("features.parquet", "scoring.parquet"):
        left, right = pd.read_parquet(a / name), pd.read_parquet(b / name)
        problems: list = []
        if not pq.read_schema(a / name).equals(pq.read_schema(b / name), check_metadata=True):
            problems.append("schema")
        if list(left.columns) != list(right.columns) or len(left) != len(right):
            out[name] = [*problems, ("shape", left.shape, right.shape)]
            continue
        for c in left.columns:
            x, y = left[c], right[c]
            if x.dtype.kind == "f" or str(x.dtype) == "Float64":
                u, v = x.astype("float64").to_numpy(), y.astype("float64").to_numpy()
                both = np.isnan(u) & np.isnan(v)
                close = np.abs(u - v) <= rel * np.maximum(np.abs(u), np.abs(v))
                wrong = int((~(both | close)).sum())
            else:
                same = (x == y).fillna(False).astype(bool) | (x.isna() & y.isna())
                wrong = int((~same).sum())
            if wrong:
                problems.append((c, wrong))
        out[name] = problems
    return out
