"""Snapshot rows a range of customers at a time, so that memory stays bounded.

Every row depends on its own customer only, so ranges of customer ids give together exactly
the whole-table result, in its (customer_id, cutoff) order when each is read sorted, while each
statement works on a fraction of the customers. Ranges, not hashes: on files clustered by
customer a scan skips whole row groups. Nothing is kept between ranges: each is aggregated,
derived and handed to the writer.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import duckdb
import pandas as pd
import pyarrow as pa

from churnlight.features.aggregates import (
    AGGREGATE_TABLES,
    FULL,
    SCRATCH_TABLES,
    aggregate_select,
    prepare,
)
from churnlight.features.btyd import OUTPUTS as BTYD_OUTPUTS
from churnlight.features.columns import Column, arrow_schema, snapshot_select, source
from churnlight.features.config import FeatureConfig
from churnlight.features.sql import literal

log = logging.getLogger(__name__)

EVENT_TABLES = ("transactions", "activity", "feedback")
# labelled rows first, then those without a label, each part in (customer_id, cutoff) order:
# the labelled file's rows are one slice of a range's rows, not a filtered copy
ROW_ORDER = f"{source('label')} IS NULL, {source('customer_id')}, {source('cutoff')}"


@dataclass(frozen=True)
class EventPlan:
    """What an event-mode run needs, all known before any aggregate is computed."""

    cfg: FeatureConfig
    present: frozenset[str]  # the tables of the data
    cutoffs: tuple[pd.Timestamp, ...]  # only those whose rows are kept (`needed_cutoffs`)
    data_end: pd.Timestamp  # exclusive: the day after as_of
    lexicon: pd.DataFrame
    profile: dict[str, bool]  # customer attribute -> is numeric
    columns: tuple[Column, ...]  # the definition of a row (`event_columns`)

    @property
    def last(self) -> pd.Timestamp | None:
        """The newest cutoff: the scoring snapshot."""
        return max(self.cutoffs, default=None)

    @property
    def btyd(self) -> bool:
        """Whether the rows carry the BTYD scores (the table `btyd_scores` must exist)."""
        return any(c.name == BTYD_OUTPUTS[0] for c in self.columns)

    @cached_property
    def select(self) -> str:
        """The SELECT of a range's rows from its aggregates (the relation `agg`)."""
        return snapshot_select(list(self.columns), "agg", ROW_ORDER)

    @cached_property
    def schema(self) -> pa.Schema:
        return arrow_schema(self.columns)


def partitions_for(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    partitions: int | None,
    events_per_partition: int,
    customers_per_partition: int,
) -> int:
    """`partitions`, or when None enough customer ranges that none holds more than
    `events_per_partition` events (the joins) or `customers_per_partition` customers (the
    sorted feature rows of a range)."""
    if partitions:
        return int(partitions)
    events = sum(
        con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in EVENT_TABLES if t in present
    )
    customers = con.execute("SELECT count(*) FROM customers").fetchone()[0]
    by_events = math.ceil(events / int(events_per_partition))
    by_customers = math.ceil(customers / int(customers_per_partition))
    return max(1, by_events, by_customers)


def range_bounds(
    con: duckdb.DuckDBPyConnection, partitions: int
) -> list[tuple[str | None, str | None]]:
    """The customer id ranges [lo, hi) of `partitions` ranges of about equal size, in order
    (None: unbounded)."""
    bounds: list[str] = []
    if partitions > 1:
        rows = con.execute(f"""
            SELECT min(customer_id) FROM (
                SELECT customer_id, ntile({int(partitions)}) OVER (ORDER BY customer_id) AS part
                FROM customers WHERE customer_id IS NOT NULL
            ) GROUP BY part ORDER BY 1
        """).fetchall()
        bounds = [r[0] for r in rows[1:]]
    return list(itertools.pairwise([None, *bounds, None]))


def _range_views(con: duckdb.DuckDBPyConnection, lo: str | None, hi: str | None) -> dict:
    """The source tables restricted to customer ids in [lo, hi) (None: unbounded).

    The event rows are copied into temporary tables once: each is read by several statements,
    and DuckDB scans its own tables in parallel in small row groups, where a Parquet row group
    (often a million rows) goes to one thread.
    """
    conds = ["customer_id IS NOT NULL"]
    if lo is not None:
        conds.append(f"customer_id >= {literal(lo)}")
    if hi is not None:
        conds.append(f"customer_id < {literal(hi)}")
    where = " AND ".join(conds)
    src = {"own_events": "part_own_events"}
    for name in ("customers", "transactions", "activity", "feedback"):
        src[name] = f"part_{name}"
        kind = "VIEW" if name == "customers" else "TABLE"
        con.execute(
            f"CREATE OR REPLACE TEMP {kind} part_{name} AS SELECT * FROM {name} WHERE {where}"
        )
    return src


