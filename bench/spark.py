"""Benchmark the Spark engine (`features.engine: spark`) against DuckDB on the same files.

Why it exists: issue 18 puts the feature definitions on Spark for data that outgrows one
machine. On one machine Spark pays start-up, shuffles and materialised steps that only pay back
on a cluster; this script says how much, and proves the two engines write the same rows:

    python bench/spark.py --customers 50000

The world is the feature bench's (bench/features.py: `--customers`, default 1,000,000, about
47 events a customer), generated and validated once (untimed, reused with `--workdir`). Then,
each in its own subprocess:

1. the feature stage's work on DuckDB (bench/features.py's child, the project's params);
2. the same on Spark `--master` (default local[2]), `build_snapshots_spark`. `spark_s` is the
   work only; the session's start-up is reported apart. Peak memory is the sum of the resident
   sets of the Python driver and its JVM (driver and executors, in local mode), sampled every
   0.2 s.

Then the parity of the two outputs: the share of cells (rows x columns of features.parquet and
scoring.parquet) equal, exactly or for floats within 1e-9 relative (1.0: identical), with the
columns that differ. Progress goes to stderr; stdout gets the report and ends with exactly one
line:

    customers=<n> duckdb_s=<a> spark_s=<b> ratio=<b/a> parity=<share> score_spark_s=<c>

The goal on a 2-core machine: parity 1.0, ratio <= 3. `score_spark_s`: scoring and reasons
of the scoring snapshot on Spark with the champion in `--models` (default
data/artifacts/models, after `dvc repro`; NA without one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import features as feature_bench

log = logging.getLogger("churnlight.bench.spark")


class PeakRss:
    """The largest sum of resident sets of this process and its descendants (the JVM)."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self.me, self.every, self.peak = psutil.Process(), every, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self.stop.is_set():
            total = 0
            for p in [self.me, *self.me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            self.stop.wait(self.every)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def child_spark(
    interim: Path, out: Path, params_path: Path, master: str, models: Path | None
) -> dict:
    """The feature stage's work on Spark: the session's start, then `build_snapshots_spark`;
    then, with a trained champion in `models`, scoring and reasons of the scoring snapshot on
    Spark (`score_spark`)."""
    import yaml

    from churnlight.features.params import parse_params
    from churnlight.features.spark import build_snapshots_spark
    from churnlight.features.spark_session import spark_session

    params = parse_params(yaml.safe_load(params_path.read_text(encoding="utf-8")))
    report = json.loads((interim / "contract_report.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True)
    with PeakRss() as rss:
        t0 = time.perf_counter()
        with spark_session(master, params.spark.conf) as spark:
            start_s = time.perf_counter() - t0
            t1, c1 = time.perf_counter(), feature_bench.cpu_seconds()
            summary, registry = build_snapshots_spark(
                spark,
                interim.resolve().as_uri(),
                out,
                report,
                params.features,
                params.data.label_column,
            )
            seconds = time.perf_counter() - t1
            driver_cpu = feature_bench.cpu_seconds() - c1
            # as the stage does: scoring's reasons read the families from it
            registry.to_csv(out / "feature_registry.csv", index=False, encoding="utf-8")
            score = score_spark(spark, out, models, params) if models else {}
    return {
        **score,
        "seconds": seconds,
        "start_s": start_s,
        "driver_cpu_seconds": driver_cpu,
        "peak_rss_gb": rss.peak / 1024**3,
        "rows": summary["labelled_rows"] + summary["scoring_rows"],
    }


def score_spark(spark, processed: Path, models: Path, params) -> dict:
    """Score the scoring snapshot with the champion in `models` and give the acted tiers their
    reasons, on Spark (`churnlight.models.spark_score`); the seconds, everything computed."""
    import pandas as pd

    from churnlight.models.artifacts import load_champion
    from churnlight.models.spark_score import reasons_for_tiers, score_snapshot

    _, model, features = load_champion(models)
    path = processed / "scoring.parquet"
    dtypes = pd.read_parquet(path).head(0).dtypes.to_dict()  # the schema only
    registry = pd.read_csv(processed / "feature_registry.csv")
    sp, ep = params.segment, params.explain
    t0 = time.perf_counter()
    frame = spark.read.parquet(path.resolve().as_uri())
    scored = score_snapshot(spark, frame, model, features, dtypes, sp.policy, sp.tier_policy())
    scored = scored.localCheckpoint(eager=True)
    reasons = reasons_for_tiers(
        spark, frame, scored, model, features, dtypes, ep.reason_tiers, registry, ep.top_reasons
    )
    n_reasons = reasons.count()
    return {"score_s": time.perf_counter() - t0, "reasons_rows": n_reasons}


def parity(a: Path, b: Path) -> tuple[float, dict]:
    """The share of equal cells of the two folders' snapshot files, and the differences."""
    import pyarrow.parquet as pq

    from churnlight.features.snapshots import snapshot_differences

    found = snapshot_differences(a, b)
    cells = wrong = 0
    for name, problems in found.items():
        meta = pq.read_metadata(a / name)
        cells += meta.num_rows * meta.num_columns
        for p in problems:
            if isinstance(p, tuple) and p[0] == "shape":
                return 0.0, found
            if isinstance(p, tuple):
                wrong += p[1]
    return (1.0 - wrong / cells) if cells else 1.0, found


def bench(args: argparse.Namespace, workdir: Path) -> list[str]:
    world = feature_bench.ensure_world(
        workdir, args.customers, args.months, args.seed, args.logins_per_month, args.params
    )
    rows = world["rows"]
    events = sum(rows.get(t, 0) for t in ("transactions", "activity", "feedback"))
    runs = workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()
    common = ["--workdir", str(workdir), "--params", str(args.params)]
    log.info("DuckDB ...")
    duck, duck_rss, _ = feature_bench.run_child("features", common)
    log.info("DuckDB: %.1f s, peak RSS %.2f GiB", duck["seconds"], duck_rss)
    log.info("Spark on %s ...", args.master)
    extra = ["--models", str(args.models)] if (args.models / "train_report.json").exists() else []
    spark, _, wall = run_spark_child([*common, "--master", args.master, *extra])
    log.info("Spark: %.1f s (+ %.1f s start-up)", spark["seconds"], spark["start_s"])
    share, found = parity(runs / "features", runs / "spark")
    ratio = spark["seconds"] / duck["seconds"]
    score_s = f"{spark['score_s']:.1f}" if "score_s" in spark else "NA"
    scored = (
        f"scoring:    {score_s} s on Spark for the scoring snapshot ({spark['reasons_rows']:,} "
        "customers with reasons)"
        if "score_s" in spark
        else "scoring:    NA (no trained champion in --models: run dvc repro first)"
    )
    return [
        f"customers:  {args.customers:,}; events {events:,}",
        f"duckdb:     {duck['seconds']:.1f} s (CPU {duck['cpu_seconds']:.1f} s), peak RSS "
        f"{duck_rss:.2f} GiB, {duck['rows']:,} rows",
        f"spark:      {spark['seconds']:.1f} s on {args.master} (+ {spark['start_s']:.1f} s "
        f"session start; child wall {wall:.1f} s), peak RSS driver + JVM "
        f"{spark['peak_rss_gb']:.2f} GiB, {spark['rows']:,} rows",
        f"ratio:      {ratio:.2f} (goal <= 3 on 2 cores)",
        scored,
        f"parity:     {share:.6f} of cells equal (exact; floats 1e-9 relative); differences "
        f"{json.dumps(found)}",
        f"customers={args.customers} duckdb_s={duck['seconds']:.1f} "
        f"spark_s={spark['seconds']:.1f} ratio={ratio:.2f} parity={share:.6f} "
        f"score_spark_s={score_s}",
    ]


def run_spark_child(args: list[str]) -> tuple[dict, float, float]:
    """This script as `--child spark` (its own process: one Spark driver per process)."""
    original = feature_bench.__file__
    try:
        feature_bench.__file__ = __file__  # run_child runs the script it names
        return feature_bench.run_child("spark", args)
    finally:
        feature_bench.__file__ = original


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--seed", type=int, default=None, help="default: base.seed in --params")
    ap.add_argument("--logins-per-month", type=float, default=feature_bench.ISSUE_LOGINS_PER_MONTH)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    ap.add_argument(
        "--models",
        type=Path,
        default=Path("data/artifacts/models"),
        help="the trained champion for score_spark_s (default data/artifacts/models; none: NA)",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="kept and reused (see features.py)")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--child", choices=("spark",), help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.params, args.models = args.params.resolve(), args.models.resolve()
    import yaml

    if args.seed is None:
        args.seed = int(yaml.safe_load(args.params.read_text(encoding="utf-8"))["base"]["seed"])
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if args.child:
        wd = args.workdir
        models = args.models if (args.models / "train_report.json").exists() else None
        result = child_spark(
            wd / "interim", wd / "runs" / "spark", args.params, args.master, models
        )
        args.result.write_text(json.dumps(result) + "\n")
        return
    import tempfile

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        lines = bench(args, args.workdir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="churnlight-bench-spark-") as tmp:
            lines = bench(args, Path(tmp))
    print("\n".join(lines))  # noqa: T201  (the report is this script's output)


if __name__ == "__main__":
    main()
