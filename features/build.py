"""Build the feature snapshots of a validated folder: what the features stage runs.

From event tables: cutoffs, a plan fixed before any work (the columns a row has, their types,
the feature registry), then DuckDB aggregates and derives a range of customers at a time
(`features.partitions` ranges, `features.range_workers` of them side by side, within
`features.duckdb_memory_limit`) while a writer thread writes the previous range's rows. From a
flat labelled customers table: one snapshot of the customers' attributes at the data end.
Both write through the same column definitions and the same writer.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from churnlight.features.aggregates import has_geography, relation_types
from churnlight.features.btyd import score_cutoffs
from churnlight.features.columns import snapshot_select
from churnlight.features.config import FeatureConfig, load_lexicon, make_cutoffs, needed_cutoffs
from churnlight.features.derived import event_columns, flat_columns, flat_source_sql
from churnlight.features.derived import profile_columns as profile_of
from churnlight.features.params import FeaturesParams
from churnlight.features.ranges import EventPlan, partitions_for, snapshot_tables
from churnlight.features.registry import FeatureSpec, build_registry, registry_frame
from churnlight.features.snapshots import SnapshotWriter, split_flat

log = logging.getLogger(__name__)

# progress over customer ranges: (ranges done, ranges in all), called after each range
RangeProgress = Callable[[int, int], None]
FEATURE_TABLES = ("activity", "transactions", "feedback", "market")


def connect(
    interim: Path, present: set[str], temp_dir: Path, memory_limit: str | None, threads: int | None
) -> duckdb.DuckDBPyConnection:
    """DuckDB with a view per Parquet table `present` in `interim`, spilling into `temp_dir`;
    without DuckDB's own progress bar, which would print into logs (the stage has its own)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET temp_directory = '{temp_dir.as_posix()}'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    for name in present:
        path = (interim / f"{name}.parquet").as_posix()
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    return con


def plan_events(
    con: duckdb.DuckDBPyConnection, present: set[str], report: dict, params: FeaturesParams
) -> tuple[EventPlan, list[FeatureSpec]]:
    """The plan of an event-mode run (see `EventPlan`) and its feature registry, from the
    contract's `report` and the `features` settings."""
    cfg = FeatureConfig.from_params(params)
    as_of = pd.Timestamp(report["as_of"])
    data_end = as_of + pd.Timedelta(days=1)
    cutoffs = make_cutoffs(as_of, params.first_cutoff, params.last_cutoff, params.step_months)
    customer_types = relation_types(con, "customers")
    profile = profile_of(customer_types)
    families = dict(report["families"])
    geo = has_geography(customer_types)
    if families.get("external") and not geo:
        log.warning("external family switched off: customers have no region and industry columns")
        families["external"] = False
    tables = {t: t in present for t in FEATURE_TABLES}
    tables["market"] = tables["market"] and geo
    plan = EventPlan(
        cfg=cfg,
        present=frozenset(present),
        cutoffs=tuple(needed_cutoffs(cutoffs, cfg, data_end)),
        data_end=data_end,
        lexicon=load_lexicon(params.lexicon),
        profile=profile,
        columns=tuple(event_columns(cfg, tables, profile, btyd=cfg.btyd["enabled"])),
    )
    registry = build_registry(list(cfg.windows_days), families, profile, present, plan.btyd)
    return plan, registry


def btyd_pass(
    con: duckdb.DuckDBPyConnection, plan: EventPlan, scorer: Callable = score_cutoffs
) -> list[dict]:
    """The BTYD scores of every customer and cutoff (the table the ranges join), before the
    ranges: a fit needs all the customers of a cutoff, a range has only some. The fitted
    parameters per cutoff; none when the plan has no BTYD numbers. `scorer`: the engine's
    `btyd.score_cutoffs`."""
    if not plan.btyd:
        return []
    settings = plan.cfg.btyd
    return scorer(
        con,
        list(plan.cutoffs),
        plan.cfg.label_horizon_days,
        settings["clv_days"],
        settings["penalizer"],
    )


