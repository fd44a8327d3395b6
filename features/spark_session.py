"""The SparkSession the Spark engine runs in (issue 18): on `spark.master`, with `spark.conf`
and the settings the definitions' meaning depends on. Its own module so that a stage which only
scores on Spark (segment) does not depend on the feature definitions.

A master `sc://host:port` is a Spark Connect server: the session is a thin client (no
SparkContext, no JVM here), which only sets the SQL settings of its own session; the rest of
the engine asks `is_connect` where the two kinds of session differ.

pyspark is an optional extra (`churnlight[spark]`): it is imported only when a session starts.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnlight.features.params import connect_refusal

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_NO_FALLBACK = "spark.sql.execution.arrow.pyspark.fallback.enabled"
# Spark settings the definitions' meaning depends on (not tunables): timestamps are read and
# written as wall-clock times in UTC (DuckDB's TIMESTAMP has no time zone); the SQL type
# TIMESTAMP is Spark's TIMESTAMP_NTZ, as DuckDB's; ANSI mode, so that an overflow or a bad cast
# fails as in DuckDB instead of turning into NULL
ENGINE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    _NO_FALLBACK: "false",
}
# start-up defaults a params `spark.conf` may override
DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    # the derived features are a stack of projections, each naming the ones before (one layer
    # per dependency level): inlined into one, as DuckDB does, instead of copying every row's
    # hundreds of columns once per layer (the final select at 200k customers: 27 s -> 15 s)
    "spark.sql.optimizer.collapseProjectAlwaysInline": "true",
}


def is_connect(spark: SparkSession) -> bool:
    """Whether `spark` is a Spark Connect client session (pyspark.sql.connect)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@contextmanager
def spark_session(master: str, conf: Mapping[str, Any] | None = None) -> Iterator[SparkSession]:
    """A SparkSession on `master` with `conf` (plus the engine's own settings), stopped on exit
    unless it was already running (a test's shared session, a notebook's)."""
    if master.strip().lower().startswith("sc://"):  # a Spark Connect server
        with connect_session(master, conf) as spark:
            yield spark
        return
    from pyspark.sql import SparkSession

    # Python workers (scoring's mapInPandas) run this interpreter, with churnlight importable
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == master:
        for key, value in ENGINE_CONF.items():
            active.conf.set(key, value)
        yield active
        return
    builder = SparkSession.builder.master(master).appName("churnlight-features")
    for key, value in {**DEFAULT_CONF, **dict(conf or {}), **ENGINE_CONF}.items():
        builder = builder.config(key, _text(value))
    t0 = time.perf_counter()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s on %s in %.1f s", spark.version, master, time.perf_counter() - t0)
    try:
        yield spark
    finally:
        spark.stop()


@contextmanager
def connect_session(url: str, conf: Mapping[str, Any] | None = None) -> Iterator[SparkSession]:
    """A Spark Connect session on the server at `url` (`sc://host:port`), with the engine's SQL
    settings and `conf` set in it, closed on exit. The server owns the SparkContext: settings
    that are not SQL settings (memory, cores, Java options, the Python the workers run) are the
    server's, set where it starts; asking for them here is an error, not a silent no-op."""
    from pyspark.sql import SparkSession

    conf = dict(conf or {})
    if refusal := connect_refusal(url, conf):
        raise ValueError(refusal)
    t0 = time.perf_counter()
    # a session of its own (not another one's that getOrCreate would hand back), stopped on exit
    spark = SparkSession.builder.remote(url.strip()).create()
    try:
        sql_defaults = {k: v for k, v in DEFAULT_CONF.items() if k.startswith("spark.sql.")}
        for key, value in {**sql_defaults, **conf, **ENGINE_CONF}.items():
            if key != _NO_FALLBACK:  # Connect moves rows as Arrow only: nothing to fall back to
                spark.conf.set(key, _text(value))
        log.info(
            "Spark %s on %s (Spark Connect) in %.1f s", spark.version, url, time.perf_counter() - t0
        )
        yield spark
    finally:
        spark.stop()


def arrow_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` that Spark's Arrow conversion takes under pandas 3: text columns as
    object (the feature engine's registered tables and the scoring's reason rows alike)."""
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_string_dtype(out[c].dtype) and out[c].dtype != object:
            out[c] = out[c].astype(object)
    return out
