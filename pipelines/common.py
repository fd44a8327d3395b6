"""Plumbing shared by the stage modules: the project layout, typed params, the one entry point
every stage runs through, logging, reading raw folders and atomic writes.

Stages stay thin: each `pipelines/<stage>.py` has `run(paths, params)` that reads its inputs,
calls library functions in `churnlight.features` / `churnlight.models`, and writes outputs
through the helpers below, so that a failed run never leaves half-written files behind.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from churnlight.features.params import DataParams, Params, parse_params

log = logging.getLogger("churnlight")

RAW_FORMATS = (".parquet", ".csv", ".csv.gz")
# the stages in the order dvc.yaml runs them: each is a module pipelines/<stage>.py with
# `run(paths: Layout, params: Params)`, and a section of params.yaml
STAGES = ("generate", "validate", "features", "train", "evaluate", "explain", "segment", "report")
GENERATED_RAW = Path("data/raw")


def is_synthetic(data: DataParams) -> bool:
    """The pipeline runs on the embedded world when `data.source` is the generate stage's folder."""
    return Path(data.source) == GENERATED_RAW


def rfm_scoring(params: Params) -> str:
    """`segment.rfm_scoring`, with `auto` resolved: the domain brief's fixed thresholds fit the
    synthetic world (its business); anyone else's data gets quintiles of its own customers."""
    chosen = params.segment.rfm_scoring
    if chosen != "auto":
        return chosen
    return "fixed" if is_synthetic(params.data) else "quantile"


@dataclass(frozen=True)
class Layout:
    """Where the stages read and write, under one project root (the folder of dvc.yaml)."""

    root: Path = Path()

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def raw(self) -> Path:
        return self.root / GENERATED_RAW

    @property
    def truth(self) -> Path:
        return self.raw / "_truth"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim"

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def models(self) -> Path:
        return self.root / "data" / "artifacts" / "models"

    @property
    def tuning(self) -> Path:
        return self.root / "data" / "artifacts" / "tuning"

    @property
    def explanations(self) -> Path:
        return self.root / "data" / "artifacts" / "explanations.parquet"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def segments(self) -> Path:
        return self.reports / "segments"

    def source(self, data: DataParams) -> Path:
        """The raw folder validate reads: `data.source`, relative to the root unless absolute."""
        return self.root / data.source


def run_stage(name: str, paths: Layout | None = None, params: Params | None = None):
    """Run one stage (what `churnlight stage NAME` and so `dvc repro` call): its module's
    `run(paths, params)`, with params.yaml under the root unless given."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    paths = paths or Layout()
    params = params or load_params(paths.params)
    module = importlib.import_module(f"churnlight.pipelines.{name}")
    return module.run(paths, params)


def setup_logging(level: str = "INFO") -> None:
    """Called by entry points only; importing a module never configures logging."""
    from rich.logging import RichHandler

    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(show_path=False, rich_tracebacks=False)],
        force=True,
    )


def load_params(path: str | Path = "params.yaml") -> Params:
    """params.yaml as typed sections; a ParamsError naming every unknown, missing or wrong key."""
    with Path(path).open(encoding="utf-8") as fh:
        return parse_params(yaml.safe_load(fh) or {}, source=str(path))


class InputError(ValueError):
    """Input a person must fix (a missing folder, a file that cannot be read): the entry point
    prints it and exits with code 2, like a contract violation."""


def read_raw_folder(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Read every `<table>.parquet|.csv|.csv.gz` in a folder (names starting with `_` skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"raw data folder not found: {folder}")
    tables: dict[str, pd.DataFrame] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")) or not path.is_file():
            continue
        name = next((path.name[: -len(s)] for s in RAW_FORMATS if path.name.endswith(s)), None)
        if name is None:
            continue
        if name in tables:
            raise InputError(f"table '{name}' given twice in {folder} (pick CSV or Parquet)")
        tables[name] = _read_table(path, name)
    return tables


def _read_table(path: Path, name: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        return pd.DataFrame()  # the contract reports it as an empty table
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        # only empty cells are missing: an id such as "NA" stays a value
        return pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
        )
    except (ValueError, OSError) as err:  # pandas' parser errors and Arrow's are ValueErrors
        raise InputError(f"table '{name}' ({path}) cannot be read: {err}") from err


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed onto `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o644)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(target)


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        df.to_csv(tmp, index=False)


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", "utf-8")


def write_text(text: str, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
