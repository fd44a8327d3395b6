"""Stage `validate`: check the raw folder (`data.source`) against the data contract, write typed
Parquet to data/interim.

On any violation it raises with every problem (table, column, count, example rows); the entry
point prints them and exits with code 2, and nothing is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import yaml

from churnlight.features.contract import ALL_TABLES, ValidatedData, validate_tables
from churnlight.features.mapping import MappingError, apply_mapping, parse_mapping
from churnlight.features.params import Params, ValidateParams
from churnlight.pipelines.common import (
    InputError,
    Layout,
    atomic_dir,
    read_export_file,
    read_raw_folder,
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
    from `churnlight inspect`), and what the mapping did per table. The mapping must be inside
    `raw`: dvc tracks the folder, so editing the mapping re-runs validate."""
    if not mapping.is_file():
        raise InputError(f"data.mapping: mapping file not found: {mapping}")
    if not mapping.resolve().is_relative_to(raw.resolve()):
        raise InputError(
            f"data.mapping: {mapping} is outside data.source ({raw}); move it into that folder "
            "so that dvc re-runs validate when the mapping is edited"
        )
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
    `mapping` a mapping file (`data.mapping`) that makes the contract tables from an export."""
    mapped: dict = {}
    if mapping is None:
        tables = read_raw_folder(raw, encoding=encoding)
    else:
        tables, mapped = mapped_tables(raw, mapping, encoding, rules.max_examples)
        for name, info in mapped.items():
            left = ", ".join(f"{n:,} with {why}" for why, n in info["rows_left_out"].items() if n)
            log.info(
                "mapped %s -> %s: %s rows%s",
                info["file"],
                name,
                f"{info['rows_in']:,}",
                f" ({left} left out)" if left else "",
            )
    with progress("validate", total=len(tables), unit="tables") as advance:
        data = validate_tables(
            tables,
            as_of=as_of,
            label_column=label_column,
            max_examples=rules.max_examples,
            score_ranges={"nps": rules.nps_range, "csat": rules.csat_range},
            on_progress=advance,
        )
    if mapping is not None:
        data.report["mapping"] = {"file": str(mapping), "tables": mapped}
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
        mapping_path(paths, params),
    )


def mapping_path(paths: Layout, params: Params) -> Path | None:
    """`data.mapping`, relative to the project root unless absolute; None when not set."""
    return None if params.data.mapping is None else paths.root / params.data.mapping
