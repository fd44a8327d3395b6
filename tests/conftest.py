"""Shared fixtures: one tiny seeded world per session, and per-test folders written from it.

The world is generated once (about half a second); tests that change tables work on copies
(`tiny_tables`) so the session object is never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnlight.features.params import record_reads
from churnlight.features.synthetic import World, WorldConfig, generate_world
from churnlight.pipelines.common import STAGES, Layout, load_params, run_stage

ROOT = Path(__file__).resolve().parents[1]
GENERATE = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "params.yaml").read_text(encoding="utf-8")
)["generate"]
TINY_CONFIG = WorldConfig.from_params(GENERATE, n_customers=400, months=18, start="2025-01-01")
TINY_SEED = 7


@pytest.fixture(scope="session")
def tiny_world() -> World:
    """400 customers over 18 months from 2025-01-01 (data end 2026-06-30), seed 7."""
    return generate_world(TINY_CONFIG, seed=TINY_SEED)


@pytest.fixture
def tiny_tables(tiny_world: World) -> dict[str, pd.DataFrame]:
    """Copies of the tiny world's raw tables, safe to modify in a test."""
    return {name: df.copy() for name, df in tiny_world.raw_tables().items()}


@pytest.fixture
def raw_dir(tmp_path: Path, tiny_world: World) -> Path:
    """The tiny world's raw tables as `<table>.csv` files in a fresh folder."""
    folder = tmp_path / "raw"
    folder.mkdir()
    for name, df in tiny_world.raw_tables().items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture
def tiny_params(tmp_path: Path) -> Path:
    """params.yaml sized for the tiny world, written to `tmp_path/params.yaml`; returns its path."""
    with (ROOT / "params.yaml").open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh)
    params["generate"].update(n_customers=400, months=18, start="2025-01-01")
    params["features"]["first_cutoff"] = "2025-10-01"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


# --- end-to-end pipeline runs (tests/pipeline) -------------------------------------------------


def _tiny_pipeline_params() -> dict:
    with (ROOT / "params.yaml").open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh)
    params["base"]["log_level"] = "WARNING"
    params["generate"].update(
        n_customers=TINY_CONFIG.n_customers, months=TINY_CONFIG.months, start=TINY_CONFIG.start
    )
    # the tiny world runs no campaigns: the stage tests log their own contacts where they need
    # them (test_campaigns_stage, test_treated_rows); the default world's are in tests/model
    params["generate"]["campaigns"] = False
    # ... nor win-back campaigns (test_winback_stage turns them on)
    params["generate"]["winback"] = False
    params["features"]["first_cutoff"] = "2025-10-01"
    # one thread: LightGBM's OpenMP threads crawl on a busy two-core machine
    params["train"]["lgbm"].update(n_estimators=30, n_jobs=1)
    params["train"].update(n_trials={"logreg": 2, "tree": 2, "lgbm": 2}, folds=2, timeout_s=30)
    params.setdefault("explain", {})["global_sample"] = 200
    # no headless Chromium in every pipeline run: the model card tests turn the screenshot on
    params.setdefault("report", {})["screenshot"] = False
    return params


@pytest.fixture(scope="session")
def make_pipeline_params():
    """Factory: a fresh params dict (deep copy each call) for fast end-to-end runs: the tiny
    world's size, first cutoff 2025-10-01, 30 single-threaded LightGBM trees, a 200-row SHAP
    sample, no screenshot of the model card (`report.screenshot: false`). `data.source` stays
    `data/raw` (synthetic mode) unless the test changes it."""
    base = _tiny_pipeline_params()
    return lambda: copy.deepcopy(base)


@pytest.fixture(autouse=True)
def _keep_root_logging():
    """The `churnlight` entry point configures the root logger (force=True); put pytest's
    handlers and level back after each test."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture(autouse=True, scope="session")
def _mlflow_in_tmp(tmp_path_factory):
    """MLflow runs made by tests go to a throwaway store, never the project's mlflow.db."""
    import os

    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    yield
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


# --- running stages through the one entry point ------------------------------------------------


def layout(root: Path) -> dict[str, Path]:
    """Where each stage reads and writes inside `root` (the project layout, relocated)."""
    paths = Layout(root)
    names = (
        "params",
        "raw",
        "truth",
        "interim",
        "processed",
        "models",
        "tuning",
        "explanations",
        "reports",
        "segments",
    )
    return {name: getattr(paths, name) for name in names}


RunStages = Callable[..., dict[str, Path]]


@pytest.fixture(scope="session")
def run_stages() -> RunStages:
    """`run_stages(root, params, stages)`: write `params` to `root/params.yaml`, run each stage in
    order with paths under `root`; returns the layout, plus under "reads" the params keys each
    stage read (`record_reads`). `data.source` names the raw folder validate reads (relative
    to `root`: `data/raw` is what generate writes there)."""

    def run(root: Path, params: dict, stages: tuple[str, ...] = STAGES) -> dict:
        paths = Layout(root)
        root.mkdir(parents=True, exist_ok=True)
        paths.params.write_text(
            yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        typed = load_params(paths.params)
        reads: dict[str, set[str]] = {}
        for stage in stages:
            with record_reads() as seen:
                run_stage(stage, paths, typed)
            reads[stage] = seen
        return {**layout(root), "reads": reads}

    return run


# --- Spark (issue 18): one local session per test process -------------------------------------


def spark_available() -> str | None:
    """Why the Spark engine cannot run here (no pyspark, no Java), or None."""
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark not installed (the churnlight[spark] extra)"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java 17 (scripts/test.sh installs a headless JRE as root)"
    return None


SPARK_TEST_MASTER = "local[2]"
# small shuffles for small worlds: Spark's default 200 partitions cost seconds each stage
SPARK_TEST_CONF = {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"}


@pytest.fixture(scope="session")
def spark():
    """A SparkSession on local[2] shared by the Spark tests of this process; a stage run with
    `spark.master: local[2]` uses it instead of starting its own."""
    reason = spark_available()
    if reason:
        pytest.skip(reason)
    from churnlight.features.spark_session import spark_session

    with spark_session(SPARK_TEST_MASTER, SPARK_TEST_CONF) as session:
        yield session
