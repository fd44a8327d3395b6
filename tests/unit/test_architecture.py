"""The codebase's shape, checked so it does not drift back: one-way layering, library modules
of one job (at most about 500 lines), thin stages, nothing run at import.

The source is read with `ast`; nothing is imported except in the import test.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ("features", "models")
MAX_MODULE_LINES = 520  # "about 500"
MAX_RUN_LINES = 45  # a stage's run(): read, call, write, log
MAX_STAGE_LINES = 110  # all of a stage's functions: run() plus small readers and log lines
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


def _files(*folders: str) -> list[Path]:
    return sorted(f for folder in folders for f in (ROOT / folder).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("features", ("churnlight.models", "churnlight.pipelines")),
        ("models", ("churnlight.pipelines",)),
        ("bench", ("churnlight.pipelines.train", "churnlight.pipelines.segment")),
    ],
)
def test_layering_is_one_way(folder, forbidden):
    """features never imports models; the library never imports the stages; benchmarks load
    models and snapshots through the library, not through a stage."""
    bad = {
        str(f.relative_to(ROOT)): sorted(m for m in _imported(f) if m.startswith(forbidden))
        for f in _files(folder)
    }
    assert {f: m for f, m in bad.items() if m} == {}


def test_library_modules_have_one_job():
    sizes = {str(f.relative_to(ROOT)): len(f.read_text().splitlines()) for f in _files(*LIBRARY)}
    assert {f: n for f, n in sizes.items() if n > MAX_MODULE_LINES} == {}


@pytest.mark.parametrize("stage", STAGES)
def test_stages_are_thin(stage):
    """A stage module has run(paths, params) of a few lines and no logic of its own."""
    tree = ast.parse((ROOT / "pipelines" / f"{stage}.py").read_text(encoding="utf-8"))
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "run" in funcs, "a stage is its run(paths, params)"
    args = [a.arg for a in funcs["run"].args.args]
    assert args == ["paths", "params"], args
    lengths = {name: f.end_lineno - f.lineno + 1 for name, f in funcs.items()}
    assert lengths["run"] <= MAX_RUN_LINES, lengths
    assert sum(lengths.values()) <= MAX_STAGE_LINES, lengths
    assert not [n.name for n in tree.body if isinstance(n, ast.ClassDef)], "classes are library"


def test_importing_does_nothing(tmp_path):
    """No folder made, no logging configured, no MLflow set up at import: import every module
    in a fresh interpreter inside an empty folder and look."""
    modules = [
        "churnlight."
        + ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for f in _files("features", "models", "pipelines")
    ]
    code = (
        "import importlib, logging, os, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "assert not logging.getLogger().handlers, logging.getLogger().handlers\n"
        "assert os.listdir('.') == [], os.listdir('.')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_layering_check_finds_imports():
    """Guards the layering test against passing vacuously."""
    assert "churnlight.features.params" in _imported(ROOT / "pipelines" / "common.py")
    assert importlib.util.find_spec("churnlight.features.params") is not None
