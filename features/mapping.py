"""A user's export mapped onto the data contract (`data.mapping`): which source file is which
contract table, renames, type casts, value maps (event types, labels such as Yes/No or 是/否),
constants (a feedback kind), an amount derived as quantity x unit price, and rows to leave out
(returns, lines without a customer).

`churnlight inspect` writes such a mapping (features/inspect.py); the validate stage applies it
before the contract checks, so an export runs through the pipeline untouched. A mapping that does
not fit its files fails with a MappingError naming the mapping file, the table and the column.

The mapping (YAML)::

    tables:
      transactions:                 # a contract table
        file: invoices.csv          # its source file, in data.source
        columns:                    # contract or new column: source column, or a derivation
          customer_id: CustomerID
          ts: InvoiceDate
          amount: {multiply: [Quantity, UnitPrice]}
        types: {amount: number}     # number (blank cells missing), date, text
        values: {event_type: {Anmeldung: login}}   # other values pass unchanged
        drop_missing: [customer_id] # rows left out when these are empty
        drop_negative: [amount]     # ... or below zero (returns, credits)

`columns` lists every column kept: an unlisted source column is left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

CAST_TYPES = ("number", "date", "text")
TABLE_KEYS = ("file", "columns", "types", "values", "drop_missing", "drop_negative")
DERIVATIONS = ("multiply", "value", "first")
_TRUE_KEYS = {"true", "yes", "y", "on"}
_FALSE_KEYS = {"false", "no", "n", "off"}
# what a spreadsheet puts around a number: thousands separators, currency signs, spaces
_NUMBER_NOISE = re.compile(r"[,\s$€£¥￥]")


class MappingError(ValueError):
    """A mapping that does not fit its export; the message names the mapping file, the table
    and the column, and what was found instead."""


@dataclass(frozen=True)
class TableMap:
    table: str
    file: str
    columns: dict[str, Any]
    types: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[Any, Any]] = field(default_factory=dict)
    drop_missing: tuple[str, ...] = ()
    drop_negative: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportMapping:
    source: str  # where the mapping came from, for messages
    tables: dict[str, TableMap]

    @property
    def files(self) -> list[str]:
        return [t.file for t in self.tables.values()]


def parse_mapping(raw: Any, source: str, known_tables: tuple[str, ...]) -> ExportMapping:
    """The mapping file's YAML, checked for shape: every problem found is named in one error."""
    problems: list[str] = []
    if not isinstance(raw, dict) or not isinstance(raw.get("tables"), dict) or not raw["tables"]:
        raise MappingError(f"{source}: expected a `tables:` section naming at least one table")
    extra = sorted(set(raw) - {"tables", "version"})
    if extra:
        problems.append(f"unknown top-level key(s) {extra} (expected tables)")
    tables: dict[str, TableMap] = {}
    files: dict[str, str] = {}
    for name, spec in raw["tables"].items():
        where = f"table {name}"
        if name not in known_tables:
            problems.append(f"{where}: not a contract table (one of {', '.join(known_tables)})")
            continue
        if not isinstance(spec, dict):
            problems.append(f"{where}: expected keys {', '.join(TABLE_KEYS)}")
            continue
        unknown = sorted(set(spec) - set(TABLE_KEYS))
        if unknown:
            problems.append(f"{where}: unknown key(s) {unknown} (expected {', '.join(TABLE_KEYS)})")
        file = spec.get("file")
        if not isinstance(file, str) or not file:
            problems.append(f"{where}: `file` must name a file of the export")
            continue
        if file in files:
            problems.append(f"{where}: file {file} is already table {files[file]}")
        files[file] = name
        columns = spec.get("columns") or {}
        if not isinstance(columns, dict) or not columns:
            problems.append(f"{where}: `columns` must map contract columns to source columns")
            continue
        for target, src in columns.items():
            problems += [f"{where}, column {target}: {p}" for p in _column_problems(src)]
        types = spec.get("types") or {}
        values = spec.get("values") or {}
        for key, value in (("types", types), ("values", values)):
            if not isinstance(value, dict):
                problems.append(f"{where}: `{key}` must map column names")
        if isinstance(types, dict):
            for col, kind in types.items():
                if kind not in CAST_TYPES:
                    problems.append(
                        f"{where}, column {col}: type {kind!r} unknown (one of {CAST_TYPES})"
                    )
        if isinstance(values, dict):
            for col, vmap in values.items():
                if not isinstance(vmap, dict):
                    problems.append(f"{where}, column {col}: `values` must map old to new values")
        for key in ("types", "values", "drop_missing", "drop_negative"):
            named = spec.get(key) or []
            if key.startswith("drop") and not isinstance(named, list):
                problems.append(f"{where}: `{key}` must be a list of columns")
                continue
            for col in named:
                if col not in columns:
                    problems.append(
                        f"{where}, column {col}: named in `{key}` but not in `columns` "
                        f"({', '.join(map(str, columns))})"
                    )
        tables[name] = TableMap(
            table=name,
            file=file,
            columns=dict(columns),
            types=dict(types) if isinstance(types, dict) else {},
            values=dict(values) if isinstance(values, dict) else {},
            drop_missing=tuple(spec.get("drop_missing") or ()),
            drop_negative=tuple(spec.get("drop_negative") or ()),
        )
    if problems:
        raise MappingError(_message(source, problems))
    return ExportMapping(source, tables)


