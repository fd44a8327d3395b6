"""Benchmark `churnlight score` end to end on new data: the weekly run without retraining.

Why it exists: the weekly lists must come out of a large customer base in minutes on a small
machine (the goal: a million customers in at most 120 s and 4 GiB peak RSS on 2 cores). This
script times what `churnlight score` does, through the same call (`score_folder`):

1. validate the new raw folder against the contract;
2. build the one scoring snapshot (the day after the data end) with the training features;
3. score with the calibrated champion (`score_s` includes the tiers, value tiers, playbook and
   control group: the segment table);
4. reasons for the tiers acted on (`explain.reason_tiers`);
5. write the segment files and the summary page.

Untimed, before: a champion trained cheaply on a small world of the same kind
(`--train-customers`, the generate, validate, features and train stages in a project folder
under the work folder, `--train-models` candidates with two Optuna trials each and two folds,
registered in that project's own MLflow store), and the new data: a world of `--customers`
customers generated with another seed, as Parquet. Both are kept and reused with `--workdir`.

The scoring runs in its own process, so its peak RSS (`os.wait4`) is its own; the model comes
from the MLflow registry (`models:/<train.registered_model>@champion`), as by default.

    python bench/score_new.py --customers 100000

Progress goes to stderr; stdout gets exactly one line:

    customers=<n> total_s=<t> features_s=<f> score_s=<s> reasons_s=<r> write_s=<w> rss_gb=<m>
    validate_s=<v>

(on one line), then ` scored=<k> events=<e> cpu_s=<c>`. `customers` is the size of the
export (the customers table); `scored` those still customers at the data end, the rows of the
scoring snapshot (about a quarter of a synthetic world's customers have left by then); `events`
the rows of the event tables validated and aggregated. `total_s` is the whole `score_folder`
call (model loading and the drift check included); `cpu_s` the scoring process's CPU seconds
(all threads), which say on a shared machine whether a slow run was slow or starved. Other
processes on the machine slow every figure down: the log reports the load average before and
after.
"""

from __future__ import annotations

import argparse
import copy
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

log = logging.getLogger("churnlight.bench.score_new")

# logins a customer a month, as bench/features.py: about 47 events a customer
ISSUE_LOGINS_PER_MONTH = 0.25


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def world_params(base: dict, customers: int, logins: float, train_models: list[str]) -> dict:
    """The project's params with the world's size and a cheap training run."""
    params = copy.deepcopy(base)
    params["data"]["source"] = "data/raw"
    params["generate"].update(n_customers=customers, logins_per_month=logins, campaigns=False)
    tp = params["train"]
    tp["models"] = train_models
    tp.update(n_trials={k: 2 for k in tp["n_trials"]}, folds=2)
    params.setdefault("report", {})["screenshot"] = False
    return params


# --- children ---------------------------------------------------------------------------------


def child_train(project: Path) -> dict:
    """generate, validate, features and train in `project` (its own MLflow store)."""
    from churnlight.pipelines.common import Layout, load_params, run_stage

    paths = Layout(project)
    params = load_params(paths.params)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{(project / 'mlflow.db').as_posix()}"
    t0 = time.perf_counter()
    for stage in ("generate", "validate", "features", "train"):
        run_stage(stage, paths, params)
    report = json.loads((paths.models / "train_report.json").read_text(encoding="utf-8"))
    return {"seconds": time.perf_counter() - t0, "champion": report["champion"]}


def child_world(project: Path, out: Path, customers: int, seed: int) -> dict:
    """The new data: the project's world with `customers` customers and another seed."""
    from churnlight.features.synthetic import WorldConfig, generate_world
    from churnlight.pipelines.common import load_params

    params = load_params(project / "params.yaml")
    knobs = params.generate.model_dump()
    knobs["n_customers"] = customers
    t0 = time.perf_counter()
    world = generate_world(WorldConfig.from_params(knobs), seed=seed)
    out.mkdir(parents=True)
    (out / "_truth").mkdir()
    for name, df in world.raw_tables().items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    (out / "_truth" / "as_of.txt").write_text(str(world.as_of.date()) + "\n")
    rows = {name: len(df) for name, df in world.raw_tables().items()}
    return {"seconds": time.perf_counter() - t0, "rows": rows}


def child_score(project: Path, data: Path, out: Path) -> dict:
    """`churnlight score DATA --out OUT --params PROJECT/params.yaml`, as the command runs it."""
    import numpy as np

    from churnlight.pipelines.common import load_params
    from churnlight.pipelines.scoring import DEFAULT_MODEL, score_folder

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{(project / 'mlflow.db').as_posix()}"
    params = load_params(project / "params.yaml")
    np.seterr(all="ignore")
    model = DEFAULT_MODEL.replace("churnlight", params.train.registered_model)
    return score_folder(data, out, params, model, None, project)