def aggregate_ranges(
    con: duckdb.DuckDBPyConnection, plan: EventPlan, partitions: int = 1
) -> Iterator[str]:
    """The aggregates of `partitions` customer ranges, in customer_id order: for each, the
    SELECT of its rows (with the plan's profile as `profile:<name>`), valid until the next one
    is asked for; the caller reads it in between."""
    has_geo = prepare(con, set(plan.present), list(plan.cutoffs), plan.data_end, plan.lexicon)
    bounds = range_bounds(con, partitions)
    try:
        for i, (lo, hi) in enumerate(bounds):
            t0 = time.perf_counter()
            src = _range_views(con, lo, hi) if len(bounds) > 1 else FULL
            yield aggregate_select(con, plan.cfg, has_geo, src, tuple(plan.profile), plan.btyd)
            log.debug("range %d/%d in %.1f s", i + 1, len(bounds), time.perf_counter() - t0)
    finally:
        parts = tuple(f"part_{t}" for t in ("transactions", "activity", "feedback"))
        temporary = "SELECT table_name FROM duckdb_tables() WHERE temporary"
        tables = {name for (name,) in con.execute(temporary).fetchall()}
        for name in (*AGGREGATE_TABLES, *SCRATCH_TABLES, *parts):
            if name in tables:
                con.execute(f"DROP TABLE {name}")


def snapshot_table(con: duckdb.DuckDBPyConnection, plan: EventPlan, sql: str) -> pa.Table:
    """The feature rows of the range whose aggregates `sql` selects, typed as the plan's
    schema, labelled rows first: a whole range at once (batches of it cost more to fetch)."""
    return con.sql(f"WITH agg AS ({sql}) {plan.select}").to_arrow_table().cast(plan.schema)


def snapshot_tables(
    con: duckdb.DuckDBPyConnection, plan: EventPlan, partitions: int, workers: int = 1
) -> Iterator[pa.Table]:
    """Every customer range's feature rows (`snapshot_table`), in range order.

    With `workers` > 1, that many ranges are aggregated and derived at once, each on a cursor
    of its own (its own temporary tables). A range's statements have serial stretches and its
    hash tables cost merging across threads; ranges share nothing, so ranges side by side keep
    the cores busier, for less CPU, than one range on all of them. At most `workers` ranges are
    in work while the caller holds the last one handed out. The database's threads are shared
    out: each worker's own thread plus `threads - workers` helpers, `threads` in all.
    """
    bounds = range_bounds(con, partitions) if workers > 1 else []
    if len(bounds) <= 1:
        ranges = aggregate_ranges(con, plan, partitions)
        try:
            for sql in ranges:
                yield snapshot_table(con, plan, sql)
        finally:
            ranges.close()
        return
    yield from _parallel_tables(con, plan, bounds, workers)


def _parallel_tables(
    con: duckdb.DuckDBPyConnection,
    plan: EventPlan,
    bounds: list[tuple[str | None, str | None]],
    workers: int,
) -> Iterator[pa.Table]:
    """`snapshot_tables` with `workers` ranges in work at once; a failure or an abandoned
    iteration stops the others and gives the threads back."""
    local = threading.local()
    cursors: list[duckdb.DuckDBPyConnection] = []
    lock, stop = threading.Lock(), threading.Event()

    def derive(lo: str | None, hi: str | None) -> pa.Table | None:
        with lock:
            if stop.is_set():  # the run failed or was abandoned: leave the range alone
                return None
            if not hasattr(local, "cursor"):
                local.cursor = con.cursor()
                cursors.append(local.cursor)
        if not hasattr(local, "has_geo"):
            present, cutoffs = set(plan.present), list(plan.cutoffs)
            local.has_geo = prepare(local.cursor, present, cutoffs, plan.data_end, plan.lexicon)
        src = _range_views(local.cursor, lo, hi)
        profile = tuple(plan.profile)
        sql = aggregate_select(local.cursor, plan.cfg, local.has_geo, src, profile, plan.btyd)
        return None if stop.is_set() else snapshot_table(local.cursor, plan, sql)

    (threads,) = con.execute("SELECT current_setting('threads')").fetchone()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="churnlight-range")
    pending: deque = deque()
    try:
        # for the whole database: every cursor's queries run on their own thread and share
        # the rest
        con.execute(f"SET threads = {max(1, int(threads) - workers + 1)}")
        todo = iter(bounds)
        pending.extend(pool.submit(derive, lo, hi) for lo, hi in itertools.islice(todo, workers))
        while pending:
            table = pending.popleft().result()
            assert table is not None  # only a stopped run's ranges give none
            if (bound := next(todo, None)) is not None:
                pending.append(pool.submit(derive, *bound))
            yield table
    finally:
        try:
            with lock:
                stop.set()
                for cursor in cursors:
                    cursor.interrupt()  # the statement running now; the next ones see `stop`
            pool.shutdown(wait=True, cancel_futures=True)
            for cursor in cursors:
                cursor.close()  # and with it its temporary tables
        finally:
            con.execute(f"SET threads = {int(threads)}")
