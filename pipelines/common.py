"""Plumbing shared by the stage modules: the project layout, typed params, the one entry point
every stage runs through, logging, reading raw folders and atomic writes.

Stages stay thin: each `pipelines/<stage>.py` has `run(paths, params)` that reads its inputs,
calls library functions in `churnlight.features` / `churnlight.models`, and writes outputs
through the helpers below, so that a failed run never leaves half-written files behind.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import importlib
import itertools
import json
import logging
import os
import resource
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as arrow
import pyarrow.parquet as pq
import yaml

from churnlight.features.params import DataParams, Params, parse_params

log = logging.getLogger("churnlight")

RAW_FORMATS = (".parquet", ".csv", ".csv.gz")
# the stages in the order dvc.yaml runs them: each is a module pipelines/<stage>.py with
# `run(paths: Layout, params: Params)`, and a section of params.yaml
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
    def winback(self) -> Path:
        """The win-back list, its return model and metrics (stage winback, issue 15)."""
        return self.root / "data" / "artifacts" / "winback"

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


def read_raw_folder(folder: str | Path, *, encoding: str) -> dict[str, pd.DataFrame]:
    """Read every `<table>.parquet|.csv|.csv.gz` in a folder (names starting with `_` skipped);
    CSV text in `encoding` (`data.encoding`: a codec, or `auto`, see `csv_encoding`)."""
    return {name: read_raw_table(path, name, encoding) for name, path in raw_files(folder).items()}


def raw_files(folder: str | Path) -> dict[str, Path]:
    """The tables of a raw folder, name -> file, in name order, none of them read yet (so a
    large export can be validated a table at a time: `read_raw_table`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"raw data folder not found: {folder}")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")) or not path.is_file():
            continue
        name = next((path.name[: -len(s)] for s in RAW_FORMATS if path.name.endswith(s)), None)
        if name is None:
            continue
        if name in files:
            raise InputError(f"table '{name}' given twice in {folder} (pick CSV or Parquet)")
        files[name] = path
    return files


def read_raw_table(path: Path, name: str, encoding: str) -> pd.DataFrame:
    """One table of a raw folder (`raw_files`), as `read_raw_folder` reads it."""
    return _read_table(path, name, encoding)


# --- issue 16: exports as they come (`churnlight inspect`, `data.mapping`) ---------------------
EXPORT_FORMATS = (*RAW_FORMATS, ".xlsx")


def export_files(path: str | Path) -> list[Path]:
    """The readable files of an export: the file itself, or a folder's CSV/Parquet/XLSX files
    (names starting with `_` or `.` skipped, as are mapping.yaml and other files)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"export not found: {path}")
    return [
        p
        for p in sorted(path.iterdir())
        if p.is_file()
        and not p.name.startswith(("_", "."))
        and p.name.lower().endswith(EXPORT_FORMATS)
    ]


def read_export_file(path: Path, encoding: str) -> pd.DataFrame:
    """One export file as read for validation: CSV as text (`data.encoding`), Parquet as
    typed, XLSX's first sheet as text."""
    if path.name.lower().endswith(".xlsx"):
        try:
            return pd.read_excel(path, dtype=str, sheet_name=0)
        except (ValueError, OSError, KeyError) as err:
            raise InputError(f"file {path} cannot be read as a workbook: {err}") from err
    return _read_table(path, path.name, encoding)


