"""Benchmark the whole pipeline, generate through report, on a world of `--customers N`.

Why it exists: issue 17 asks for 1M customers end to end in at most 30 minutes on 2 cores, with
every stage from `validate` on under 8 GB peak RSS (the synthetic generator is a demo input: its
time and memory are reported apart). This script gives those figures in one run:

    python bench/pipeline.py --customers 1000000

It copies the project's params.yaml into a scratch folder (`--workdir`, default a fresh temporary
folder) with `generate.n_customers=N` (plus any `--set KEY=VALUE`, e.g.
`--set train.tune_rows=null`), then runs each stage as `churnlight stage NAME --root WORKDIR`
in its own subprocess, so that each one's wall time, CPU time (user + system, all threads) and
peak RSS (`os.wait4` on that child) are its own. MLflow writes to WORKDIR/mlflow.db, never the
project's store. Logs go to stderr; stdout gets one line per stage, the generator's figures
apart, and ends with exactly one line:

    customers=<N> total_s=<s> train_s=<s> peak_rss_gb=<GiB>

`total_s` is every stage's wall time, generate included; `peak_rss_gb` the largest peak RSS of
the stages from `validate` on (the generator's is on the line before, `generate_rss_gb`).
`--from STAGE` reruns from that stage in an existing `--workdir` (`--to STAGE` stops after
one), e.g. `--from train --set train.tune_rows=null` to compare tuning on all rows on the same
features. The train stage always
tunes from scratch (its Optuna studies are deleted first: a resumed study would time nothing).
The test metrics end in WORKDIR/reports/metrics.json; `--metrics` prints the champion's too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

log = logging.getLogger("churnlight.bench.pipeline")
out = sys.stdout.write  # the report: stdout, one line each (logs go to stderr)
ROOT = Path(__file__).resolve().parents[1]
# dvc.yaml's stages in its order (the order `dvc repro` runs them in): a new stage is benched too
STAGES = tuple(yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def scratch_params(source: Path, customers: int, overrides: list[str]) -> dict:
    """The project's params with generate.n_customers=N and each `KEY=VALUE` (YAML value)."""
    params = yaml.safe_load(source.read_text(encoding="utf-8"))
    params["generate"]["n_customers"] = customers
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set wants KEY=VALUE, not {item!r}")
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        if leaf not in node:
            raise SystemExit(f"--set {key}: params.yaml has no such key")
        node[leaf] = yaml.safe_load(raw)
    return params


def run_stage(name: str, root: Path, env: dict[str, str]) -> dict[str, float]:
    """`churnlight stage NAME --root ROOT` in a child; its wall, CPU seconds and peak RSS."""
    code = "from churnlight.pipelines.cli import app; app()"
    cmd = [sys.executable, "-c", code, "stage", name, "--root", str(root)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr)
    # wait4: this child's own rusage (RUSAGE_CHILDREN would be the max over all children)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"stage {name} failed with exit code {rc}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_gb": usage.ru_maxrss / 1024**2,  # KiB on Linux
    }


def champion_metrics(root: Path) -> str:
    """The champion's test metrics from reports/metrics.json, as one line."""
    path = root / "reports" / "metrics.json"
    if not path.exists():
        return "metrics: none (report not reached)"
    m = json.loads(path.read_text(encoding="utf-8"))
    champ = m.get("champion", "?")
    keys = ("roc_auc", "pr_auc", "recall_at_capacity", "log_loss", "brier")
    got = " ".join(f"{k}={m[champ][k]:.4f}" for k in keys if k in m.get(champ, {}))
    return f"champion={champ} {got}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: temp)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--from", dest="start", choices=STAGES, default="generate")
    ap.add_argument("--to", dest="stop", choices=STAGES, default="report")
    ap.add_argument("--metrics", action="store_true", help="print the champion's test metrics")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    root = args.workdir or Path(tempfile.mkdtemp(prefix="churnlight-bench-"))
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    params = scratch_params(args.params, args.customers, args.set)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    env.setdefault("CHURNLIGHT_PROGRESS", "0")  # plain progress lines in the captured logs
    log.info("bench: %d customers in %s", args.customers, root)

    stages = STAGES[STAGES.index(args.start) : STAGES.index(args.stop) + 1]
    figures: dict[str, dict[str, float]] = {}
    for name in stages:
        if name == "train":  # a resumed Optuna study would time nothing: tune from scratch
            shutil.rmtree(root / "data" / "artifacts" / "tuning", ignore_errors=True)
        figures[name] = run_stage(name, root, env)
        f = figures[name]
        out(f"stage={name} wall_s={f['wall_s']:.1f} cpu_s={f['cpu_s']:.1f} ")
        out(f"rss_gb={f['rss_gb']:.2f}\n")
        sys.stdout.flush()
    if args.metrics:
        out(champion_metrics(root) + "\n")
    after = [f["rss_gb"] for n, f in figures.items() if n != "generate"]
    gen = figures.get("generate", {"wall_s": float("nan"), "rss_gb": float("nan")})
    after_s = sum(f["wall_s"] for n, f in figures.items() if n != "generate")
    out(
        f"generator (apart): generate_s={gen['wall_s']:.1f} generate_rss_gb={gen['rss_gb']:.2f} "
        f"validate_to_report_s={after_s:.1f}\n"
    )
    out(
        f"customers={args.customers} total_s={sum(f['wall_s'] for f in figures.values()):.1f} "
        f"train_s={figures.get('train', {}).get('wall_s', float('nan')):.1f} "
        f"peak_rss_gb={max(after, default=float('nan')):.2f}\n"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
