"""Quoting for the SQL the feature modules write: string literals, identifiers, exact numbers.

Standard SQL spellings only (no engine's shorthand), so that the same text can be carried to
another engine.
"""

from __future__ import annotations


def literal(value: str) -> str:
    """A string literal."""
    return "'" + value.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted identifier (column names may hold any character, e.g. `profile:plan`)."""
    return '"' + name.replace('"', '""') + '"'


def number(x: float) -> str:
    """A DOUBLE constant exactly as Python holds it: a bare literal such as 0.7 is an exact
    decimal to SQL, which would change the arithmetic it takes part in."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"