def build_event_snapshots(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    plan: EventPlan,
    partitions: int,
    workers: int,
    on_progress: RangeProgress | None = None,
) -> dict:
    """Aggregate, derive and write one customer range at a time (`workers` at once) into
    `folder`; the summary's numbers. `on_progress(done, total)` after each range."""
    t0 = time.perf_counter()
    writer = SnapshotWriter(folder, plan.columns, plan.last)
    tables = snapshot_tables(con, plan, partitions, workers)
    try:
        for i, table in enumerate(tables):
            writer.write(table)
            if on_progress is not None:
                on_progress(i + 1, partitions)
    finally:
        try:
            tables.close()
        finally:
            writer.close()
    counts = writer.summary()
    log.info(
        "aggregated, derived and wrote %d labelled + %d scoring rows over %d cutoffs, "
        "%d customer ranges (%d at a time), in %.1f s",
        counts["labelled_rows"],
        counts["scoring_rows"],
        len(plan.cutoffs),
        partitions,
        min(workers, partitions),
        time.perf_counter() - t0,
    )
    return counts


def build_flat_snapshots(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    report: dict,
    params: FeaturesParams,
    label_column: str,
) -> tuple[dict, list[FeatureSpec]]:
    """Flat labelled table: the customers' attributes, one snapshot at the data end (no date
    at all when the table has none), in the customers table's order; the summary's numbers
    and the registry (profile only)."""
    profile = profile_of(relation_types(con, "customers"), label_column)
    # the snapshot is the day after the table's newest date; a table without dates gets none
    cutoff = pd.Timestamp(report["as_of"]) + pd.Timedelta(days=1) if report["as_of"] else None
    columns = flat_columns(params.signals.model_dump(), profile)
    day = None if cutoff is None else str(cutoff.date())
    rows = flat_source_sql("customers", label_column, day, profile)
    table = con.sql(snapshot_select(columns, f"({rows})")).to_arrow_table()
    writer = SnapshotWriter(folder, columns, cutoff, split_flat)
    try:
        writer.write(table.cast(writer.schema))
    finally:
        writer.close()
    return writer.summary(), build_registry([], {"profile": True}, profile)


def features_report(report: dict, registry: pd.DataFrame, counts: dict) -> dict:
    """features_report.json: the mode, the families built, the features and the row counts."""
    return {
        "mode": report["mode"],
        # what was built: a family can be off even with its table present
        "families": {
            f: bool(on) and f in set(registry["family"]) for f, on in report["families"].items()
        },
        "features_per_family": registry["family"].value_counts().to_dict(),
        "n_features": len(registry),
        **counts,
    }


def build_snapshots(
    interim: Path,
    folder: Path,
    report: dict,
    params: FeaturesParams,
    label_column: str,
    on_progress: RangeProgress | None = None,
    *,
    scoring_only: bool = False,
) -> tuple[dict, pd.DataFrame]:
    """Write features.parquet and scoring.parquet of the validated tables in `interim` (the
    contract's `report` says which) into `folder`; return features_report.json's content and
    the feature registry. `params`: the `features` settings; `label_column`: the label of a
    flat table; `on_progress(done, total)` after each customer range of event data.
    `scoring_only` (what `churnlight score` builds): from event tables, the one cutoff the day
    after the data end, with the same definitions (features.parquet is then empty); no label
    is read for it."""
    present = {p.stem for p in interim.glob("*.parquet")}
    with tempfile.TemporaryDirectory(prefix="churnlight-features-") as scratch:
        con = connect(
            interim, present, Path(scratch), params.duckdb_memory_limit, params.duckdb_threads
        )
        try:
            if report["mode"] == "flat":
                counts, specs = build_flat_snapshots(con, folder, report, params, label_column)
            else:
                plan, specs = plan_events(con, present, report, params)
                if scoring_only:
                    plan = dataclasses.replace(plan, cutoffs=(plan.data_end,))
                written = {c.name for c in plan.columns if c.written}
                missing = [s.name for s in specs if s.name not in written]
                if missing:
                    raise RuntimeError(f"registered features not computed: {missing}")
                parts = partitions_for(
                    con,
                    present,
                    params.partitions,
                    params.events_per_partition,
                    params.customers_per_partition,
                )
                fits = btyd_pass(con, plan)
                counts = build_event_snapshots(
                    con, folder, plan, parts, params.range_workers, on_progress
                )
                counts.update({"btyd_fits": fits} if fits else {})
        finally:
            con.close()
    registry = registry_frame(specs)
    return features_report(report, registry, counts), registry
