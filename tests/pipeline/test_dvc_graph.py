"""dvc.yaml matches the code: a stage re-runs when any project module it imports changes.

DVC only knows the dependencies written in dvc.yaml, so a missing entry means an edited module
leaves stale outputs behind silently. The imports are read from the source (no import runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "models", "pipelines")  # churnlight.<pkg> maps onto <pkg>/


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if len(parts) < 3 or parts[0] != "churnlight" or parts[1] not in PACKAGES:
        return None
    path = ROOT.joinpath(*parts[1:])
    if (path / "__init__.py").is_file():  # a subpackage: followed through its __init__
        return path / "__init__.py"
    path = path.with_suffix(".py")
    return path if path.is_file() else None


def _imports(path: Path) -> set[Path]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {f for f in map(_module_file, names) if f is not None}
    return found


def _closure(path: Path) -> set[Path]:
    seen, todo = set(), [path]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += list(_imports(p))
    return seen


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", list(_stages()))
def test_every_imported_module_is_a_dependency(stage):
    spec = _stages()[stage]
    # `churnlight stage NAME` runs pipelines/NAME.py through pipelines/common.py's run_stage
    assert spec["cmd"] == f"churnlight stage {stage}", spec["cmd"]
    entry = _module_file(f"churnlight.pipelines.{stage}")
    assert entry is not None, spec["cmd"]
    deps = [ROOT / d for d in spec.get("deps", [])]

    def covered(f: Path) -> bool:
        return any(f == d or d in f.parents for d in deps)

    missing = sorted(
        str(f.relative_to(ROOT))
        for f in _closure(entry) | _closure(ROOT / "pipelines" / "common.py")
        if f.name != "__init__.py" and not covered(f)
    )
    assert not missing, f"stage {stage!r} imports these but dvc.yaml does not list them: {missing}"


def test_the_check_finds_imports():
    """Guards the test above against passing vacuously."""
    files = {str(f.relative_to(ROOT)) for f in _closure(ROOT / "pipelines" / "explain.py")}
    assert {"pipelines/explain.py", "models/explain/workflow.py", "pipelines/common.py"} <= files


# --- params: exact keys, none that cannot change a result ---------------------------------------


def _params_yaml() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def _has_key(tree: dict, key: str) -> bool:
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("stage", list(_stages()))
def test_params_dependencies_exist_and_exclude_runtime_settings(stage):
    """Every params key a stage depends on is in params.yaml, and none is (or holds) a setting
    that cannot change results: changing those must re-run nothing."""
    from churnlight.features.params import runtime_keys

    declared = _stages()[stage].get("params", [])
    tree = _params_yaml()
    assert [k for k in declared if not _has_key(tree, k)] == []
    runtime = runtime_keys()
    holding = sorted(r for r in runtime for k in declared if r == k or r.startswith(k + "."))
    assert holding == [], f"stage {stage!r} depends on settings that cannot change results"


def test_runtime_settings_are_known():
    """Guards the test above: the settings the issue names are marked runtime."""
    from churnlight.features.params import runtime_keys

    assert {
        "features.range_workers",
        "features.duckdb_threads",
        "features.duckdb_memory_limit",
        "base.log_level",
        "explain.threads",
    } <= runtime_keys()
