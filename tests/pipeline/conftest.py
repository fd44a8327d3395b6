"""Helpers for the end-to-end tests: run stage entry points with every path in a tmp folder.

Each stage module's `main(argv)` is called in-process (the same code `dvc repro` runs), with
its paths laid out under one root folder mirroring the project's own layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from churnlight.pipelines import (
    common,
    evaluate,
    explain,
    features,
    generate,
    report,
    segment,
    train,
    validate,
)

STAGES = ("generate", "validate", "features", "train", "evaluate", "explain", "segment", "report")
MODULES = {
    "generate": generate,
    "validate": validate,
    "features": features,
    "train": train,
    "evaluate": evaluate,
    "explain": explain,
    "segment": segment,
    "report": report,
}


def _no_logging(level: str = "INFO") -> None:
    """Stages reconfigure the root logger (force=True); keep pytest's own handlers in place."""


@pytest.fixture(scope="package", autouse=True)
def _quiet_stage_logging():
    with pytest.MonkeyPatch.context() as mp:
        for mod in MODULES.values():
            mp.setattr(mod, "setup_logging", _no_logging)
        mp.setattr(common, "setup_logging", _no_logging)  # the CLI imports it at call time
        yield


def layout(root: Path) -> dict[str, Path]:
    """Where each stage reads and writes inside `root` (the project layout, relocated)."""
    return {
        "params": root / "params.yaml",
        "raw": root / "data" / "raw",
        "truth": root / "data" / "raw" / "_truth",
        "interim": root / "data" / "interim",
        "processed": root / "data" / "processed",
        "models": root / "data" / "artifacts" / "models",
        "tuning": root / "data" / "artifacts" / "tuning",
        "explanations": root / "data" / "artifacts" / "explanations.parquet",
        "reports": root / "reports",
        "segments": root / "reports" / "segments",
    }


def stage_argv(stage: str, p: dict[str, Path], raw: Path | None) -> list[str]:
    """argv for `stage`'s main; `raw=None` lets validate read `data.source` from params."""
    args: dict[str, list[object]] = {
        "generate": ["--out", p["raw"]],
        "validate": [*(["--raw", raw] if raw else []), "--out", p["interim"]],
        "features": ["--interim", p["interim"], "--out", p["processed"]],
        "train": [
            "--processed",
            p["processed"],
            "--out",
            p["models"],
            "--tuning",
            p["tuning"],
        ],
        "evaluate": [
            "--processed",
            p["processed"],
            "--models",
            p["models"],
            "--reports",
            p["reports"],
            "--truth",
            p["truth"],
        ],
        "explain": [
            "--processed",
            p["processed"],
            "--models",
            p["models"],
            "--reports",
            p["reports"],
            "--out",
            p["explanations"],
        ],
        "segment": [
            "--processed",
            p["processed"],
            "--models",
            p["models"],
            "--explanations",
            p["explanations"],
            "--out",
            p["segments"],
            "--reports",
            p["reports"],
        ],
        "report": [
            "--interim",
            p["interim"],
            "--processed",
            p["processed"],
            "--models",
            p["models"],
            "--reports",
            p["reports"],
        ],
    }
    return ["--params", str(p["params"]), *(str(a) for a in args[stage])]


RunStages = Callable[..., dict[str, Path]]


@pytest.fixture(scope="package")
def run_stages() -> RunStages:
    """`run_stages(root, params, stages, raw=None)`: write `params` to `root/params.yaml`, call
    each stage's `main` in order with paths under `root`; returns the layout.

    Validate reads `raw` if given, else the generated `root/data/raw` when generate runs too,
    else `data.source` from the params."""

    def run(
        root: Path, params: dict, stages: tuple[str, ...] = STAGES, raw: Path | None = None
    ) -> dict[str, Path]:
        p = layout(root)
        root.mkdir(parents=True, exist_ok=True)
        p["params"].write_text(
            yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        if raw is None and "generate" in stages:
            raw = p["raw"]  # never the project's own data/raw, which `data.source` names
        for stage in stages:
            MODULES[stage].main(stage_argv(stage, p, raw))
        return p

    return run
