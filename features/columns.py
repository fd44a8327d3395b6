"""Typed output columns defined as SQL expressions, and the one SELECT that computes them.

A `Column` is a name, an SQL expression and a `ColumnType`: the type says what the engine
casts the value to, how it is stored in Parquet and which dtype pandas reads it back as. The
snapshot files' schema is built from the columns alone, before any row exists, so that every
range and every run of the same settings write the same schema whatever their data.

An expression reads the input relation's columns as `source(name)` and earlier outputs as
`ref(name)`. `snapshot_select` nests the outputs a layer at a time, so that an output that
others read (recency, the rule counts) is computed once per row, not once per reader. Only
standard SQL is written here (CAST, CASE, nested SELECTs), so that another SQL engine can run
the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from churnlight.features.sql import ident

# earlier outputs as later ones read them: columns of the layer below under this prefix
DERIVED = "derived:"


@dataclass(frozen=True)
class ColumnType:
    """An output's type in the engine (`sql`), in Parquet (`arrow`) and in pandas (`pandas`)."""

    sql: str
    arrow: pa.DataType
    pandas: str


INTEGER = ColumnType("BIGINT", pa.int64(), "int64")
NUMBER = ColumnType("DOUBLE", pa.float64(), "float64")
# a number pandas reads with missing values as <NA> (Float64): the ratios of two counts
NULLABLE_NUMBER = ColumnType("DOUBLE", pa.float64(), "Float64")
LABEL = ColumnType("TINYINT", pa.int8(), "Int8")  # 1 churned, 0 stayed, <NA> not yet known
TEXT = ColumnType("VARCHAR", pa.string(), "str")
# a customer attribute: pandas' own string dtype, as the customer tables hold them
CATEGORY = ColumnType("VARCHAR", pa.string(), "string")
TIMESTAMP = ColumnType("TIMESTAMP", pa.timestamp("us"), "datetime64[us]")
FLAG = ColumnType("BOOLEAN", pa.bool_(), "bool")


@dataclass(frozen=True)
class Column:
    """An output: `sql` over `source(...)` and `ref(...)` of earlier outputs, cast to `type`.
    `written`: part of the snapshot files (else a step that other outputs read)."""

    name: str
    sql: str
    type: ColumnType
    written: bool = True


def source(name: str) -> str:
    """A column of the input relation (alias a)."""
    return f"a.{ident(name)}"


def ref(name: str) -> str:
    """An earlier output, as later outputs read it."""
    return source(DERIVED + name)


def layers(columns: list[Column]) -> list[list[Column]]:
    """The columns grouped so that each reads only the input and outputs of earlier groups."""
    by_name = {c.name: c for c in columns}
    depth: dict[str, int] = {}

    def level(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in depth:
            if name in seen:
                raise ValueError(f"derived outputs depend on each other in a cycle: {seen}")
            deps = [d for d in by_name if d != name and ref(d) in by_name[name].sql]
            depth[name] = 1 + max((level(d, (*seen, name)) for d in deps), default=-1)
        return depth[name]

    out: list[list[Column]] = [[] for _ in range(1 + max(map(level, by_name), default=-1))]
    for c in columns:
        out[depth[c.name]].append(c)
    return out


def snapshot_select(
    columns: list[Column], relation: str = "agg", order_by: str | None = None
) -> str:
    """SELECT of the written `columns` from `relation` (a table name or a parenthesised query),
    each cast to its type, in order; `order_by` may name input columns as `source(name)`."""
    if len({c.name for c in columns}) != len(columns):
        raise ValueError("two columns of one name")
    rel = f"{relation} a"
    for layer in layers(columns):
        outputs = ", ".join(f"({c.sql}) AS {ident(DERIVED + c.name)}" for c in layer)
        rel = f"(SELECT a.*, {outputs} FROM {rel}) a"
    items = [
        f"CAST({ref(c.name)} AS {c.type.sql}) AS {ident(c.name)}" for c in columns if c.written
    ]
    order = f" ORDER BY {order_by}" if order_by else ""
    return f"SELECT {', '.join(items)} FROM {rel}{order}"


def arrow_schema(columns: Iterable[Column]) -> pa.Schema:
    """The Arrow schema of the written `columns`, with the pandas metadata that makes
    `pd.read_parquet` give each column its declared pandas dtype."""
    written = [c for c in columns if c.written]
    empty = pd.DataFrame({c.name: pd.Series([], dtype=c.type.pandas) for c in written})
    meta = pa.Schema.from_pandas(empty, preserve_index=False).metadata
    return pa.schema([pa.field(c.name, c.type.arrow) for c in written], metadata=meta)
