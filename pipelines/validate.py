"""Stage `validate`: check the raw folder (`data.source`) against the data contract, write typed
Parquet to data/interim.

On any violation it raises with every problem (table, column, count, example rows); the entry
point prints them and exits with code 2, and nothing is written.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as arrow
import pyarrow.parquet as pq

from churnlight.features.contract import EVENT_TABLES, ValidatedData, validate_each
from churnlight.features.params import Params, ValidateParams
from churnlight.pipelines.common import (
    InputError,
    Layout,
    atomic_dir,
    raw_files,
    read_raw_table,
    write_json,
)

log = logging.getLogger("churnlight.validate")


def resolve_as_of(as_of: str | None, raw: Path) -> str | None:
    """The user's stated end date, or for the synthetic world the one it wrote beside the truth."""
    if as_of:
        return as_of
    stamp = raw / "_truth" / "as_of.txt"
    return stamp.read_text().strip() if stamp.exists() else None


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


def validate_folder(
    raw: Path, out: Path, as_of: str | None, label_column: str, encoding: str, rules: ValidateParams
) -> ValidatedData:
    """Validate `raw` and write its typed tables and the contract report to `out`, atomically.
    `encoding` is CSV files' text encoding (`data.encoding`); `rules` the validate section.
    A table at a time, an event table `validate.part_rows` rows at a time (`validate_each`):
    each is read, checked, written and let go before the next, so the memory is that of a
    part, not of the export (bench/README.md); the returned `tables` are empty frames, the
    typed tables are the Parquet files in `out`."""
    files = raw_files(raw)
    # only event tables are checked in parts: the others' rules span rows (unique ids)
    sources = {
        n: partial(table_parts, path, n, encoding, rules.part_rows if n in EVENT_TABLES else None)
        for n, path in files.items()
    }
    with atomic_dir(out) as tmp:
        sink = ParquetSink(tmp)
        try:
            data = validate_each(
                sources,
                sink,
                as_of,
                label_column=label_column,
                max_examples=rules.max_examples,
                score_ranges={"nps": rules.nps_range, "csat": rules.csat_range},
            )
        finally:
            sink.close_all()
        write_json(data.report, tmp / "contract_report.json")
    off = [f for f, on in data.report["families"].items() if not on]
    log.info("valid: %s", ", ".join(f"{k}={v:,}" for k, v in data.report["rows"].items()))
    if off:
        log.warning("feature families switched off for lack of data: %s", ", ".join(off))
    return data


def run(paths: Layout, params: Params) -> ValidatedData:
    raw = paths.source(params.data)
    return validate_folder(
        raw,
        paths.interim,
        resolve_as_of(params.data.as_of, raw),
        params.data.label_column,
        params.data.encoding,
        params.validate_,
    )
