"""DuckDB SQL as Spark SQL that computes the same values: the one list of dialect fixes.

The feature modules write DuckDB SQL. `to_spark` takes a statement parsed by SQLGlot (DuckDB
dialect) and rewrites the places where the two engines mean different things by the same text
(`_fix`: day-boundary `date_diff`, `max_by(v, k, n)`, ordered sums, 1-based list indexing,
DECIMAL literals, RE2 word boundaries, whole-table row numbers), then prints it as Spark SQL.
`bind_params` and `substitute` put a statement's `?` values in as literals (Spark has no
placeholders). Pure text and tree work: no Spark session is needed here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

# ASCII word character, as RE2's \b sees it (Java's \b also treats letters such as 用 as word
# characters, so 'rival' in '用rival' would stop matching)
_WORD = "[0-9A-Za-z_]"
_RE2_BOUNDARY = f"(?:(?<!{_WORD})(?={_WORD})|(?<={_WORD})(?!{_WORD}))"


# --- the dialect fixes -------------------------------------------------------------------------


def _spark_expr(text: str) -> exp.Expression:
    return sqlglot.parse_one(text, read="spark")


def fixed_sql(node: exp.Expression) -> str:
    """A sub-expression as Spark SQL, fixed (the nodes a fix replaces are not visited again)."""
    return node.copy().transform(_fix).sql("spark")


def _floor_div(micros: str, unit: int) -> str:
    return f"(({micros} - pmod({micros}, {unit})) div {unit})"


_UNIT_MICROS = {"MICROSECOND": 1, "MILLISECOND": 1000, "SECOND": 10**6, "MINUTE": 6 * 10**7}
_UNIT_MICROS["HOUR"] = 60 * _UNIT_MICROS["MINUTE"]


def _date_diff(node: exp.DateDiff) -> exp.Expression:
    """DuckDB's date_diff(unit, a, b) counts the unit's boundaries between a and b (the
    difference of both truncated to the unit); Spark's counts whole elapsed units. The same
    number for both engines: the difference of floor(epoch / unit)."""
    unit = (node.text("unit") or "DAY").upper().rstrip("S")
    later, earlier = fixed_sql(node.this), fixed_sql(node.expression)
    if unit == "DAY":
        return _spark_expr(f"datediff(CAST({later} AS DATE), CAST({earlier} AS DATE))")
    if unit not in _UNIT_MICROS:
        raise NotImplementedError(f"date_diff by {unit} has no Spark translation yet")

    def epoch(t: str) -> str:
        return f"unix_micros(CAST({t} AS TIMESTAMP_LTZ))"

    n = _UNIT_MICROS[unit]
    if n == 1:
        return _spark_expr(f"({epoch(later)} - {epoch(earlier)})")
    return _spark_expr(f"({_floor_div(epoch(later), n)} - {_floor_div(epoch(earlier), n)})")


def _top_n(node: exp.Expression, where: exp.Expression | None) -> exp.Expression:
    """DuckDB's max_by(value, key, n): the values of the n largest keys, largest first. Spark's
    own max_by(value, key, n) keeps a bounded heap per group (SQLGlot's Spark output drops n,
    hence the function by name); sorting a list of every (key, value) pair instead took
    f_feedback from 8.3 to 10.0 s at 200k customers (bench/README.md)."""
    args = [_spark_expr(fixed_sql(a)) for a in (node.this, node.expression, node.args["count"])]
    top = exp.Anonymous(this="max_by", expressions=args)
    return top if where is None else exp.Filter(this=top, expression=where.copy().transform(_fix))


def _ordered_sum(node: exp.Sum, where: exp.Expression | None) -> exp.Expression:
    """sum(x ORDER BY k): Spark has no ordered aggregates; the same additions in the same order,
    a fold over the (k, x) pairs sorted by k. NULLs are left out, and no value gives NULL."""
    order: exp.Order = node.this
    value = fixed_sql(order.this)
    keys = ", ".join(f"{fixed_sql(o.this)} AS k{i}" for i, o in enumerate(order.expressions))
    desc = [bool(o.args.get("desc")) for o in order.expressions]
    if any(desc):
        raise NotImplementedError("sum(... ORDER BY ... DESC) has no Spark translation yet")
    filt = f" FILTER ({fixed_sql(where)})" if where is not None else ""
    pairs = f"collect_list(CASE WHEN {value} IS NOT NULL THEN struct({keys}, {value} AS v) END)"
    fold = f"aggregate(array_sort({pairs}{filt}), CAST(0 AS DOUBLE), (acc, e) -> acc + e.v)"
    return _spark_expr(f"CASE WHEN count({value}){filt} > 0 THEN {fold} END")


def _fix(node: exp.Expression) -> exp.Expression:
    """One node of a DuckDB statement as Spark must read it to compute the same value."""
    inner = node.this if isinstance(node, exp.Filter) else None
    if isinstance(inner, exp.ArgMax) and inner.args.get("count") is not None:
        return _top_n(inner, node.expression)
    if isinstance(node, exp.ArgMax) and node.args.get("count") is not None:
        return _top_n(node, None)
    if isinstance(inner, exp.Sum) and isinstance(inner.this, exp.Order):
        return _ordered_sum(inner, node.expression)
    if isinstance(node, exp.Sum) and isinstance(node.this, exp.Order):
        return _ordered_sum(node, None)
    if isinstance(node, exp.DateDiff):
        return _date_diff(node)
    if isinstance(node, exp.Bracket):
        # DuckDB's list[i] is 1-based and NULL past the end; Spark's is 0-based and (ANSI) an
        # error past the end
        # (SQLGlot holds the index 0-based whatever the dialect)
        (index,) = node.expressions
        one_based = (
            exp.Literal.number(int(index.this) + 1)
            if isinstance(index, exp.Literal) and index.is_int
            else exp.Add(this=index, expression=exp.Literal.number(1))
        )
        array = node.this.copy().transform(_fix)
        return exp.Anonymous(this="try_element_at", expressions=[array, one_based])
    if isinstance(node, exp.Literal) and not node.is_string and any(c in node.this for c in ".eE"):
        # DuckDB reads 86400.0 as a DECIMAL and divides it as a DOUBLE; Spark divides
        # DECIMALs as DECIMALs, rounded to a few places (5 / 86400.0 = 0.0000579)
        return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.RegexpLike) and isinstance(node.expression, exp.Literal):
        pattern = node.expression.this.replace("\\b", _RE2_BOUNDARY)
        text = node.this.copy().transform(_fix)
        return exp.RegexpLike(this=text, expression=exp.Literal.string(pattern))
    if isinstance(node, exp.Cast) and _whole_table_row_number(node.this.unnest()):
        # a row number over the whole table is only ever a join key here (`sid`, `rn`): any
        # unique number does, and a window without PARTITION BY runs on one core of the cluster;
        # the statement's table is materialised, so the numbers do not change between reads
        return exp.Anonymous(this="monotonically_increasing_id", expressions=[])
    return node


def _whole_table_row_number(node: exp.Expression) -> bool:
    return (
        isinstance(node, exp.Window)
        and isinstance(node.this, exp.RowNumber)
        and not node.args.get("partition_by")
    )


def to_spark(statement: exp.Expression) -> str:
    """A parsed DuckDB statement as the Spark SQL that computes the same (see `_fix`)."""
    fixed = statement.copy().transform(_fix)
    return fixed.sql("spark")


def bind_params(sql: str, params: list | tuple | None) -> str:
    """`sql` with its `?` placeholders (tokens, not characters in strings) replaced by the
    values `params` as DuckDB literals."""
    if not params:
        return sql
    from sqlglot.tokens import TokenType

    tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql)
    # `?::TYPE` comes as one token (`?::`, DuckDB's TRY_CAST shorthand)
    holes = [t for t in tokens if t.token_type in (TokenType.PLACEHOLDER, TokenType.QDCOLON)]
    if len(holes) != len(params):
        raise ValueError(f"{len(holes)} placeholders for {len(params)} values: {sql}")
    out, pos = [], 0
    for token, value in zip(holes, params, strict=True):
        out += [sql[pos : token.start], literal(value).sql("duckdb")]
        pos = token.start + 1  # the `?` only
    return "".join([*out, sql[pos:]])


def substitute(statement: exp.Expression, params: list | tuple | None) -> exp.Expression:
    """The statement with its `?` placeholders replaced by the values `params`, as literals."""
    if not params:
        return statement
    values = iter(params)

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):
            return literal(next(values))
        return node

    return statement.transform(fill)


def literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, pd.Timestamp | dt.datetime):
        text = pd.Timestamp(value).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.cast(exp.Literal.string(repr(value)), exp.DataType.build("DOUBLE"))
    return exp.Literal.string(str(value))
