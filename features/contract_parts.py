"""Validation a table at a time, and an event table a part at a time (`validate_each`):
what lets a large export be checked within a small memory. The rules are the contract's
(`churnlight.features.contract`); this module only orders the tables, feeds the parts through
them, merges the parts' violations into the whole table's, and hands each typed part to a
sink (in memory for `validate_tables`, Parquet files for the validate stage and
`churnlight score`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import pandas as pd

from churnlight.features.contract import (
    ALL_TABLES,
    CONTACTS,
    DATA_TABLES,
    EVENT_TABLES,
    FAMILY_TABLES,
    FEEDBACK_TYPES,
    OPTIONAL,
    REQUIRED,
    ContractError,
    ValidatedData,
    Violation,
    _coerce,
    _examples,
    _infinite,
    _latest_date,
    _numeric_attributes,
    _row_rules,
    _run_schema,
    _schema,
    contacts_frame,
    is_known,
    parse_label,
)


def _contacts_known(
    contacts: pd.DataFrame, known: pd.Index, where: str, n_ex: int, out: list[Violation]
) -> None:
    """Every contact names a known customer: one in customers, or (without a customers table)
    one seen in the event tables (`where` says which)."""
    unk = ~is_known(contacts["customer_id"], known)
    if unk.any():
        out.append(
            Violation(
                CONTACTS,
                "customer_id",
                f"contacts for unknown customers (not in {where})",
                int(unk.sum()),
                _examples(contacts, unk, n_ex),
            )
        )


def _check_table(
    name: str,
    df: pd.DataFrame,
    label_column: str,
    score_ranges: Mapping[str, tuple[float, float]],
    n_ex: int,
    out: list[Violation],
    start: int = 0,
) -> pd.DataFrame | None:
    """One table (or a part of one: its rows numbered from `start`) on its own: columns,
    types, values and row rules. The typed table, or None when it cannot be typed (an empty
    log file without columns is no table either)."""
    if df.empty and name == CONTACTS and len(df.columns) == 0:
        return None  # an empty log file: no contacts yet
    if df.empty and name != CONTACTS:
        out.append(Violation(name, "-", "empty table (no rows)", 0))
        return None
    missing = [c for c in REQUIRED[name] if c not in df.columns]
    if missing:
        for c in missing:
            out.append(
                Violation(name, c, f"missing column (columns found: {list(df.columns)})", len(df))
            )
        return None
    kinds = {**REQUIRED[name], **OPTIONAL[name]}
    before = len(out)
    tdf = _coerce(name, df.set_axis(pd.RangeIndex(start, start + len(df))), kinds, n_ex, out)
    if len(out) > before:
        return None
    _run_schema(name, tdf, _schema(name, label_column), n_ex, out)
    _row_rules(name, tdf, score_ranges, n_ex, out)
    if name == "customers":
        tdf = _numeric_attributes(tdf, set(kinds) | {label_column})
    for col in tdf.columns.difference(list(kinds), sort=False):  # attributes, extra columns
        if pd.api.types.is_float_dtype(tdf[col]):
            _infinite(name, tdf, col, tdf[col], n_ex, out)
    if name == "feedback":  # the features read every feedback column: absent ones empty
        absent = {c: pd.NA for c in OPTIONAL[name] if c not in tdf.columns}
        tdf = tdf.assign(**absent).astype(FEEDBACK_TYPES)
    return tdf


def _parse_label_column(
    customers: pd.DataFrame, label_column: str, n_ex: int, out: list[Violation]
) -> pd.DataFrame:
    """A flat table's label as 0/1, or a violation naming the words not understood."""
    lab = parse_label(customers[label_column])
    bad = lab.isna()
    if bad.any():
        out.append(
            Violation(
                "customers",
                label_column,
                "label not understood (use yes/no, true/false, 1/0)",
                int(bad.sum()),
                _examples(customers, bad, n_ex),
            )
        )
        return customers
    return customers.assign(**{label_column: lab})


def _unknown_events(name: str, df: pd.DataFrame, known: pd.Index, n_ex: int) -> list[Violation]:
    unk = ~is_known(df["customer_id"], known)
    if not unk.any():
        return []
    problem = "events for unknown customers (not in customers)"
    return [Violation(name, "customer_id", problem, int(unk.sum()), _examples(df, unk, n_ex))]


