"""Stage `features`: point-in-time snapshots with labels, the feature registry and the rules.

Writes data/processed/features.parquet (labelled snapshots), scoring.parquet (the newest
cutoff, no label), feature_registry.csv and features_report.json.

DuckDB aggregates the event tables one range of customers at a time (`features.partitions`)
within `features.duckdb_memory_limit`, and the snapshots are derived and written in batches of
`features.batch_rows` rows, so memory stays bounded whatever the number of customers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd

from churnlight.features.build import (
    FeatureConfig,
    add_profile,
    aggregate_table,
    aggregate_types,
    check_snapshot_select,
    copy_snapshots,
    drop_aggregates,
    finish_rows,
    make_cutoffs,
    profile_columns,
    read_aggregates,
    sample_aggregates,
    snapshot_select,
)
from churnlight.features.contract import parse_label
from churnlight.features.registry import build_registry, registry_frame
from churnlight.pipelines.common import (
    ParquetAppender,
    atomic_dir,
    load_params,
    setup_logging,
    write_json,
)

log = logging.getLogger("churnlight.features")
KEYS = ["customer_id", "cutoff"]
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
    con.execute("SET preserve_insertion_order = false")
    for name in present:
        path = (interim / f"{name}.parquet").as_posix()
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    return con


def partitions_for(con: duckdb.DuckDBPyConnection, present: set[str], params: dict) -> int:
    """`features.partitions`, or when null one customer range per `events_per_partition` events."""
    if params.get("partitions"):
        return int(params["partitions"])
    events = sum(
        con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in EVENT_TABLES if t in present
    )
    return max(1, math.ceil(events / int(params.get("events_per_partition", 5_000_000))))


@dataclass
class EventFeatures:
    """The aggregated snapshots of the event tables, ready to be written one of two ways."""

    con: duckdb.DuckDBPyConnection
    specs: list
    last: pd.Timestamp | None  # the newest cutoff with rows: the scoring snapshot
    batches: Callable[[], Iterator[pd.DataFrame]]  # pandas: derive_features & co., in batches
    sql: tuple[str, pd.DataFrame] | None  # DuckDB: the same rows as one SELECT, checked


def build_event_features(
    con: duckdb.DuckDBPyConnection, present: set[str], report: dict, params: dict, scratch: Path
) -> EventFeatures:
    """Aggregate, then check the SQL derivation against the pandas one on a sample."""
    cfg = FeatureConfig.from_params(params)
    as_of = pd.Timestamp(report["as_of"])
    cutoffs = make_cutoffs(
        as_of, params.get("first_cutoff"), params.get("last_cutoff"), int(params["step_months"])
    )
    data_end = as_of + pd.Timedelta(days=1)
    parts = partitions_for(con, present, params)
    t0 = time.perf_counter()
    lexicon = load_lexicon(params.get("lexicon"))
    store = scratch / "aggregates.duckdb"
    rows = aggregate_table(con, present, cutoffs, data_end, cfg, lexicon, parts, store)
    log.info(
        "aggregated %d snapshot rows over %d cutoffs (%d customer partitions) in %.1f s",
        sum(rows.values()),
        len(cutoffs),
        parts,
        time.perf_counter() - t0,
    )
    tables = {t: t in present for t in ("activity", "transactions", "feedback", "market")}
    names = [r[0] for r in con.execute("DESCRIBE customers").fetchall()]
    keep = ", ".join(f'"{c}"' for c in names if c not in ("signup_date", "cancel_date"))
    customers = con.execute(f"SELECT {keep} FROM customers").df()
    prof = profile_columns(customers)
    ids = pd.Index(customers["customer_id"])
    families = dict(report["families"])
    if families.get("external") and not {"region", "industry"} <= set(names):
        # market data is joined on the customer's region and industry: without them, no external
        log.warning("external family switched off: customers have no region and industry columns")
        families["external"] = False
    specs = build_registry(list(cfg.windows_days), families, prof, present)

    def finish(agg: pd.DataFrame) -> pd.DataFrame:
        pos = ids.get_indexer(agg["customer_id"].unique())
        return finish_rows(agg, cfg, tables, customers.iloc[pos[pos >= 0]], prof)

    def batches() -> Iterator[pd.DataFrame]:
        for agg in read_aggregates(con, int(params.get("batch_rows", 100_000))):
            yield finish(agg)

    sql = None
    if params.get("derive_in_sql", True) and rows:
        sample = finish(sample_aggregates(con, int(params.get("check_customers", 5000))))
        select = snapshot_select(aggregate_types(con), cfg, tables, prof, sample.dtypes)
        problem = check_snapshot_select(con, select, sample, scratch)
        if problem:
            log.warning("deriving in pandas: the SQL derivation %s", problem)
        else:
            sql = (select, sample)
    return EventFeatures(con, specs, max(rows) if rows else None, batches, sql)


def write_sql_snapshots(ev: EventFeatures, folder: Path) -> dict:
    """features.parquet and scoring.parquet straight from DuckDB; the summary's numbers."""
    assert ev.sql is not None
    select, like = ev.sql
    last = f"TIMESTAMP '{ev.last}'" if ev.last is not None else "NULL"
    copy_snapshots(ev.con, select, "a.label IS NOT NULL", like, folder / "features.parquet")
    scoring = like.drop(columns="label")
    copy_snapshots(ev.con, select, f"a.cutoff = {last}", scoring, folder / "scoring.parquet")
    n, label_sum = ev.con.execute(
        "SELECT count(*), coalesce(sum(label), 0) FROM agg WHERE label IS NOT NULL"
    ).fetchone()
    cutoffs = ev.con.execute("SELECT DISTINCT cutoff FROM agg WHERE label IS NOT NULL").fetchall()
    colours = pd.read_parquet(folder / "scoring.parquet", columns=["rule_colour"])["rule_colour"]
    return snapshot_summary(
        int(n), int(label_sum), [pd.Timestamp(c) for (c,) in cutoffs], ev.last, colours
    )


