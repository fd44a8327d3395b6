"""Benchmark the feature stage against a hand-written DuckDB query over the same Parquet.

Why it exists: the feature stage promises point-in-time features at DuckDB speed and in
bounded memory. This script gives one comparable figure per run:

    python bench/features.py --customers 100000

It generates a synthetic world once (`--customers`, default 1,000,000, with about 47 events a
customer: the 50 M events of the issue that asked for this benchmark), validates it (untimed),
then runs, each in its own subprocess so that each one's peak RSS is measured alone
(`os.wait4` on that child):

1. the feature stage's work, `churnlight.features.build.build_snapshots` (what
   `churnlight.pipelines.features.run` calls), with the project's params (`--params`);
2. the reference: hand-written SQL, no churnlight code, that computes the core behaviour
   aggregates for every (customer, cutoff) active at the cutoffs whose rows the stage writes
   (those with a fully observed label window, and the newest): counts of each activity type and
   purchases and spend in the 30/90/180/365-day windows, and recency, written to Parquet with
   `COPY`. Both write the same number of rows.

Wall times are measured inside each child around the work only (interpreter start-up and
imports excluded); peak RSS covers the whole child. CPU times (all threads) are printed too: on a
shared machine they say whether a slow run was slow or starved. Progress goes to stderr; stdout
gets the report and ends with exactly one line:

    ratio=<x> rss_gb=<y> feature_s=<a> reference_s=<b>

`ratio` is feature_s / reference_s and `rss_gb` the feature stage's peak RSS in GiB. The goal:
ratio <= 1.5 and rss_gb <= 2 on a 2-core, 24 GB machine.

With `--workdir DIR` the validated world (DIR/interim) is kept and reused by later runs of the
same size, months, seed and logins, so before/after comparisons see identical input. The
world's logins are `--logins-per-month` (default 0.25); `--logins-per-month 3.0` gives the
project's default world (`generate.logins_per_month`), about 93 events a customer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("churnlight.bench.features")

WINDOWS = (30, 90, 180, 365)
# logins a customer a month in the benchmark's world: 1M customers give about 47.5M events, the
# size the issue asked for; the project's default world (3.0) gives 93M
ISSUE_LOGINS_PER_MONTH = 0.25
ACTIVITY_TYPES = (
    "login",
    "visit",
    "booking",
    "booking_cancelled",
    "outreach_sent",
    "outreach_replied",
    "service_due",
    "service_done",
)


# --- children ---------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_world(
    workdir: Path, customers: int, months: int, seed: int, logins: float, params_path: Path
) -> dict:
    """Generate and validate the world into workdir/interim, as stages generate and validate
    would (their library calls, without the raw files in between)."""
    import yaml

    from churnlight.features.contract import validate_tables
    from churnlight.features.params import parse_params
    from churnlight.features.synthetic import WorldConfig, generate_world

    params = parse_params(yaml.safe_load(params_path.read_text(encoding="utf-8")))
    gen = params.generate.model_dump()
    gen.update(n_customers=customers, months=months, logins_per_month=logins)
    t0 = time.perf_counter()
    world = generate_world(WorldConfig.from_params(gen), seed=seed)
    generate_s = time.perf_counter() - t0
    raw, as_of = world.raw_tables(), str(world.as_of.date())
    del world
    t0 = time.perf_counter()
    data = validate_tables(
        raw,
        as_of=as_of,
        label_column=params.data.label_column,
        max_examples=params.validate_.max_examples,
        score_ranges={"nps": params.validate_.nps_range, "csat": params.validate_.csat_range},
    )
    del raw
    interim = workdir / "interim"
    shutil.rmtree(interim, ignore_errors=True)
    interim.mkdir(parents=True)
    for name, df in data.tables.items():
        df.to_parquet(interim / f"{name}.parquet", index=False)
    report = json.dumps(data.report, indent=2, ensure_ascii=False, default=str)
    (interim / "contract_report.json").write_text(report + "\n", encoding="utf-8")
    validate_s = time.perf_counter() - t0
    return {"generate_s": generate_s, "validate_s": validate_s, "rows": data.report["rows"]}


def child_features(interim: Path, out: Path, params_path: Path) -> dict:
    """The feature stage's work as `dvc repro` runs it, minus argument parsing and the
    registry and report files."""
    import yaml

    from churnlight.features.build import build_snapshots
    from churnlight.features.params import parse_params

    params = parse_params(yaml.safe_load(params_path.read_text(encoding="utf-8")))
    report = json.loads((interim / "contract_report.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True)
    label_column = params.data.label_column
    t0, c0 = time.perf_counter(), cpu_seconds()
    summary, _ = build_snapshots(interim, out, report, params.features, label_column)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - c0,
        "rows": summary["labelled_rows"] + summary["scoring_rows"],
        "labelled_rows": summary["labelled_rows"],
        "scoring_rows": summary["scoring_rows"],
        "n_features": summary["n_features"],
    }


def feature_cutoffs(interim: Path, params_path: Path) -> list[str]:
    """The cutoffs of the rows the feature stage writes: monthly from features.first_cutoff to
    the data end, those whose label window is fully observed, and the newest (scoring).

    Recomputed here (not imported) so that the reference shares no code with the stage.
    """
    import pandas as pd
    import yaml

    p = yaml.safe_load(params_path.read_text(encoding="utf-8"))["features"]
    as_of = pd.Timestamp(json.loads((interim / "contract_report.json").read_text())["as_of"])
    end = pd.Timestamp(p["last_cutoff"]) if p.get("last_cutoff") else as_of + pd.Timedelta(days=1)
    start = (
        pd.Timestamp(p["first_cutoff"]) if p.get("first_cutoff") else end - pd.DateOffset(months=12)
    )
    out, k = [], 0
    while (c := end - pd.DateOffset(months=k * int(p["step_months"]))) >= start:
        out.append(c)
        k += 1
    key = "inactivity_days" if p["churn_definition"] == "inactivity" else "label_window_days"
    data_end = as_of + pd.Timedelta(days=1)
    horizon = pd.Timedelta(days=int(p[key]))
    return [str(c) for c in sorted(out) if c + horizon <= data_end or c == max(out)]


def reference_sql(interim: Path, cutoffs: list[str], out: Path) -> list[str]:
    """Hand-written: the core behaviour aggregates per (customer, cutoff), straight to Parquet."""

    def src(name: str) -> str:
        return f"read_parquet('{(interim / f'{name}.parquet').as_posix()}')"

    # Activity in two steps: per (customer, cutoff, event type) one count per window, then one
    # row per (customer, cutoff). Four filters per joined event instead of one per output column
    # (9 types x 4 windows) makes this about 4x faster than the one-step form.
    per_type = ", ".join(
        f"count(*) FILTER (WHERE a.ts >= s.cutoff - INTERVAL {w} DAY) AS n_{w}d" for w in WINDOWS
    )
    known = ", ".join(f"'{t}'" for t in ACTIVITY_TYPES)
    act_aggs = []
    for w in WINDOWS:
        for t in ACTIVITY_TYPES:
            act_aggs.append(
                f"coalesce(sum(n_{w}d) FILTER (WHERE event_type = '{t}'), 0) AS {t}_{w}d"
            )
        act_aggs.append(
            f"coalesce(sum(n_{w}d) FILTER (WHERE event_type NOT IN ({known})), 0) AS other_{w}d"
        )
    act_aggs.append("max(last_ts) AS last_activity")
    tx_aggs = []
    for w in WINDOWS:
        tx_aggs.append(
            f"count(*) FILTER (WHERE t.ts >= s.cutoff - INTERVAL {w} DAY) AS purchases_{w}d"
        )
        tx_aggs.append(
            f"coalesce(sum(t.amount) FILTER (WHERE t.ts >= s.cutoff - INTERVAL {w} DAY), 0) "
            f"AS spend_{w}d"
        )
    tx_aggs.append("max(t.ts) AS last_tx")
    cut_list = ", ".join(f"TIMESTAMP '{c}'" for c in cutoffs)
    act_cols = [f"{t}_{w}d" for w in WINDOWS for t in (*ACTIVITY_TYPES, "other")]
    tx_cols = [f"{k}_{w}d" for w in WINDOWS for k in ("purchases", "spend")]
    final_cols = ", ".join(f"coalesce({c}, 0) AS {c}" for c in act_cols + tx_cols)
    return [
        f"CREATE TEMP TABLE cutoffs AS SELECT unnest([{cut_list}]) AS cutoff",
        f"""CREATE TEMP TABLE spine AS
        SELECT c.customer_id, k.cutoff FROM {src("customers")} c CROSS JOIN cutoffs k
        WHERE c.signup_date < k.cutoff AND (c.cancel_date IS NULL OR c.cancel_date >= k.cutoff)""",
        f"""CREATE TEMP TABLE act AS
        SELECT customer_id, cutoff, {", ".join(act_aggs)}
        FROM (
          SELECT s.customer_id, s.cutoff, a.event_type, {per_type}, max(a.ts) AS last_ts
          FROM spine s JOIN {src("activity")} a
            ON a.customer_id = s.customer_id AND a.ts < s.cutoff
           AND a.ts >= s.cutoff - INTERVAL 365 DAY
          GROUP BY s.customer_id, s.cutoff, a.event_type
        )
        GROUP BY customer_id, cutoff""",
        f"""CREATE TEMP TABLE tx AS
        SELECT s.customer_id, s.cutoff, {", ".join(tx_aggs)}
        FROM spine s JOIN {src("transactions")} t
          ON t.customer_id = s.customer_id AND t.ts < s.cutoff
        GROUP BY s.customer_id, s.cutoff""",
        f"""COPY (
          SELECT s.customer_id, s.cutoff, {final_cols},
                 date_diff('second', last_tx, s.cutoff) / 86400.0 AS recency_days,
                 date_diff('second', last_activity, s.cutoff) / 86400.0
                   AS activity_recency_days
          FROM spine s LEFT JOIN act USING (customer_id, cutoff)
          LEFT JOIN tx USING (customer_id, cutoff)
        ) TO '{out.as_posix()}' (FORMAT parquet)""",
    ]


def out_of_order(path: Path) -> int:
    """Rows of a Parquet file not strictly after the previous one in (customer_id, cutoff)."""
    import duckdb

    key, rows = "(customer_id, cutoff)", f"read_parquet('{path.as_posix()}', file_row_number=true)"
    return duckdb.sql(f"""
        SELECT count(*) FROM (
            SELECT {key} <= lag({key}) OVER (ORDER BY file_row_number) AS bad FROM {rows}
        ) WHERE bad
    """).fetchall()[0][0]


def child_reference(interim: Path, out: Path, params_path: Path) -> dict:
    import duckdb

    statements = reference_sql(interim, feature_cutoffs(interim, params_path), out)
    t0, c0 = time.perf_counter(), cpu_seconds()
    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{(out.parent / 'duckdb_tmp').as_posix()}'")
    for sql in statements:
        con.execute(sql)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out.as_posix()}')").fetchone()[0]
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": int(rows)}


# --- parent -----------------------------------------------------------------------------------


def run_child(kind: str, args: list[str]) -> tuple[dict, float, float]:
    """Run this script as `--child kind`; return its JSON result, peak RSS (GiB), wall seconds."""
    fd, name = tempfile.mkstemp(prefix=f"bench-{kind}-", suffix=".json")
    os.close(fd)
    result_path = Path(name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *args]
    cmd += ["--result", str(result_path)]
    try:
        t0 = time.perf_counter()
        # stdout to stderr: whatever the child prints must not mix with this report
        proc = subprocess.Popen(cmd, stdout=sys.stderr)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max over all)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"child {kind} failed with exit code {proc.returncode}")
        result = json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)
    return result, usage.ru_maxrss / 1024**2, wall  # ru_maxrss: KiB on Linux


def ensure_world(
    workdir: Path, customers: int, months: int, seed: int, logins: float, params: Path
) -> dict:
    stamp = workdir / "world.json"
    key = {"customers": customers, "months": months, "seed": seed, "logins_per_month": logins}
    if stamp.exists() and (workdir / "interim" / "contract_report.json").exists():
        saved = json.loads(stamp.read_text())
        saved.setdefault("logins_per_month", 3.0)  # stamps from before the knob: its default
        if {k: saved.get(k) for k in key} == key:
            log.info("reusing the world in %s", workdir)
            return saved
    log.info("generating %d customers over %d months into %s", customers, months, workdir)
    base = ["--workdir", str(workdir), "--params", str(params)]
    sizes = ["--customers", str(customers), "--months", str(months), "--seed", str(seed)]
    sizes += ["--logins-per-month", repr(logins)]
    result, rss, wall = run_child("world", [*base, *sizes])
    log.info(
        "world: generate %.1f s, validate %.1f s, total %.1f s, peak RSS %.2f GiB",
        result["generate_s"],
        result["validate_s"],
        wall,
        rss,
    )
    saved = {**key, **result}
    stamp.write_text(json.dumps(saved, indent=2) + "\n")
    return saved


def bench(args: argparse.Namespace, workdir: Path) -> list[str]:
    world = ensure_world(
        workdir, args.customers, args.months, args.seed, args.logins_per_month, args.params
    )
    rows = world["rows"]
    events = sum(rows.get(t, 0) for t in ("transactions", "activity", "feedback"))
    runs = workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()
    common = ["--workdir", str(workdir), "--params", str(args.params)]

    log.info("feature stage ...")
    feat, feat_rss, feat_wall = run_child("features", common)
    log.info(
        "feature stage: %.1f s (child wall %.1f s), peak RSS %.2f GiB",
        feat["seconds"],
        feat_wall,
        feat_rss,
    )
    # untimed: the stage writes its rows in (customer_id, cutoff) order without a global sort
    unsorted = sum(
        out_of_order(runs / "features" / f) for f in ("features.parquet", "scoring.parquet")
    )
    if unsorted:
        raise RuntimeError(
            f"the feature stage wrote {unsorted} rows out of (customer_id, cutoff) order"
        )
    log.info("reference query ...")
    ref, ref_rss, ref_wall = run_child("reference", common)
    log.info(
        "reference: %.1f s (child wall %.1f s), peak RSS %.2f GiB",
        ref["seconds"],
        ref_wall,
        ref_rss,
    )

    ratio = feat["seconds"] / ref["seconds"]
    return [
        f"customers:        {args.customers:,}",
        f"events:           {events:,} (transactions {rows.get('transactions', 0):,}, "
        f"activity {rows.get('activity', 0):,}, feedback {rows.get('feedback', 0):,})",
        f"feature stage:    {feat['seconds']:.1f} s (CPU {feat['cpu_seconds']:.1f} s), "
        f"peak RSS {feat_rss:.2f} GiB, "
        f"{feat['rows']:,} rows ({feat['labelled_rows']:,} labelled + {feat['scoring_rows']:,} "
        f"scoring), {feat['n_features']} features, in (customer_id, cutoff) order",
        f"reference query:  {ref['seconds']:.1f} s (CPU {ref['cpu_seconds']:.1f} s), "
        f"peak RSS {ref_rss:.2f} GiB, "
        f"{ref['rows']:,} rows",
        f"ratio:            {ratio:.2f} (goal <= 1.5; CPU-time ratio "
        f"{feat['cpu_seconds'] / ref['cpu_seconds']:.2f}); feature RSS goal <= 2 GiB",
        f"events={events} customers={args.customers}",
        f"ratio={ratio:.2f} rss_gb={feat_rss:.2f} feature_s={feat['seconds']:.1f} "
        f"reference_s={ref['seconds']:.1f}",
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--seed", type=int, default=None, help="default: base.seed in --params")
    ap.add_argument(
        "--logins-per-month",
        type=float,
        default=ISSUE_LOGINS_PER_MONTH,
        help="generate.logins_per_month of the world; logins are most of the events: 0.25 "
        "(the default) gives about 47 events a customer, 3.0 (the project's default world) 93",
    )
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the world and the outputs, kept and reused by runs of the same size; "
        "default: a temporary folder, deleted afterwards unless --keep",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--child", choices=("world", "features", "reference"), help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.params = args.params.resolve()
    import yaml

    project = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    if args.seed is None:
        args.seed = int(project["base"]["seed"])

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )

    if args.child:
        wd = args.workdir
        if args.child == "world":
            result = child_world(
                wd, args.customers, args.months, args.seed, args.logins_per_month, args.params
            )
        elif args.child == "features":
            result = child_features(wd / "interim", wd / "runs" / "features", args.params)
        else:
            result = child_reference(wd / "interim", wd / "runs" / "reference.parquet", args.params)
        args.result.write_text(json.dumps(result) + "\n")
        return

    tmp_root: Path | None = None
    workdir: Path = args.workdir
    if workdir is None:
        tmp_root = Path(tempfile.mkdtemp(prefix="churnlight-bench-features-"))
        workdir = tmp_root
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        lines = bench(args, workdir.resolve())
    finally:
        if tmp_root is not None and not args.keep:
            shutil.rmtree(tmp_root, ignore_errors=True)
        elif tmp_root is not None:
            log.info("kept %s", tmp_root)
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