# --- parent -----------------------------------------------------------------------------------


def run_child(kind: str, args: list[str]) -> tuple[dict, float, float]:
    """Run this script as `--child kind`; return its JSON result (with `cpu_s`, the child's
    CPU seconds, user + system, all threads), peak RSS (GiB), wall seconds."""
    fd, name = tempfile.mkstemp(prefix=f"bench-{kind}-", suffix=".json")
    os.close(fd)
    result_path = Path(name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *args]
    cmd += ["--result", str(result_path)]
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=sys.stderr)  # stdout stays this report's
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"child {kind} failed with exit code {code}")
        result = json.loads(result_path.read_text())
        result["cpu_s"] = usage.ru_utime + usage.ru_stime
    finally:
        result_path.unlink(missing_ok=True)
    return result, usage.ru_maxrss / 1024**2, wall  # ru_maxrss: KiB on Linux


def ensure(stamp: Path, key: dict, kind: str, args: list[str]) -> dict:
    """Run child `kind` unless `stamp` holds the same `key` (then reuse its result)."""
    if stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved.get("key") == key:
            log.info("reusing %s (%s)", kind, stamp.parent)
            return saved
    result, rss, wall = run_child(kind, args)
    log.info("%s: %.1f s, peak RSS %.2f GiB: %s", kind, wall, rss, result)
    saved = {"key": key, **result}
    stamp.write_text(json.dumps(saved, indent=2) + "\n")
    return saved


def bench(args: argparse.Namespace, workdir: Path) -> str:
    base = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    seed = int(base["base"]["seed"]) if args.seed is None else args.seed
    params = world_params(base, args.train_customers, args.logins_per_month, args.train_models)
    params["base"]["seed"] = seed
    project = workdir / "project"
    key = {"params": params}
    if (
        not (project / "train.json").exists()
        or json.loads((project / "train.json").read_text()).get("key") != key
    ):
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    trained = ensure(project / "train.json", key, "train", ["--project", str(project)])
    log.info("champion %s", trained["champion"])

    data = workdir / f"new_{args.customers}_{seed + 1}"
    # the world depends on the generate section and the seed only: a change elsewhere in
    # params.yaml (a runtime setting) must not regenerate a million customers
    world_key = {"generate": params["generate"], "customers": args.customers, "seed": seed + 1}
    stamp = workdir / f"world_{args.customers}.json"
    if not stamp.exists() or json.loads(stamp.read_text()).get("key") != world_key:
        shutil.rmtree(data, ignore_errors=True)
    common = ["--project", str(project), "--data", str(data), "--customers", str(args.customers)]
    world = ensure(stamp, world_key, "world", common)
    tables = ("transactions", "activity", "feedback")
    events = sum(v for k, v in world["rows"].items() if k in tables)
    log.info("new data: %d customers, %d events", args.customers, events)

    log.info("load average before: %s (%d cores)", load_avg(), os.cpu_count() or 0)
    out = workdir / "scored"
    t, rss, wall = run_child("score", [*common, "--out", str(out)])
    log.info("load average after: %s; child wall %.1f s", load_avg(), wall)
    score_s = t["score"] + t["segment"]
    return (
        f"customers={args.customers} total_s={t['total']:.1f} "
        f"features_s={t['features']:.1f} score_s={score_s:.1f} reasons_s={t['reasons']:.1f} "
        f"write_s={t['write']:.1f} rss_gb={rss:.2f} validate_s={t['validate']:.1f} "
        f"scored={int(t['customers'])} events={events} cpu_s={t['cpu_s']:.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--train-customers", type=int, default=5000)
    ap.add_argument(
        "--train-models",
        nargs="+",
        default=["lgbm"],
        help="candidates trained (default lgbm: the costly case for reasons)",
    )
    ap.add_argument("--seed", type=int, default=None, help="default: base.seed in --params")
    ap.add_argument("--logins-per-month", type=float, default=ISSUE_LOGINS_PER_MONTH)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the project, the new data and the outputs, kept and reused; "
        "default: a temporary folder, deleted afterwards",
    )
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--child", choices=("train", "world", "score"), help=argparse.SUPPRESS)
    ap.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.params = args.params.resolve()
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("CHURNLIGHT_PROGRESS", "0")
    if args.child:
        if args.child == "train":
            result = child_train(args.project)
        elif args.child == "world":
            seed = int(yaml.safe_load((args.project / "params.yaml").read_text())["base"]["seed"])
            result = child_world(args.project, args.data, args.customers, seed + 1)
        else:
            result = child_score(args.project, args.data, args.out)
        args.result.write_text(json.dumps(result) + "\n")
        return
    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="bench-score-new-") as tmp:
            line = bench(args, Path(tmp))
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        line = bench(args, args.workdir.resolve())
    sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
