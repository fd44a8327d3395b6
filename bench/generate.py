"""Benchmark the synthetic world: time to generate, time to write, peak memory.

Why it exists: `generate_world` holds every customer-by-month matrix in memory at
once, so its cost grows with `n_customers * months`. This script gives one
comparable figure per run before and after changes to `features/synthetic.py`.

    python bench/generate.py --customers 100000

Progress goes to stderr through `logging`; stdout gets exactly one line:

    customers=<n> events=<e> generate_s=<a> write_s=<b> rss_gb=<c>

`events` counts transactions + activity + feedback rows. `rss_gb` is the peak
resident set size of this process (ru_maxrss, KiB on Linux) in GiB, which covers
generation and writing together.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from churnlight.features.synthetic import WorldConfig, generate_world
from churnlight.pipelines.common import peak_rss_gb

log = logging.getLogger("churnlight.bench.generate")


def bench(customers: int, months: int, seed: int, out: Path, params: Path) -> str:
    """Generate and write one world into `out`; return the summary line."""
    knobs = yaml.safe_load(params.read_text(encoding="utf-8"))["generate"]
    cfg = WorldConfig.from_params(knobs, n_customers=customers, months=months)

    t0 = time.perf_counter()
    world = generate_world(cfg, seed=seed)
    generate_s = time.perf_counter() - t0
    events = len(world.transactions) + len(world.activity) + len(world.feedback)
    log.info(
        "generated in %.2f s: %d events, peak RSS so far %.2f GiB",
        generate_s,
        events,
        peak_rss_gb(),
    )

    t0 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    world.write(out)
    write_s = time.perf_counter() - t0
    log.info("wrote %s in %.2f s", out, write_s)

    return (
        f"customers={customers} events={events} generate_s={generate_s:.2f} "
        f"write_s={write_s:.2f} rss_gb={peak_rss_gb():.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--seed", type=int, default=None, help="default: base.seed in --params")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder to write the Parquet files to (replaced if present); "
        "default: a temporary folder, deleted afterwards unless --keep",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary output folder")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = int(yaml.safe_load(args.params.read_text(encoding="utf-8"))["base"]["seed"])

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    tmp_root: Path | None = None
    out: Path = args.out
    if out is None:
        tmp_root = Path(tempfile.mkdtemp(prefix="churnlight-bench-"))
        out = tmp_root / "raw"
    try:
        summary = bench(args.customers, args.months, args.seed, out, args.params)
    finally:
        if tmp_root is not None and not args.keep:
            shutil.rmtree(tmp_root, ignore_errors=True)
        elif tmp_root is not None:
            log.info("kept output in %s", out)
    sys.stdout.write(summary + "\n")


if __name__ == "__main__":
    main()
