"""Stage `validate`: check the raw folder (`data.source`) against the data contract, write typed
Parquet to data/interim.

On any violation it raises with every problem (table, column, count, example rows); the entry
point prints them and exits with code 2, and nothing is written.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from churnlight.features.contract import EVENT_TABLES, ValidatedData
from churnlight.features.contract_parts import validate_each
from churnlight.features.params import Params, ValidateParams
from churnlight.pipelines.common import (
    Layout,
    ParquetSink,
    atomic_dir,
    raw_files,
    table_parts,
    write_json,
)

log = logging.getLogger("churnlight.validate")


def resolve_as_of(as_of: str | None, raw: Path) -> str | None:
    """The user's stated end date, or for the synthetic world the one it wrote beside the truth."""
    if as_of:
        return as_of
    stamp = raw / "_truth" / "as_of.txt"
    return stamp.read_text().strip() if stamp.exists() else None


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
