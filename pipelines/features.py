"""Stage `features`: point-in-time snapshots with labels, the feature registry and the rules.

Writes data/processed/features.parquet (labelled snapshots), scoring.parquet (the newest
cutoff, no label), feature_registry.csv and features_report.json; from event tables both
Parquet files are in (customer_id, cutoff) order.

A range of customers at a time (`features.partitions`; `features.range_workers` ranges side
by side, sharing DuckDB's threads), DuckDB aggregates the event tables within
`features.duckdb_memory_limit` and derives the features (checked first against the pandas
derivation on a sample of customers); another thread writes each range's rows, in range order,
while the next ones are worked on. Nothing is kept beyond that, so memory stays bounded
whatever the number of customers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnlight.features.build import (
    FeatureConfig,
    add_profile,
    aggregate_batches,
    aggregate_ranges,
    aggregate_types,
    check_snapshot_select,
    finish_rows,
    make_cutoffs,
    needed_cutoffs,
    profile_columns,
    sample_aggregates,
    snapshot_schema,
    snapshot_select,
    snapshot_tables,
)
from churnlight.features.contract import parse_label
from churnlight.features.registry import build_registry, registry_frame
from churnlight.pipelines.common import (
    ParquetAppender,
    atomic_dir,
    load_params,
    peak_rss_gb,
    setup_logging,
    write_json,
)

log = logging.getLogger("churnlight.features")
EVENT_TABLES = ("transactions", "activity", "feedback")
Rows = Callable[[pd.DataFrame], pd.Series]


def load_lexicon(path: str | Path | None = None) -> pd.DataFrame:
    """The bilingual phrase list: edit features/lexicon.csv, or point features.lexicon at yours."""
    if path:
        return pd.read_csv(path, dtype=str)
    with (
        resources.files("churnlight.features").joinpath("lexicon.csv").open(encoding="utf-8") as fh
    ):
        return pd.read_csv(fh, dtype=str)


def connect(interim: Path, present: set[str], params: dict, temp_dir: Path):
    """DuckDB over the interim Parquet files, with the memory limit and threads from params."""
    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{temp_dir.as_posix()}'")
    if params.get("duckdb_memory_limit"):
        con.execute(f"SET memory_limit = '{params['duckdb_memory_limit']}'")
    if params.get("duckdb_threads"):
        con.execute(f"SET threads = {int(params['duckdb_threads'])}")
    for name in present:
        path = (interim / f"{name}.parquet").as_posix()
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    return con


def partitions_for(con: duckdb.DuckDBPyConnection, present: set[str], params: dict) -> int:
    """`features.partitions`, or when null enough customer ranges that none holds more than
    `events_per_partition` events (the joins) or `customers_per_partition` customers (the
    sorted feature rows of a range)."""
    if params.get("partitions"):
        return int(params["partitions"])
    events = sum(
        con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in EVENT_TABLES if t in present
    )
    customers = con.execute("SELECT count(*) FROM customers").fetchone()[0]
    by_events = math.ceil(events / int(params["events_per_partition"]))
    by_customers = math.ceil(customers / int(params["customers_per_partition"]))
    return max(1, by_events, by_customers)


@dataclass
class EventPlan:
    """What the event mode knows before it aggregates anything."""

    cfg: FeatureConfig
    cutoffs: list[pd.Timestamp]  # only those whose rows are kept (`needed_cutoffs`)
    data_end: pd.Timestamp
    customers: pd.DataFrame  # without signup and cancel dates
    profile: dict[str, bool]
    tables: dict[str, bool]
    specs: list

    @property
    def last(self) -> pd.Timestamp | None:
        """The newest cutoff: the scoring snapshot."""
        return max(self.cutoffs, default=None)

    @cached_property
    def ids(self) -> pd.Index:
        return pd.Index(self.customers["customer_id"])

    def finish(self, agg: pd.DataFrame) -> pd.DataFrame:
        """The pandas derivation of aggregate rows: derive_features, profile, three colours."""
        pos = self.ids.get_indexer(agg["customer_id"].unique())
        customers = self.customers.iloc[pos[pos >= 0]]
        return finish_rows(agg, self.cfg, self.tables, customers, self.profile)


def plan_events(
    con: duckdb.DuckDBPyConnection, present: set[str], report: dict, params: dict
) -> EventPlan:
    cfg = FeatureConfig.from_params(params)
    as_of = pd.Timestamp(report["as_of"])
    data_end = as_of + pd.Timedelta(days=1)
    cutoffs = make_cutoffs(
        as_of, params.get("first_cutoff"), params.get("last_cutoff"), int(params["step_months"])
    )
    names = [r[0] for r in con.execute("DESCRIBE customers").fetchall()]
    keep = ", ".join(f'"{c}"' for c in names if c not in ("signup_date", "cancel_date"))
    customers = con.execute(f"SELECT {keep} FROM customers").df()
    prof = profile_columns(customers)
    families = dict(report["families"])
    if families.get("external") and not {"region", "industry"} <= set(names):
        # market data is joined on the customer's region and industry: without them, no external
        log.warning("external family switched off: customers have no region and industry columns")
        families["external"] = False
    return EventPlan(
        cfg=cfg,
        cutoffs=needed_cutoffs(cutoffs, cfg, data_end),
        data_end=data_end,
        customers=customers,
        profile=prof,
        tables={t: t in present for t in ("activity", "transactions", "feedback", "market")},
        specs=build_registry(list(cfg.windows_days), families, prof, present),
    )


class ArrowSnapshotWriter:
    """features.parquet (labelled rows) and scoring.parquet (the newest cutoff, no label) from
    DuckDB's derived rows, a customer range at a time, keeping what the summary needs.

    DuckDB aggregates the next ranges while a thread of this writer splits and encodes the
    previous one to Parquet (pyarrow lets go of the GIL); one range in flight, each a row
    group of each file (while under pyarrow's row-group size: 25,000 customers are).
    """

    def __init__(
        self, folder: Path, schema: pa.Schema, like: pd.DataFrame, last: pd.Timestamp | None
    ) -> None:
        self.schema, self.last = schema, last
        scoring = self.schema.remove(self.schema.get_field_index("label"))
        # with the pandas metadata of the scoring rows, which have no label
        meta = pa.Schema.from_pandas(like.drop(columns="label").iloc[:0], preserve_index=False)
        scoring_schema = scoring.with_metadata(meta.metadata)
        # dictionary encoding where values repeat (keys, counts, categories), not for floats:
        # there it took a sixth of the encoding time for 8% of the file size (1M customers)
        repeat = (pa.types.is_string, pa.types.is_integer, pa.types.is_timestamp)
        dictionary = [f.name for f in self.schema if any(is_(f.type) for is_ in repeat)]
        self.labelled = pq.ParquetWriter(
            folder / "features.parquet", self.schema, use_dictionary=dictionary
        )
        self.scoring = pq.ParquetWriter(
            folder / "scoring.parquet", scoring_schema, use_dictionary=dictionary
        )
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: Future | None = None
        self.rows, self.label_sum, self.cutoffs = 0, 0, set()
        self.colours: Counter[str] = Counter()

    def write(self, table: pa.Table) -> None:
        """Queue a range's rows (`snapshot_table`) for writing, once the previous range's are
        written."""
        self._wait()  # a failure of the previous range's write surfaces here
        self.pending = self.pool.submit(self._write, table)

    def _write(self, table: pa.Table) -> None:
        labelled = table.slice(0, table.num_rows - table["label"].null_count)  # labelled first
        if labelled["label"].null_count:
            raise RuntimeError("a range's rows came without the labelled ones first")
        newest = pc.equal(table["cutoff"], pa.scalar(self.last, self.schema.field("cutoff").type))
        rest = table.slice(labelled.num_rows)
        if (
            pc.sum(newest).as_py() == rest.num_rows
            and pc.all(newest.slice(labelled.num_rows)).as_py()
        ):
            scoring = rest  # as by default: the rows without a label are the newest cutoff's
        else:  # the newest cutoff's label window is observed (features.last_cutoff set early)
            # a cutoff's rows are all labelled or none, so this keeps (customer_id) order
            scoring = table.filter(newest)
        scoring = scoring.drop_columns("label")
        self.labelled.write_table(labelled)
        self.scoring.write_table(scoring)
        self.rows += labelled.num_rows
        self.label_sum += pc.sum(labelled["label"]).as_py() or 0
        self.cutoffs.update(pc.unique(labelled["cutoff"]).to_pylist())
        # counts, not the column: a slice would keep the whole range's Arrow buffers alive
        for item in pc.value_counts(scoring["rule_colour"]).to_pylist():
            self.colours[item["values"]] += item["counts"]

    def _wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self.pool.shutdown()
            try:
                self.labelled.close()
            finally:
                self.scoring.close()

    def summary(self) -> dict:
        cutoffs = [pd.Timestamp(c) for c in self.cutoffs]
        colours = pd.Series(self.colours, dtype="int64")
        return snapshot_summary(self.rows, int(self.label_sum), cutoffs, self.last, colours)


def write_event_features(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    params: dict,
    scratch: Path,
    folder: Path,
    required: list[str],
    plan: EventPlan,
) -> dict:
    """Aggregate, derive and write one customer range at a time (`range_workers` at once);
    the summary's numbers.

    Before the first range, the SQL derivation is checked against the pandas one on a sample
    of customers drawn from all ranges; if they differ (or the sample has no rows to check
    on, or `derive_in_sql` is off) every range is derived in pandas instead, in batches.
    """
    t0 = time.perf_counter()
    parts = partitions_for(con, present, params)
    check = (
        max(0, int(params.get("check_customers", 5000))) if params.get("derive_in_sql", True) else 0
    )
    workers = max(1, int(params.get("range_workers") or 1))
    lexicon = load_lexicon(params.get("lexicon"))
    args = (con, present, plan.cutoffs, plan.data_end, plan.cfg, lexicon)
    select = None
    if check > 0:
        sample_run = aggregate_ranges(*args, 0, tuple(plan.profile), sample=check)
        try:
            _, sql = next(sample_run)
            select, sample = check_sql_derivation(con, sql, plan, scratch)
            if select is not None:
                missing = [n for n in required if n not in sample.columns]
                if missing:
                    raise RuntimeError(f"registered features not computed: {missing}")
                schema = snapshot_schema(con, select, sample)
        finally:
            sample_run.close()
    writer: ArrowSnapshotWriter | SnapshotWriter
    if select is not None:
        writer = ArrowSnapshotWriter(folder, schema, sample, plan.last)
        batches = snapshot_tables(*args, parts, tuple(plan.profile), select, schema, workers)
    else:
        workers, last = 1, plan.last
        labelled = lambda df: df["label"].notna()  # noqa: E731
        writer = SnapshotWriter(folder, labelled, lambda df: df["cutoff"] == last, required)
        batches = pandas_batches(args, parts, plan, int(params.get("batch_rows", 100_000)))
    try:
        for batch in batches:
            writer.write(batch)
    finally:
        try:
            batches.close()
        finally:
            writer.close()
    counts = writer.summary()
    log.info(
        "aggregated, derived (%s) and wrote %d labelled + %d scoring rows over %d cutoffs, "
        "%d customer ranges (%d at a time), in %.1f s; peak RSS so far %.2f GiB",
        "DuckDB" if isinstance(writer, ArrowSnapshotWriter) else "pandas",
        counts["labelled_rows"],
        counts["scoring_rows"],
        len(plan.cutoffs),
        parts,
        min(workers, parts),
        time.perf_counter() - t0,
        peak_rss_gb(),
    )
    return counts


def pandas_batches(
    args: tuple, parts: int, plan: EventPlan, batch_rows: int
) -> Iterator[pd.DataFrame]:
    """The feature rows derived in pandas, `batch_rows` aggregate rows at a time, range by
    range (`args`: the connection and the aggregation inputs of `aggregate_ranges`)."""
    con = args[0]
    ranges = aggregate_ranges(*args, parts, tuple(plan.profile))
    try:
        for _, sql in ranges:
            for agg in aggregate_batches(con, sql, batch_rows):
                yield plan.finish(agg)
    finally:
        ranges.close()


def check_sql_derivation(
    con: duckdb.DuckDBPyConnection, sql: str, plan: EventPlan, scratch: Path
) -> tuple[str | None, pd.DataFrame]:
    """(the SQL derivation, the pandas rows of the sample `sql` it was checked on), or
    (None, those rows) when the pandas derivation must do: the two differ, or there is
    nothing to check on."""
    sample = plan.finish(sample_aggregates(con, sql))
    if sample.empty:
        log.warning("deriving in pandas: the check sample has no rows to compare the SQL on")
        return None, sample
    types = aggregate_types(con, sql)
    select = snapshot_select(types, plan.cfg, plan.tables, plan.profile, sample.dtypes)
    problem = check_snapshot_select(con, select, sample, scratch)
    if problem:
        log.warning("deriving in pandas: the SQL derivation %s", problem)
        return None, sample
    return select, sample


def snapshot_summary(
    n: int, label_sum: int, cutoffs: list, last: pd.Timestamp | None, colours: pd.Series
) -> dict:
    """The row counts and shares of features_report.json; `colours`: the scoring rows per
    rule colour."""
    scoring = int(colours.sum())
    shares = (colours[colours > 0] / scoring).sort_values(ascending=False, kind="stable")
    return {
        "labelled_rows": n,
        "scoring_rows": scoring,
        "cutoffs": sorted(str(c.date()) for c in cutoffs),
        "scoring_cutoff": str(last.date()) if scoring and last is not None else None,
        "churn_rate": label_sum / n if n else None,
        "rule_colours": shares.round(4).to_dict(),
    }


def build_flat_features(
    interim: Path, report: dict, data_params: dict
) -> tuple[pd.DataFrame, list]:
    """Flat labelled table: profile features only, one snapshot at the data end."""
    label = data_params.get("label_column", "churn")
    customers = pd.read_parquet(interim / "customers.parquet")
    prof = profile_columns(customers, label)
    base = pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "cutoff": pd.Timestamp(report["as_of"]) + pd.Timedelta(days=1),
            "label": parse_label(customers[label]).astype("Int8"),
        }
    )
    feats = add_profile(base, customers, prof)
    feats["rule_colour"], feats["rule_families"], feats["rule_score"] = "green", 0, 0.0
    specs = build_registry([], {"profile": True}, prof)
    return feats, specs


class SnapshotWriter:
    """Writes feature batches to features.parquet (the labelled rows) and scoring.parquet (the
    scoring snapshot, without label) in `folder`, keeping what the summary needs."""

    def __init__(self, folder: Path, labelled: Rows, scoring: Rows, required: list[str]) -> None:
        self.is_labelled, self.is_scoring, self.required = labelled, scoring, required
        self.labelled = ParquetAppender(folder / "features.parquet")
        self.scoring = ParquetAppender(folder / "scoring.parquet")
        self.label_sum = 0
        self.cutoffs: set = set()
        self.scoring_cutoff: pd.Timestamp | None = None
        self.colours: list[pd.Series] = []

    def write(self, feats: pd.DataFrame) -> None:
        missing = [n for n in self.required if n not in feats.columns]
        if missing:
            raise RuntimeError(f"registered features not computed: {missing}")
        labelled = feats[self.is_labelled(feats)]
        scoring = feats[self.is_scoring(feats)].drop(columns="label")
        self.labelled.write(labelled)
        self.scoring.write(scoring)
        self.label_sum += int(labelled["label"].sum())
        self.cutoffs.update(labelled["cutoff"].unique())
        self.colours.append(scoring["rule_colour"])
        if len(scoring):
            last = scoring["cutoff"].max()
            self.scoring_cutoff = (
                last if self.scoring_cutoff is None else max(last, self.scoring_cutoff)
            )

    def close(self) -> None:
        self.labelled.close()
        self.scoring.close()

    def summary(self) -> dict:
        return snapshot_summary(
            self.labelled.rows,
            self.label_sum,
            list(self.cutoffs),
            self.scoring_cutoff,
            pd.concat(self.colours).value_counts(),
        )


def run(interim: Path, out: Path, params: dict) -> dict:
    report = json.loads((interim / "contract_report.json").read_text())
    fparams = params["features"]
    with tempfile.TemporaryDirectory(prefix="churnlight-features-") as scratch:
        con = None
        try:
            if report["mode"] == "flat":
                feats, specs = build_flat_features(interim, report, params["data"])
            else:
                present = {p.stem for p in interim.glob("*.parquet")}
                con = connect(interim, present, fparams, Path(scratch))
                plan = plan_events(con, present, report, fparams)
                specs = plan.specs
            reg = registry_frame(specs)
            with atomic_dir(out) as tmp:
                if con is None:
                    writer = SnapshotWriter(
                        tmp,
                        lambda df: pd.Series(True, index=df.index),
                        lambda df: df["label"] == 0,
                        list(reg["name"]),
                    )
                    writer.write(feats)
                    writer.close()
                    counts = writer.summary()
                else:
                    counts = write_event_features(
                        con, present, fparams, Path(scratch), tmp, list(reg["name"]), plan
                    )
                summary = {
                    "mode": report["mode"],
                    # what was built: a family can be off even with its table present
                    "families": {
                        f: bool(on) and f in set(reg["family"])
                        for f, on in report["families"].items()
                    },
                    "features_per_family": reg["family"].value_counts().to_dict(),
                    "n_features": len(reg),
                    **counts,
                }
                reg.to_csv(tmp / "feature_registry.csv", index=False, encoding="utf-8")
                write_json(summary, tmp / "features_report.json")
        finally:
            if con is not None:
                con.close()
    log.info(
        "features: %d labelled rows, %d scoring rows, %d features %s (churn rate %.3f)",
        summary["labelled_rows"],
        summary["scoring_rows"],
        summary["n_features"],
        summary["features_per_family"],
        summary["churn_rate"] or 0,
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--interim", default="data/interim")
    ap.add_argument("--out", default="data/processed")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(Path(args.interim), Path(args.out), params)


if __name__ == "__main__":
    main()