def snapshot_summary(
    n: int, label_sum: int, cutoffs: list, last: pd.Timestamp | None, colours: pd.Series
) -> dict:
    """The row counts and shares of features_report.json."""
    return {
        "labelled_rows": n,
        "scoring_rows": len(colours),
        "cutoffs": sorted(str(c.date()) for c in cutoffs),
        "scoring_cutoff": str(last.date()) if len(colours) and last is not None else None,
        "churn_rate": label_sum / n if n else None,
        "rule_colours": colours.value_counts(normalize=True).round(4).to_dict(),
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
            pd.concat(self.colours),
        )


def run(interim: Path, out: Path, params: dict) -> dict:
    report = json.loads((interim / "contract_report.json").read_text())
    fparams = params["features"]
    with tempfile.TemporaryDirectory(prefix="churnlight-features-") as scratch:
        con, ev = None, None
        if report["mode"] == "flat":
            feats, specs = build_flat_features(interim, report, params["data"])
            batches: Iterator[pd.DataFrame] = iter([feats])
            labelled: Rows = lambda df: pd.Series(True, index=df.index)  # noqa: E731
            scoring: Rows = lambda df: df["label"] == 0  # noqa: E731
        else:
            present = {p.stem for p in interim.glob("*.parquet")}
            con = connect(interim, present, fparams, Path(scratch))
            ev = build_event_features(con, present, report, fparams, Path(scratch))
            specs, last = ev.specs, ev.last
            batches = ev.batches()
            labelled = lambda df: df["label"].notna()  # noqa: E731
            scoring = lambda df: df["cutoff"] == last  # noqa: E731
        reg = registry_frame(specs)
        try:
            with atomic_dir(out) as tmp:
                t0 = time.perf_counter()
                if ev is not None and ev.sql is not None:
                    missing = [n for n in reg["name"] if n not in ev.sql[1].columns]
                    if missing:
                        raise RuntimeError(f"registered features not computed: {missing}")
                    counts = write_sql_snapshots(ev, tmp)
                else:
                    writer = SnapshotWriter(tmp, labelled, scoring, list(reg["name"]))
                    for feats in batches:
                        writer.write(feats)
                    writer.close()
                    counts = writer.summary()
                log.info(
                    "derived and wrote the snapshots (%s) in %.1f s",
                    "DuckDB" if ev is not None and ev.sql is not None else "pandas",
                    time.perf_counter() - t0,
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
                drop_aggregates(con)
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
