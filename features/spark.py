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
as Parquet parts, which the driver reads in the DuckDB engine's row order and streams into the
same features.parquet / scoring.parquet files (same schema, same row order) through the same
`SnapshotWriter`.

pyspark is an optional extra (`churnlight[spark]`): it is imported only when this engine runs.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from churnlight.features.aggregates import FULL, aggregate_select, prepare
from churnlight.features.btyd import OUTPUTS, SCORES_TABLE, fit_cutoff, log_fits, summarise
from churnlight.features.build import (
    btyd_pass,
    build_flat_snapshots,
    connect,
    features_report,
    plan_events,
)
from churnlight.features.params import FeaturesParams
from churnlight.features.ranges import ROW_ORDER
from churnlight.features.registry import registry_frame
from churnlight.features.snapshots import SnapshotWriter
from churnlight.features.spark_session import arrow_ready, is_connect
from churnlight.features.spark_sql import (
    bind_params,
    fixed_sql,
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
        self.blocks: dict[str, set[int]] = {}  # the checkpointed RDDs each table reads

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
        # the table is not materialised again: copying it at every insert of a loop costs
        # quadratic time. The rows inserted are, when they read another table (which may be
        # dropped, and its blocks freed, before this one is read)
        blocks: set[int] = set()
        if any(self.blocks.get(t.name) for t in source.find_all(exp.Table)):
            new, blocks = checkpoint(new)
        self._set(name, old.unionByName(new), materialise=False, keep=blocks)
        return Result()

    def _describe(self, name: str) -> Result:
        rows = [(f.name, _duck_type(f.dataType.simpleString())) for f in self.views_schema(name)]
        return Result(local=self.local.sql(_values_sql(rows)))

    def views_schema(self, name: str):
        return self.spark.table(name).schema.fields

    def _set(
        self, name: str, frame: DataFrame, materialise: bool, keep: set[int] | None = None
    ) -> None:
        """`frame` as the table `name`; what the table it replaces had materialised is freed,
        unless the new one reads it (`keep` not None: an insert's union, which also reads the
        blocks `keep`)."""
        blocks: set[int] = set()
        if materialise:
            frame, blocks = checkpoint(frame)
        old = self.blocks.pop(name, set())
        frame.createOrReplaceTempView(name)
        self.views[name] = frame
        self.blocks[name] = blocks if keep is None else old | keep
        if keep is None:
            free(self.spark, old)

    def _drop(self, name: str) -> None:
        self.views.pop(name, None)
        self.spark.catalog.dropTempView(name)
        free(self.spark, self.blocks.pop(name, set()))
        if name in self.local_tables:
            self.local_tables.discard(name)
            try:
                self.local.unregister(name)
            except duckdb.Error:
                self.local.execute(f"DROP TABLE IF EXISTS {name}")


def checkpoint(frame: DataFrame) -> tuple[DataFrame, set[int]]:
    """`frame` computed once and kept (a local checkpoint), and the ids of the RDDs that hold
    it. Those blocks stay in the block manager until `free`: `DataFrame.unpersist` does not
    reach a checkpoint's RDD, and the context cleaner frees it only after a JVM garbage
    collection, so without `free` every table of the pass stays in memory (2 GiB at 200k
    customers by the end of the pass) and spills to disk as the tables grow.

    On Spark Connect there is no SparkContext to ask: the client releases the checkpoint when
    its DataFrame is dropped (the table's, in `SparkConnection.views`), and the server's
    context cleaner frees the blocks at its next garbage collection."""
    if is_connect(frame.sparkSession):
        return frame.localCheckpoint(eager=True), set()
    persisted = frame.sparkSession.sparkContext._jsc.getPersistentRDDs
    before = set(persisted().keySet())
    frame = frame.localCheckpoint(eager=True)
    return frame, {int(i) for i in set(persisted().keySet()) - before}


def free(spark: SparkSession, blocks: set[int]) -> None:
    """Drop the blocks of the RDDs `blocks` (`checkpoint`'s ids). `SparkContext.unpersistRDD`,
    not `RDD.unpersist`: the same removal, without a warning per RDD that a local checkpoint's
    lineage cannot be recomputed (nothing reads these again)."""
    if not blocks:  # nothing to free (and, on Spark Connect, no SparkContext to ask)
        return
    sc = spark.sparkContext._jsc.sc()
    for rdd in blocks:
        sc.unpersistRDD(rdd, False)


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
            fits = btyd_pass(con, plan, score_cutoffs_spark)
            t0 = time.perf_counter()
            has_geo = prepare(con, present, list(plan.cutoffs), plan.data_end, plan.lexicon)
            agg = aggregate_select(con, plan.cfg, has_geo, FULL, tuple(plan.profile), plan.btyd)
            # unsorted: the driver orders the rows as it streams them (`_write_rows`)
            rows = con.frame(f"WITH agg AS ({agg}) {plan.select}", ordered=False)
            counts = _write_rows(rows, folder, plan, params, con.drop_views)
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


def score_cutoffs_spark(
    con: SparkConnection,
    cutoffs: list[pd.Timestamp],
    horizon_days: int,
    clv_days: int,
    penalizer: float,
) -> list[dict]:
    """`btyd.score_cutoffs` where the summary is: the same summary (the one definition), and
    each cutoff's fits and scores (`btyd.fit_cutoff`) in a Python worker next to its rows
    (`applyInPandas`, one group per cutoff), instead of every summary row through the driver
    and the scores back by a join. The cutoffs are fitted in parallel; each fit reads all the
    customers of its cutoff, in any order (the fits sort their input)."""
    t0 = time.perf_counter()
    summarise(con, cutoffs)
    summary = con.views["btyd_summary"].select("cutoff", "customer_id", "x", "t_x", "age", "zbar")
    schema = summary.schema["customer_id"].dataType.simpleString()
    schema = ", ".join(["cutoff timestamp_ntz", f"customer_id {schema}"])
    schema += "".join(f", {c} double" for c in OUTPUTS) + ", fit string"

    def fit(rows: pd.DataFrame) -> pd.DataFrame:
        cutoff = pd.Timestamp(rows["cutoff"].iloc[0])
        scores, params = fit_cutoff(
            rows.reset_index(drop=True), cutoff, horizon_days, clv_days, penalizer
        )
        scores.insert(0, "customer_id", rows["customer_id"].to_numpy())
        scores.insert(0, "cutoff", rows["cutoff"].to_numpy())
        scores["fit"] = [json.dumps(params)] + [None] * (len(scores) - 1)
        return arrow_ready(scores)

    scored, blocks = checkpoint(summary.groupBy("cutoff").applyInPandas(fit, schema))
    # the table reads the checkpoint's blocks, which it now owns
    table = scored.select("customer_id", "cutoff", *OUTPUTS)  # DuckDB's column order
    con._set(SCORES_TABLE, table, materialise=False, keep=blocks)
    fitted = [json.loads(r[0]) for r in scored.where("fit IS NOT NULL").select("fit").collect()]
    by_day = {f["cutoff"]: f for f in fitted}
    # a cutoff before anyone's first purchase has no rows, hence no group: fitted on no rows,
    # as DuckDB's loop does
    nobody = pd.DataFrame({c: pd.Series(dtype=float) for c in ("x", "t_x", "age", "zbar")})
    fits = []
    for cutoff in sorted(cutoffs):
        done = by_day.get(str(pd.Timestamp(cutoff).date()))
        fits.append(done or fit_cutoff(nobody, cutoff, horizon_days, clv_days, penalizer)[1])
    for name in ("btyd_cutoffs", "btyd_days", "btyd_summary"):
        con.execute(f"DROP TABLE {name}")
    log_fits(fits, time.perf_counter() - t0)
    return fits


def _present(spark: SparkSession, interim: str) -> set[str]:
    """The validated tables in `interim`: `<name>.parquet` files or folders. Listed through
    Hadoop's file system (any URI Spark reads); a Spark Connect client has no JVM, so it asks
    the server to read each table it could use instead."""
    from churnlight.features.build import FEATURE_TABLES

    wanted = {"customers", *FEATURE_TABLES}
    if is_connect(spark):
        root = interim.rstrip("/")
        return {n for n in wanted if _readable(spark, f"{root}/{n}.parquet")}
    jvm = spark.sparkContext._jvm
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(interim)
    fs = path.getFileSystem(hadoop)
    names = {s.getPath().getName() for s in fs.listStatus(path)}
    return {n.removesuffix(".parquet") for n in names if n.endswith(".parquet")} & wanted


def _readable(spark: SparkSession, uri: str) -> bool:
    """Whether Spark finds a Parquet table at `uri` (its schema is read, not its rows)."""
    from pyspark.errors import AnalysisException

    try:
        return len(spark.read.parquet(uri).schema.fields) > 0  # resolved: fails if absent
    except AnalysisException as e:
        if e.getCondition() == "PATH_NOT_FOUND":
            return False
        raise


def _write_rows(
    rows: DataFrame, folder: Path, plan, params: FeaturesParams, written: Callable[[], None]
) -> dict:
    """Spark computes the rows and writes them as Parquet parts, in one pass; `written` is called
    then (the tables are no longer needed); the driver, which writes the two snapshot files,
    reads the parts in `ranges.ROW_ORDER` (labelled first, then by customer and cutoff) with
    DuckDB (`features.duckdb_memory_limit` and `duckdb_threads`, spilling to a scratch folder)
    and streams them into the files: the DuckDB engine's files, in its row order.

    Why the driver sorts, not Spark: a global sort on Spark samples its input before it shuffles
    it, so the select (every join and derivation) would have to be materialised first, and all of
    it then moves through a range shuffle. The driver reads every row anyway (at 1M customers,
    4.7M rows of 101 columns: bench/README.md)."""
    with tempfile.TemporaryDirectory(prefix="churnlight-spark-", dir=folder) as scratch:
        parts = Path(scratch) / "rows"
        t1 = time.perf_counter()
        rows.write.parquet(parts.resolve().as_uri())
        written()
        t2 = time.perf_counter()
        spill = Path(scratch) / "spill"
        local = connect(
            Path(scratch), set(), spill, params.duckdb_memory_limit, params.duckdb_threads
        )
        try:
            # the parts by name, not a glob: the scratch path may hold glob characters or a
            # `key=value` folder that DuckDB would read as a Hive partition column
            files = [p.as_posix() for p in sorted(parts.glob("part-*.parquet"))]
            reader = local.sql(
                "SELECT * FROM read_parquet(?, hive_partitioning = false) ORDER BY "
                + ROW_ORDER.replace("a.", ""),
                params=[files],
            ).to_arrow_reader(1 << 17)
            writer = SnapshotWriter(folder, plan.columns, plan.last)
            try:
                for batch in reader:
                    writer.write(_cast(pa.Table.from_batches([batch]), plan.schema))
            finally:
                writer.close()
        finally:
            local.close()
        shutil.rmtree(parts, ignore_errors=True)
    log.info(
        "Spark computed and wrote the rows in %.1f s; the driver sorted and streamed them into "
        "the snapshot files in %.1f s",
        t2 - t1,
        time.perf_counter() - t2,
    )
    return writer.summary()


def _cast(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A part's batch in the snapshot schema (Spark writes the same types, without pandas'
    metadata, and TINYINT as int8 through Parquet's INT32)."""
    table = table.select(schema.names)
    return table.cast(schema)