def _late_events(name: str, df: pd.DataFrame, stated: pd.Timestamp, n_ex: int) -> list[Violation]:
    late = df["ts"] >= stated.normalize() + pd.Timedelta(days=1)
    if not late.any():
        return []
    problem = f"timestamps after the data's stated end date (as_of {stated.date()})"
    return [Violation(name, "ts", problem, int(late.sum()), _examples(df, late, n_ex))]


class TableSink(Protocol):
    """Where `validate_each` puts the typed tables: `add` a part (in row order), `close` a
    table once its parts are in, `column` of a closed table read back."""

    def add(self, name: str, part: pd.DataFrame) -> None: ...

    def close(self, name: str) -> None: ...

    def column(self, name: str, column: str) -> pd.Series: ...


class MemorySink:
    """The typed tables held in memory (`validate_tables`)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[pd.DataFrame]] = {}
        self.tables: dict[str, pd.DataFrame] = {}

    def add(self, name: str, part: pd.DataFrame) -> None:
        self.parts.setdefault(name, []).append(part)

    def close(self, name: str) -> None:
        parts = self.parts.pop(name)
        self.tables[name] = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def column(self, name: str, column: str) -> pd.Series:
        return self.tables[name][column]


def validate_each(
    sources: Mapping[str, Callable[[], Iterable[pd.DataFrame]]],
    sink: TableSink,
    as_of: str | pd.Timestamp | None = None,
    *,
    label_column: str,
    max_examples: int,
    score_ranges: Mapping[str, tuple[float, float]],
    on_progress: Callable[[int], None] | None = None,
) -> ValidatedData:
    """`validate_tables` a table at a time, and an event table a part at a time, so that a
    large export never sits in memory whole: `sources` gives each raw table as parts (row
    slices, in order) when its turn comes; each typed part goes to `sink` and is let go.
    Event tables' rules are row by row, so a part is checked on its own (the other tables
    are checked whole: customer ids must be unique). The customers table goes first (its
    ids are what events are checked against), the contact log last. The violations (counts
    and examples over all parts), the report and the typed tables are those of one
    whole-table check; the returned `tables` maps each table written to an empty frame.
    `on_progress(1)` as each table is done."""
    n_ex = max_examples
    unknown = sorted(set(sources) - set(ALL_TABLES))
    present = [k for k in sources if k in ALL_TABLES]
    has_events = any(t in present for t in ("transactions", "activity"))
    customers_raw = _whole(sources["customers"]()) if "customers" in present else None
    flat = not has_events and customers_raw is not None and label_column in customers_raw.columns
    if not has_events and not flat:
        found = sorted(sources) or "none"
        raise ContractError(
            [
                Violation(
                    "transactions|activity",
                    "-",
                    "missing file: at least one event table (transactions or activity) is "
                    f"required, or a customers table with a '{label_column}' label column (flat "
                    f"mode); found tables: {found}",
                    0,
                )
            ]
        )

    stated = pd.Timestamp(as_of) if as_of is not None else None
    per_table: dict[str, list[Violation]] = {}
    label_v: list[Violation] = []
    unknown_v: dict[str, list[Violation]] = {}
    late_v: dict[str, list[Violation]] = {}
    contacts_v: list[Violation] = []
    rows: dict[str, int] = {}
    latest: list[pd.Timestamp] = []
    known: pd.Index | None = None
    customers_latest: pd.Timestamp | None = None
    contacts: pd.DataFrame | None = None
    order = [n for n in present if n == "customers"]
    order += [n for n in present if n not in ("customers", CONTACTS)]
    order += [n for n in present if n == CONTACTS]
    for i, name in enumerate(order):
        if on_progress is not None and i:  # the previous table is done (whichever way)
            on_progress(1)
        if name == "customers":
            parts, customers_raw = [customers_raw], None
        elif name in EVENT_TABLES:
            parts = sources[name]()
        else:
            parts = [_whole(sources[name]())]
        found: dict[str, list[list[Violation]]] = {
            "failed": [],
            "checked": [],
            "unk": [],
            "late": [],
        }
        n_rows, maxima, added = 0, [], False
        for part in parts:
            part_v: list[Violation] = []
            tdf = _check_table(name, part, label_column, score_ranges, n_ex, part_v, n_rows)
            n_rows += len(part)
            del part
            found["failed" if tdf is None else "checked"].append(part_v)
            if tdf is None or found["failed"]:
                continue  # a part that cannot be typed: the table is not typed
            if name == "customers" and flat:
                tdf = _parse_label_column(tdf, label_column, n_ex, label_v)
            if name == "customers":
                known, customers_latest = pd.Index(tdf["customer_id"]), _latest_date(tdf)
            if name in EVENT_TABLES:
                if known is not None and not flat:
                    found["unk"].append(_unknown_events(name, tdf, known, n_ex))
                maxima.append(tdf["ts"].max())
                if stated is not None:
                    found["late"].append(_late_events(name, tdf, stated, n_ex))
            if name == CONTACTS:
                contacts = tdf
                continue
            sink.add(name, tdf)
            added = True
            del tdf
        if added:
            sink.close(name)
        if found["failed"]:  # as one table that cannot be typed: its typing problems only
            per_table[name] = _merged(found["failed"], n_ex)
            contacts = None if name == CONTACTS else contacts
            continue
        per_table[name] = _merged(found["checked"], n_ex)
        unknown_v[name], late_v[name] = _merged(found["unk"], n_ex), _merged(found["late"], n_ex)
        latest += maxima
        rows[name] = n_rows
    if on_progress is not None and order:
        on_progress(1)

    if contacts is not None:
        if known is not None:  # the customers table was typed
            ids, where = known, "customers"
        else:
            seen = [sink.column(t, "customer_id") for t in EVENT_TABLES if t in rows]
            ids, where = (pd.Index(pd.concat(seen)) if seen else pd.Index([])), "any event table"
        _contacts_known(contacts, ids, where, n_ex, contacts_v)

    out = [v for name in present for v in per_table.get(name, [])] + label_v
    out += [v for name in EVENT_TABLES for v in unknown_v.get(name, [])] + contacts_v
    out += [v for name in EVENT_TABLES for v in late_v.get(name, [])]
    if out:
        raise ContractError(out)

    derived = not flat and "customers" not in rows
    if derived:
        ids = pd.concat([sink.column(t, "customer_id") for t in EVENT_TABLES if t in rows])
        customers = pd.DataFrame({"customer_id": ids.drop_duplicates().sort_values()})
        del ids
        sink.add("customers", customers.reset_index(drop=True))
        sink.close("customers")
        rows["customers"] = len(customers)
    contacts = contacts_frame(contacts)
    sink.add(CONTACTS, contacts)
    sink.close(CONTACTS)
    # validate_tables' order: the tables as given, a derived customers table, then the log
    kept = [n for n in present if n in rows] + (["customers"] if derived else [])
    kept += [] if CONTACTS in kept else [CONTACTS]
    rows[CONTACTS] = len(contacts)
    latest_ts = max(latest, default=pd.NaT)
    resolved_as_of = (
        stated.normalize()
        if stated is not None
        else (latest_ts.normalize() if pd.notna(latest_ts) else customers_latest)
    )
    families = {
        fam: any(t in kept and t in present for t in tabs) for fam, tabs in FAMILY_TABLES.items()
    }
    if flat:
        families = {fam: fam == "profile" for fam in FAMILY_TABLES}
    report = {
        "mode": "flat" if flat else "events",
        "as_of": None if resolved_as_of is None else str(resolved_as_of.date()),
        "rows": {k: rows[k] for k in kept if k != CONTACTS or k in present},
        "tables_missing": [t for t in DATA_TABLES if t not in present],
        "tables_ignored": unknown,
        "families": families,
        "customers_derived_from_events": not flat and "customers" not in present,
    }
    tables = {k: pd.DataFrame() for k in kept}
    return ValidatedData(tables, resolved_as_of, report["mode"], report)


def _whole(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """A table given in parts as one frame (a table whose rules span rows)."""
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _merged(found: list[list[Violation]], n_ex: int) -> list[Violation]:
    """The violations of a table's parts as those of the whole table: one per table, column
    and problem, counts summed, the first examples kept."""
    if len(found) <= 1:
        return found[0] if found else []
    merged: dict[tuple[str, str, str], Violation] = {}
    for v in (v for part in found for v in part):
        key = (v.table, v.column, v.problem)
        if key not in merged:
            merged[key] = Violation(v.table, v.column, v.problem, v.count, v.examples)
            continue
        m = merged[key]
        m.count += v.count
        if m.examples.empty:
            m.examples = v.examples
        elif len(m.examples) < n_ex and not v.examples.empty:
            m.examples = pd.concat([m.examples, v.examples]).head(n_ex)
    return list(merged.values())
