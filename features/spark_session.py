"""The SparkSession the Spark engine runs in (issue 18): on `spark.master`, with `spark.conf`
and the settings the definitions' meaning depends on. Its own module so that a stage which only
scores on Spark (segment) does not depend on the feature definitions.

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

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

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
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
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


@contextmanager
def spark_session(master: str, conf: Mapping[str, Any] | None = None) -> Iterator[SparkSession]:
    """A SparkSession on `master` with `conf` (plus the engine's own settings), stopped on exit
    unless it was already running (a test's shared session, a notebook's)."""
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
        builder = builder.config(key, str(value).lower() if isinstance(value, bool) else value)
    t0 = time.perf_counter()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s on %s in %.1f s", spark.version, master, time.perf_counter() - t0)
    try:
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
