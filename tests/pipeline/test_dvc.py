"""`dvc repro` on a copy of the project with tiny params: everything is produced, a second run
does nothing, and a changed parameter re-runs only the stages that depend on it.

The stage commands (`churnlight stage NAME`) import the editable install, i.e. the code in the
project itself; the copied code files only serve as DVC dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STAGES = (
    "generate",
    "validate",
    "features",
    "train",
    "winback",
    "evaluate",
    "campaigns",
    "explain",
    "segment",
    "report",
)
OUTPUTS = (
    "data/raw/customers.parquet",
    "data/raw/_truth/risk.parquet",
    "data/interim/contract_report.json",
    "data/processed/features.parquet",
    "data/processed/scoring.parquet",
    "data/processed/feature_registry.csv",
    "data/artifacts/models/lgbm.joblib",
    "data/artifacts/models/train_report.json",
    "data/artifacts/tuning/optuna.db",
    "data/artifacts/explanations.parquet",
    "data/artifacts/winback/list.parquet",
    "data/artifacts/winback/metrics.json",
    "reports/metrics.json",
    "reports/metrics_by_slice.csv",
    "reports/campaigns.csv",
    "reports/campaigns.json",
    "reports/plots/roc.csv",
    "reports/importance.csv",
    "reports/importance_by_family.csv",
    "reports/importance_by_model.csv",
    "reports/figures/shap",
    "reports/figures/shap/shap_bar.png",
    "reports/segments/scored_customers.csv",
    "reports/segments/high.csv",
    "reports/drift.csv",
    "reports/model_card.md",
    "reports/model_card.html",
    "reports/figures/card",  # empty: the tiny params turn the screenshot off
    "dvc.lock",
)


def _declared_outputs() -> list[str]:
    """Every out, metric and plot file dvc.yaml declares (OUTPUTS adds files inside them)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    found = []
    for spec in stages.values():
        for key in ("outs", "metrics", "plots"):
            for item in spec.get(key, []):
                found.append(next(iter(item)) if isinstance(item, dict) else item)
    return found


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="dvc needs git here"),
]


def _env(tmp: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)  # stage commands call plain `python`
    return {
        **os.environ,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site-cache"),
        "DVC_GLOBAL_CONFIG_DIR": str(tmp / "dvc-global"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    # a tiny-world `dvc repro` takes about 2 minutes alone (eight stage processes, each importing
    # the stack); far longer beside the default-world test on a two-core machine
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=400)


def _repro(project: Path, env: dict[str, str]) -> str:
    proc = _run([sys.executable, "-m", "dvc", "repro"], project, env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


def _ran(output: str) -> set[str]:
    return {s for s in STAGES if f"Running stage '{s}'" in output}


@pytest.fixture
def project(tmp_path: Path, make_pipeline_params) -> Path:
    proj = tmp_path / "project"
    proj.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("features", "models", "pipelines"):
        shutil.copytree(ROOT / folder, proj / folder, ignore=ignore)
    shutil.copy2(ROOT / "dvc.yaml", proj / "dvc.yaml")
    params = make_pipeline_params()
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    env = _env(tmp_path)
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        proc = _run(cmd, proj, env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proj


def test_repro_runs_caches_and_reruns_on_param_change(project: Path, tmp_path: Path):
    env = _env(tmp_path)

    first = _repro(project, env)
    assert _ran(first) == set(STAGES), first
    missing = [o for o in (*OUTPUTS, *_declared_outputs()) if not (project / o).exists()]
    assert missing == []

    second = _repro(project, env)
    assert "Running stage" not in second, second

    # settings that cannot change results are no dependency: changing them re-runs nothing
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["features"]["range_workers"] = 1
    params["features"]["duckdb_threads"] = 1
    params["base"]["log_level"] = "DEBUG"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    unchanged = _repro(project, env)
    assert "Running stage" not in unchanged, unchanged

    params["evaluate"]["capacity"] = 0.15
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    third = _repro(project, env)
    ran = _ran(third)
    assert "evaluate" in ran, third
    assert not ran & {"generate", "validate", "features"}, third
    metrics = yaml.safe_load((project / "reports/metrics.json").read_text(encoding="utf-8"))
    assert metrics["capacity"] == 0.15