def _read_table(path: Path, name: str, encoding: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        return pd.DataFrame()  # the contract reports it as an empty table
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return _read_csv(path, name, csv_encoding(path, name, encoding))
    except InputError:
        raise
    except UnicodeDecodeError as err:  # an encoding named in data.encoding that does not fit
        raise InputError(
            f"table '{name}' ({path}) is not {err.encoding} text ({err.reason}): set "
            "data.encoding to the file's encoding, or to auto"
        ) from err
    except (ValueError, OSError, EOFError, csv.Error) as err:  # pandas', Arrow's, gzip's errors
        raise InputError(f"table '{name}' ({path}) cannot be read: {err}") from err


# a byte-order mark names its encoding; without one, `auto` tries these in order. A strict
# UTF-8 decode almost never succeeds on other text, so it goes first; GB18030 (a superset of
# GBK and GB2312) is what Excel writes in a Chinese locale. A charset guesser was tried and
# named short GB18030 files as Japanese or Korean: a fixed order is both right and predictable
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
AUTO_ENCODINGS = ("utf-8-sig", "gb18030")


def _open_bytes(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def csv_encoding(path: Path, name: str, encoding: str) -> str:
    """The codec to read a CSV file with: `encoding` as given (UTF-8 skipping a BOM), or for
    `auto` the BOM's, else the first of AUTO_ENCODINGS that decodes the whole file strictly."""
    if encoding != "auto":
        return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    with _open_bytes(path) as fh:
        head = fh.read(4)
    bom = next((codec for mark, codec in _BOMS if head.startswith(mark)), None)
    if bom:
        return bom
    where = ""
    for codec in AUTO_ENCODINGS:
        line = _undecodable_line(path, codec)
        if line is None:
            if codec != AUTO_ENCODINGS[0]:
                log.info("table '%s' is not UTF-8: read as %s", name, codec)
            return codec
        where = where or f" (not UTF-8 from line {line})"
    raise InputError(
        f"table '{name}' ({path}): its text encoding is not recognised{where}: it is neither "
        "UTF-8 nor GB18030. Save it as 'CSV UTF-8', or set data.encoding to its encoding "
        "(e.g. `dvc exp run -S data.encoding=cp1252`, or `churnlight validate --encoding cp1252`)"
    )


def _undecodable_line(path: Path, codec: str, block: int = 1 << 20) -> int | None:
    """The line where a strict decode of the file as `codec` first fails, or None if it does
    not; read a block at a time, so memory stays flat on big files."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    lines = 1
    with _open_bytes(path) as fh:
        while True:
            chunk = fh.read(block)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                return lines + chunk[: max(err.start, 0)].count(b"\n")
            if not chunk:
                return None
            lines += chunk.count(b"\n")


def _read_csv(path: Path, name: str, codec: str) -> pd.DataFrame:
    """A CSV as text columns. Only empty cells are missing (an id such as "NA" stays a value).
    Excel's habits are read as meant: CRLF line ends, a trailing empty column (dropped), rows of
    empty cells (dropped). A row with more fields than the header is an error naming its line:
    pandas would otherwise fail without naming the file, or drop or shift fields silently."""
    read = {"dtype": str, "keep_default_na": False, "na_values": [""], "encoding": codec}
    with warnings.catch_warnings():
        # pandas warns, then drops a long first row's extra fields: make that an error here
        warnings.filterwarnings("error", "Length of header", pd.errors.ParserWarning)
        try:
            df = pd.read_csv(path, index_col=False, **read)
        except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
            if isinstance(err, pd.errors.ParserError) and "Expected" not in str(err):
                raise  # another parser error (an unclosed quote): reported with the file
            width = _too_long(path, name, codec, str(err))  # raises unless extras are empty
            df = pd.read_csv(path, usecols=range(width), **read)
    empty_cols = [c for c in df.columns if c.startswith("Unnamed: ") and df[c].isna().all()]
    df = df.drop(columns=empty_cols)
    empty_rows = df.isna().all(axis=1)
    if empty_rows.any():
        log.warning("table '%s': %d row(s) with no value skipped", name, int(empty_rows.sum()))
        df = df.loc[~empty_rows].reset_index(drop=True)
    return df


def _too_long(path: Path, name: str, codec: str, pandas_message: str) -> int:
    """The header's number of fields when the only extra fields are empty (Excel's trailing
    column); otherwise an InputError naming the first line with more fields than the header,
    and showing it."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding=codec, newline="") as fh:
        read: list[str] = []

        def lines() -> Iterator[str]:
            for line in fh:
                read.append(line)
                yield line

        reader = csv.reader(lines())
        width, long = len(next(reader, [])), 0
        read.clear()
        for record in reader:
            text, start = "".join(read).rstrip("\r\n"), reader.line_num - len(read) + 1
            read.clear()
            long += len(record) > width
            if len(record) > width and any(f.strip() for f in record[width:]):
                shown = text if len(text) <= 200 else text[:197] + "..."
                raise InputError(
                    f"table '{name}' ({path}): line {start} has {len(record)} fields, the header "
                    f"has {width}:\n    {shown}\n"
                    "A value that contains a comma must be in double quotes."
                )
    if not long:  # pandas and the csv module disagree: pass on what pandas said
        raise InputError(f"table '{name}' ({path}) cannot be read: {pandas_message.strip()}")
    return width


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


class ParquetSink:
    """The typed tables written a part at a time into `folder` (`validate_each`'s sink)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[str, pq.ParquetWriter] = {}

    def add(self, name: str, part: pd.DataFrame) -> None:
        # as DataFrame.to_parquet(index=False) converts and writes it, a row group a part
        table = arrow.Table.from_pandas(part, preserve_index=False)
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.folder / f"{name}.parquet", table.schema)
        self.writers[name].write_table(table)

    def close(self, name: str) -> None:
        self.writers.pop(name).close()

    def column(self, name: str, column: str) -> pd.Series:
        return pd.read_parquet(self.folder / f"{name}.parquet", columns=[column])[column]

    def close_all(self) -> None:
        for name in list(self.writers):
            self.close(name)


def table_parts(path: Path, name: str, encoding: str, rows: int | None) -> Iterator[pd.DataFrame]:
    """A raw table in parts of at most `rows` rows (None: whole): Parquet read a batch at a
    time (never whole), CSV read whole and sliced. At least one part, empty for an empty
    table."""
    if rows is not None and path.suffix == ".parquet" and path.stat().st_size > 0:
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=rows)
            first = next(batches, None)
        except (ValueError, OSError) as err:  # Arrow's errors, as read_raw_table reports them
            raise InputError(f"table '{name}' ({path}) cannot be read: {err}") from err
        if first is None:
            yield read_raw_table(path, name, encoding)
            return
        for batch in itertools.chain([first], batches):
            yield arrow.Table.from_batches([batch]).to_pandas()
        return
    df = read_raw_table(path, name, encoding)
    if rows is None:
        yield df
        return
    for start in range(0, max(len(df), 1), rows):
        yield df.iloc[start : start + rows]
