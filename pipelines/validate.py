"""Stage `validate`: check the raw folder (`data.source`) against the data contract, write typed
Parquet to data/interim.

On any violation it raises with every problem (table, column, count, example rows); the entry
point prints them and exits with code 2, and nothing is written.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import pandas as pd
import yaml

from churnlight.features.contract import ALL_TABLES, EVENT_TABLES, ValidatedData
from churnlight.features.contract_parts import validate_each
from churnlight.features.mapping import MappingError, apply_mapping, parse_mapping
from churnlight.features.params import Params, ValidateParams
from churnlight.pipelines.common import (
    InputError,
    Layout,
    ParquetSink,
    atomic_dir,
    raw_files,
    read_export_file,
    table_parts,
    write_json,
)
from churnlight.pipelines.progress import progress

log = logging.getLogger("churnlight.validate")


def resolve_as_of(as_of: str | None, raw: Path) -> str | None:
    """The user's stated end date, or for the synthetic world the one it wrote beside the truth."""
    if as_of:
        return as_of
    stamp = raw / "_truth" / "as_of.txt"
    return stamp.read_text().strip() if stamp.exists() else None


def mapped_tables(
    raw: Path, mapping: Path, encoding: str, max_examples: int
) -> tuple[dict[str, pd.DataFrame], dict]:
    """The contract tables of an export in `raw`, made by the mapping file (`data.mapping`,
    from `churnlight inspect`), and what the mapping did per table."""
    if not mapping.is_file():
        raise InputError(f"data.mapping: mapping file not found: {mapping}")
    try:
        raw_yaml = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise InputError(f"mapping {mapping} is not valid YAML: {err}") from err
    try:
        spec = parse_mapping(raw_yaml, source=str(mapping), known_tables=ALL_TABLES)
        files = {}
        for name in spec.files:
            path = raw / name
            if path.is_file():
                files[name] = read_export_file(path, encoding)
        return apply_mapping(files, spec, max_examples)
    except MappingError as err:
        raise InputError(str(err)) from err


def validate_folder(
    raw: Path,
    out: Path,
    as_of: str | None,
    label_column: str,
    encoding: str,
    rules: ValidateParams,
    mapping: Path | None = None,
) -> ValidatedData:
    """Validate `raw` and write its typed tables and the contract report to `out`, atomically.
    `encoding` is CSV files' text encoding (`data.encoding`); `rules` the validate section;
    `mapping` a mapping file (`data.mapping`) that makes the contract tables from an export.
    A table at a time, an event table `validate.part_rows` rows at a time (`validate_each`),
    so the memory is that of a part, not of the export (a mapped export is read whole); the
    returned `tables` are empty frames, the typed tables are the Parquet files in `out`."""
    mapped: dict = {}
    if mapping is None:
        files = raw_files(raw)
        # only event tables are checked in parts: the others' rules span rows (unique ids)
        sources = {
            n: partial(
                table_parts, path, n, encoding, rules.part_rows if n in EVENT_TABLES else None
            )
            for n, path in files.items()
        }
    else:
        tables, mapped = mapped_tables(raw, mapping, encoding, rules.max_examples)
        sources = {name: (lambda df=df: [df]) for name, df in tables.items()}
        for name, info in mapped.items():
            left = ", ".join(f"{n:,} with {why}" for why, n in info["rows_left_out"].items() if n)
            log.info(
                "mapped %s -> %s: %s rows%s",
                info["file"],
                name,
                f"{info['rows_in']:,}",
                f" ({left} left out)" if left else "",
            )
    with atomic_dir(out) as tmp:
        sink = ParquetSink(tmp)
        try:
            with progress(
                "validate", total=sum(n in ALL_TABLES for n in sources), unit="tables"
            ) as advance:
                data = validate_each(
                    sources,
                    sink,
                    as_of,
                    label_column=label_column,
                    max_examples=rules.max_examples,
                    score_ranges={"nps": rules.nps_range, "csat": rules.csat_range},
                    on_progress=advance,
                )
        finally:
            sink.close_all()
        if mapping is not None:
            data.report["mapping"] = {"file": str(mapping), "tables": mapped}
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
        mapping_path(paths, params),
    )


def mapping_path(paths: Layout, params: Params) -> Path | None:
    """`data.mapping`, relative to the project root unless absolute; None when not set. It
    must be inside `data.source`: dvc tracks that folder, so editing it re-runs validate."""
    mapping, raw = params.data.mapping, paths.source(params.data)
    if mapping is not None and not (paths.root / mapping).resolve().is_relative_to(raw.resolve()):
        why = "move it into that folder so that dvc re-runs validate when the mapping is edited"
        raise InputError(f"data.mapping: {mapping} is outside data.source ({raw}); {why}")
    return None if mapping is None else paths.root / mapping
