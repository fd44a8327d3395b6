"""Stage `validate`: check the raw folder (`data.source`) against the data contract, write typed
Parquet to data/interim.

On any violation it raises with every problem (table, column, count, example rows); the entry
point prints them and exits with code 2, and nothing is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

from churnlight.features.contract import ValidatedData, validate_tables
from churnlight.features.params import Params, ValidateParams
from churnlight.pipelines.common import Layout, atomic_dir, read_raw_folder, write_json

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
    `encoding` is CSV files' text encoding (`data.encoding`); `rules` the validate section."""
    tables = read_raw_folder(raw, encoding=encoding)
    data = validate_tables(
        tables,
        as_of=as_of,
        label_column=label_column,
        max_examples=rules.max_examples,
        score_ranges={"nps": rules.nps_range, "csat": rules.csat_range},
    )
    with atomic_dir(out) as tmp:
        for name, df in data.tables.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
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