def _column_problems(src: Any) -> list[str]:
    if isinstance(src, str) and src:
        return []
    if isinstance(src, dict) and len(src) == 1:
        ((how, arg),) = src.items()
        if how == "multiply" and isinstance(arg, list) and len(arg) >= 2:
            return [] if all(isinstance(a, str) for a in arg) else ["multiply names columns"]
        if how == "first" and isinstance(arg, list) and arg:
            return [] if all(isinstance(a, str) for a in arg) else ["first names columns"]
        if how == "value" and not isinstance(arg, dict | list):
            return []
    return [
        f"expected a source column name, {{multiply: [a, b]}}, {{first: [a, b]}} or "
        f"{{value: constant}}; got {src!r}"
    ]


def _message(source: str, problems: list[str]) -> str:
    lines = [f"mapping {source} does not fit the export ({len(problems)} problem(s)):"]
    return "\n".join(lines + [f"  - {p}" for p in problems])


def _sources(src: Any) -> list[str]:
    if isinstance(src, str):
        return [src]
    ((how, arg),) = src.items()
    return list(arg) if how in ("multiply", "first") else []


def to_number(values: pd.Series) -> pd.Series:
    """Numbers as a spreadsheet writes them: blank cells missing, thousands separators and
    currency signs ignored; anything else stays non-numeric (NaN where the text was not empty)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    text = values.astype("string").str.replace(_NUMBER_NOISE, "", regex=True)
    text = text.mask(text == "")
    return pd.to_numeric(text, errors="coerce").astype("float64")


def _bad_numbers(raw: pd.Series, conv: pd.Series) -> pd.Series:
    blank = raw.isna() | (raw.astype("string").str.strip() == "")
    return ~blank.fillna(True).astype(bool) & conv.isna()


def _key_matches(key: Any, text: pd.Series) -> pd.Series:
    """YAML reads an unquoted Yes/No/On/Off as a boolean: such a key matches those words."""
    low = text.str.lower()
    if isinstance(key, bool):
        return low.isin(_TRUE_KEYS if key else _FALSE_KEYS).fillna(False).astype(bool)
    return (low == str(key).strip().lower()).fillna(False).astype(bool)


def _examples(df: pd.DataFrame, mask: pd.Series, cols: list[str], n: int) -> str:
    ex = df.loc[mask.to_numpy(), [c for c in cols if c in df.columns]].head(n)
    return "\n".join("      " + line for line in ex.to_string(max_colwidth=40).splitlines())


def apply_mapping(
    files: Mapping[str, pd.DataFrame], mapping: ExportMapping, max_examples: int = 5
) -> tuple[dict[str, pd.DataFrame], dict[str, dict]]:
    """The contract tables made from the export's files (file name -> frame, as read), and per
    table what was done (source file, rows in, rows left out and why). Inputs are not changed."""
    problems: list[str] = []
    tables: dict[str, pd.DataFrame] = {}
    report: dict[str, dict] = {}
    for name, tm in mapping.tables.items():
        where = f"table {name} (file {tm.file})"
        if tm.file not in files:
            problems.append(f"{where}: file not found in the export (files: {sorted(files)})")
            continue
        df = files[tm.file]
        missing = [s for src in tm.columns.values() for s in _sources(src) if s not in df.columns]
        if missing:
            problems += [
                f"{where}, column {c}: not in the file (columns: {list(df.columns)})"
                for c in dict.fromkeys(missing)
            ]
            continue
        out = pd.DataFrame(index=df.index)
        for target, src in tm.columns.items():
            if isinstance(src, str):
                out[target] = df[src]
                continue
            ((how, arg),) = src.items()
            if how == "value":
                out[target] = pd.Series(arg, index=df.index)
            elif how == "first":  # the first non-empty of several columns
                col = df[arg[0]].copy()
                for other in arg[1:]:
                    col = col.fillna(df[other])
                out[target] = col
            else:
                product = pd.Series(1.0, index=df.index)
                for col in arg:
                    conv = to_number(df[col])
                    bad = _bad_numbers(df[col], conv)
                    if bad.any():
                        problems.append(
                            f"{where}, column {col}: {int(bad.sum())} value(s) not a number "
                            f"(for {target} = {' x '.join(arg)}), e.g.\n"
                            + _examples(df, bad, list(arg), max_examples)
                        )
                    product = product * conv
                out[target] = product.round(6)
        for col, kind in tm.types.items():
            raw = out[col]
            if kind == "number":
                conv = to_number(raw)
                bad = _bad_numbers(raw, conv)
                if bad.any():
                    src = tm.columns[col] if isinstance(tm.columns[col], str) else col
                    problems.append(
                        f"{where}, column {src}: {int(bad.sum())} value(s) not a number, e.g.\n"
                        + _examples(df, bad, _sources(tm.columns[col]) or [], max_examples)
                    )
                out[col] = conv
            elif kind == "date":
                text = raw.astype("string").str.strip()
                text = text.mask(text == "")
                conv = pd.to_datetime(text, errors="coerce", format="mixed")
                bad = text.notna() & conv.isna()
                if bad.any():
                    problems.append(
                        f"{where}, column {tm.columns[col]}: {int(bad.sum())} value(s) not a "
                        "date, e.g.\n" + _examples(df, bad, _sources(tm.columns[col]), max_examples)
                    )
                out[col] = conv
            else:
                out[col] = raw.astype("string").str.strip()
        for col, vmap in tm.values.items():
            text = out[col].astype("string").str.strip()
            mapped = out[col].astype(object).copy()
            for old, new in vmap.items():
                mapped[_key_matches(old, text).to_numpy()] = new
            out[col] = mapped
        rows_in = len(out)
        keep = pd.Series(True, index=out.index)
        dropped: dict[str, int] = {}
        for col in tm.drop_missing:
            blank = out[col].isna() | (out[col].astype("string").str.strip() == "").fillna(True)
            dropped[f"missing {col}"] = int((keep & blank).sum())
            keep &= ~blank.astype(bool)
        for col in tm.drop_negative:
            neg = to_number(out[col]) < 0
            dropped[f"negative {col}"] = int((keep & neg).sum())
            keep &= ~neg
        tables[name] = out.loc[keep.to_numpy()].reset_index(drop=True)
        report[name] = {"file": tm.file, "rows_in": rows_in, "rows_left_out": dropped}
    if problems:
        raise MappingError(_message(mapping.source, problems))
    return tables, report


def snake_case(name: str) -> str:
    """A source column name as a contract-style name (MonthlyCharges -> monthly_charges); a name
    in another script stays as written."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name).strip())
    text = re.sub(r"[^\w]+", "_", text).strip("_").lower()
    return text or "column"
