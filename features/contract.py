"""The data contract: what a raw folder must hold, checked before any feature is built.

Validation coerces types first (so that a wrong type or an unparseable date is reported as
such, with the offending rows), then runs pandera schemas for values, then cross-table checks.
Every problem becomes a `Violation` naming the table, the column, how many rows and up to a few
example rows; all of them are collected before failing so that a user fixes a file in one go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnlight.features.pandera_quiet import pa, quiet_pyspark

EVENT_TABLES = ("transactions", "activity", "feedback")
DATA_TABLES = ("customers", "transactions", "activity", "feedback", "market")
# the log of retention/win-back contacts: optional, never read by the features (a contact
# changes behaviour, it is not a signal of it); validate always writes it, empty when absent
CONTACTS = "contacts"
ALL_TABLES = (*DATA_TABLES, CONTACTS)
CONTACT_KINDS = ("retention", "winback")
CONTACT_GROUPS = ("treatment", "control")
CONTACT_COLUMNS = {
    "customer_id": "string",
    "ts": "datetime64[ms]",
    "campaign_id": "string",
    "kind": "string",
    "group": "string",
    "action": "string",
    "channel": "string",
    "owner": "string",
    "cost": "float64",
}
ACTIVITY_TYPES = (
    "login",
    "visit",
    "booking",
    "booking_cancelled",
    "outreach_sent",
    "outreach_replied",
    "service_due",
    "service_done",
)
FEEDBACK_KINDS = ("nps", "csat", "complaint_opened", "complaint_resolved", "message")
# the largest amount of one transaction: the BTYD pass sums spend exactly, in whole millionths
# as 64-bit integers (features/btyd.py), which hold 9.2e12 currency units a customer
MAX_AMOUNT = 1e12
# family -> tables whose presence switches it on
FAMILY_TABLES = {
    "behaviour": ("transactions", "activity"),
    "attitude": ("feedback",),
    "external": ("market",),
    "profile": ("customers",),
}

# column -> kind; "id" is a string key, "ts"/"date" datetimes, "num" floats, "flag" 0/1 ints
REQUIRED: dict[str, dict[str, str]] = {
    "customers": {"customer_id": "id"},
    "transactions": {"customer_id": "id", "ts": "ts", "amount": "num"},
    "activity": {"customer_id": "id", "ts": "ts", "event_type": "str"},
    "feedback": {"customer_id": "id", "ts": "ts", "kind": "str"},
    "market": {
        "month": "date",
        "region": "str",
        "industry": "str",
        "industry_index": "num",
        "competitor_launch": "flag",
        "policy_shock": "flag",
    },
    "contacts": {
        "customer_id": "id",
        "ts": "ts",
        "campaign_id": "str",
        "kind": "str",
        "group": "str",
    },
}
OPTIONAL: dict[str, dict[str, str]] = {
    "customers": {
        "signup_date": "date",
        "cancel_date": "date",
        "cancel_reason": "str",  # stated at cancellation: the win-back list's, never a feature
        "region": "str",
        "industry": "str",
        "plan": "str",
    },
    "transactions": {"category": "str"},
    "activity": {},
    "feedback": {"score": "num", "text": "str", "ticket_id": "str"},
    "market": {},
    "contacts": {"action": "str", "channel": "str", "owner": "str", "cost": "num"},
}
FEEDBACK_TYPES = {"score": "float64", "text": "string", "ticket_id": "string"}
TRUE_WORDS = {"1", "1.0", "true", "yes", "y", "churn", "churned", "t"}
FALSE_WORDS = {"0", "0.0", "false", "no", "n", "stay", "stayed", "retained", "f"}


@dataclass
class Violation:
    table: str
    column: str
    problem: str
    count: int
    examples: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __str__(self) -> str:
        head = f"[{self.table}.{self.column}] {self.problem}: {self.count} row(s)"
        if self.examples.empty:
            return head
        body = self.examples.to_string(max_colwidth=40)
        return head + "\n    e.g.\n" + "\n".join("    " + line for line in body.splitlines())


class ContractError(ValueError):
    """Raised with every violation found; the message is meant for the person who owns the data."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        lines = [f"data contract violated ({len(violations)} problem(s)):"]
        lines += [str(v) for v in violations]
        super().__init__("\n".join(lines))


@dataclass
class ValidatedData:
    tables: dict[str, pd.DataFrame]
    as_of: pd.Timestamp | None  # None: a flat table without any date
    mode: str  # "events" or "flat"
    report: dict


def _examples(df: pd.DataFrame, mask: np.ndarray | pd.Series, n: int) -> pd.DataFrame:
    return df.loc[np.asarray(mask)].head(n)


def _coerce(
    name: str, df: pd.DataFrame, kinds: dict[str, str], n_ex: int, out: list[Violation]
) -> pd.DataFrame:
    """Coerce each known column to its type; report values that would not convert."""
    df = df.copy(deep=False)  # copy-on-write (pandas 3): the input is never changed
    for col, kind in kinds.items():
        if col not in df.columns:
            continue
        raw = df[col]
        if kind in ("ts", "date"):
            # utc=True accepts offsets that differ row to row (daylight saving); naive times
            # keep their wall-clock value
            conv = pd.to_datetime(raw, errors="coerce", format="mixed", utc=True)
            conv = conv.dt.tz_localize(None).astype("datetime64[ms]")
            problem = "unparseable date"
        elif kind in ("num", "flag"):
            conv = pd.to_numeric(raw, errors="coerce")
            problem = "wrong type: expected a number"
        else:
            conv = raw.astype("string").str.strip()
            problem = ""
        bad = raw.notna() & conv.isna()
        if problem and bad.any():
            out.append(Violation(name, col, problem, int(bad.sum()), _examples(df, bad, n_ex)))
            continue
        if kind in ("num", "flag") and _infinite(name, df, col, conv, n_ex, out):
            continue
        if kind == "flag" and (conv.notna() & (conv % 1 != 0)).any():
            bad = conv.notna() & (conv % 1 != 0)
            problem = "wrong type: expected 0 or 1"
            out.append(Violation(name, col, problem, int(bad.sum()), _examples(df, bad, n_ex)))
            continue
        if kind == "flag":
            conv = conv.astype("Int8")
        elif kind == "num":
            conv = conv.astype("float64")
        elif kind == "id":
            conv = conv.astype("string")
        df[col] = conv
    return df


def _infinite(
    name: str, df: pd.DataFrame, col: str, values: pd.Series, n_ex: int, out: list[Violation]
) -> bool:
    """Report infinite numbers ("inf", "-Infinity", 1e999 in a CSV; inf in Parquet): no sum,
    mean or model can use them, and they would pass a `>= 0` check."""
    inf = np.isinf(values.to_numpy(dtype="float64", na_value=np.nan))
    if inf.any():
        problem = "infinite value (must be a finite number)"
        out.append(Violation(name, col, problem, int(inf.sum()), _examples(df, inf, n_ex)))
    return bool(inf.any())


def _row_rules(
    name: str,
    df: pd.DataFrame,
    score_ranges: Mapping[str, tuple[float, float]],
    n_ex: int,
    out: list[Violation],
) -> None:
    """Rules across a row's columns: a feedback score on its kind's scale (NPS 0-10, CSAT 1-5
    from params), no cancellation before the signup."""
    if name == "feedback" and "score" in df.columns:
        for kind, (low, high) in score_ranges.items():
            outside = df["score"].notna() & ~df["score"].between(low, high)
            bad = ((df["kind"] == kind) & outside).fillna(False).astype(bool)
            if bad.any():
                out.append(
                    Violation(
                        name,
                        "score",
                        f"{kind} score outside {low}..{high}",
                        int(bad.sum()),
                        _examples(df, bad, n_ex),
                    )
                )
    if name == "customers" and {"signup_date", "cancel_date"} <= set(df.columns):
        bad = (df["cancel_date"] < df["signup_date"]).fillna(False).astype(bool)
        if bad.any():
            out.append(
                Violation(
                    name,
                    "cancel_date",
                    "cancel_date before signup_date",
                    int(bad.sum()),
                    _examples(df, bad, n_ex),
                )
            )


def _schema(name: str, label_column: str | None) -> pa.DataFrameSchema:
    """Value rules per table, on already-coerced columns."""
    nn = {"nullable": False}
    cols: dict[str, pa.Column] = {}
    if name == "customers":
        cols["customer_id"] = pa.Column(str, unique=True, **nn)
    elif name == "transactions":
        cols = {
            "customer_id": pa.Column(str, **nn),
            "ts": pa.Column("datetime64[ms]", **nn),
            "amount": pa.Column(float, [pa.Check.ge(0), pa.Check.le(MAX_AMOUNT)], **nn),
        }
    elif name == "activity":
        cols = {
            "customer_id": pa.Column(str, **nn),
            "ts": pa.Column("datetime64[ms]", **nn),
            "event_type": pa.Column(str, pa.Check.str_length(min_value=1), **nn),
        }
    elif name == "feedback":
        cols = {
            "customer_id": pa.Column(str, **nn),
            "ts": pa.Column("datetime64[ms]", **nn),
            "kind": pa.Column(str, pa.Check.isin(FEEDBACK_KINDS), **nn),
        }
    elif name == "market":
        cols = {
            "month": pa.Column("datetime64[ms]", **nn),
            "region": pa.Column(str, **nn),
            "industry": pa.Column(str, **nn),
            "industry_index": pa.Column(float, **nn),
            "competitor_launch": pa.Column("Int8", pa.Check.isin([0, 1]), **nn),
            "policy_shock": pa.Column("Int8", pa.Check.isin([0, 1]), **nn),
        }
    elif name == CONTACTS:
        cols = {
            "customer_id": pa.Column(str, **nn),
            "ts": pa.Column("datetime64[ms]", **nn),
            "campaign_id": pa.Column(str, pa.Check.str_length(min_value=1), **nn),
            "kind": pa.Column(str, pa.Check.isin(CONTACT_KINDS), **nn),
            "group": pa.Column(str, pa.Check.isin(CONTACT_GROUPS), **nn),
            "cost": pa.Column(float, pa.Check.ge(0), nullable=True, required=False),
        }
    return pa.DataFrameSchema(cols, strict=False, coerce=False, name=name)


def _run_schema(
    name: str, df: pd.DataFrame, schema: pa.DataFrameSchema, n_ex: int, out: list[Violation]
) -> None:
    try:
        with quiet_pyspark():
            schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
        for (col, check), grp in fc.groupby(["column", "check"], dropna=False, sort=False):
            idx = pd.to_numeric(grp["index"], errors="coerce").dropna().astype(int)
            ex = df.loc[df.index.isin(idx)].head(n_ex) if len(idx) else pd.DataFrame()
            if str(check).startswith("field_uniqueness") or "unique" in str(check):
                problem, count = "duplicate values (must be unique)", len(idx)
            elif "not_nullable" in str(check):
                problem, count = "missing values (column is required)", len(idx)
            else:
                problem, count = f"failed check {check}", len(grp)
            out.append(Violation(name, str(col), problem, int(count), ex))


def _numeric_attributes(df: pd.DataFrame, known: set[str]) -> pd.DataFrame:
    """Extra customer attributes read from CSV arrive as text: keep a column numeric when every
    non-empty value is a number, so that tenure or charges are not one-hot encoded."""
    out = df.copy()
    for col in df.columns:
        if col in known or pd.api.types.is_numeric_dtype(df[col]):
            continue
        conv = pd.to_numeric(df[col], errors="coerce")
        if df[col].notna().any() and (conv.notna() == df[col].notna()).all():
            out[col] = conv.astype("float64")
    return out


def _latest_date(customers: pd.DataFrame | None) -> pd.Timestamp | None:
    """A flat table has no events: its end is its newest date, or none at all (no date is
    invented for a table that has none)."""
    dates = [
        customers[c].max()
        for c in ("signup_date", "cancel_date")
        if customers is not None and c in customers and customers[c].notna().any()
    ]
    return max(dates).normalize() if dates else None


def contacts_frame(contacts: pd.DataFrame | None) -> pd.DataFrame:
    """The contact log with every column of the interface in its dtype (absent optional
    columns empty), or an empty log when the user has none, so later stages can always read it.
    Extra columns are kept after them."""
    src = pd.DataFrame() if contacts is None else contacts
    cols = {
        col: (
            src[col].astype(dtype)
            if col in src.columns
            else pd.Series(pd.NA if dtype == "string" else np.nan, index=src.index).astype(dtype)
        )
        for col, dtype in CONTACT_COLUMNS.items()
    }
    extra = [c for c in src.columns if c not in CONTACT_COLUMNS]
    return pd.concat([pd.DataFrame(cols, index=src.index), src[extra]], axis=1).reset_index(
        drop=True
    )


def parse_label(values: pd.Series) -> pd.Series:
    """Map Yes/No, True/False, 1/0, churned/stayed to 0/1; unknown words become <NA>."""
    s = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="Int8")
    out[s.isin(TRUE_WORDS).fillna(False)] = 1
    out[s.isin(FALSE_WORDS).fillna(False)] = 0
    return out


def validate_tables(
    tables: dict[str, pd.DataFrame],
    as_of: str | pd.Timestamp | None = None,
    *,
    label_column: str,
    max_examples: int,
    score_ranges: Mapping[str, tuple[float, float]],
    on_progress: Callable[[int], None] | None = None,
) -> ValidatedData:
    """Check raw tables against the contract and return them typed, or raise ContractError.
    `score_ranges` maps a feedback kind (nps, csat) to its inclusive score range;
    `on_progress(1)` is called as each table is checked."""
    from churnlight.features.contract_parts import MemorySink, validate_each

    sink = MemorySink()
    data = validate_each(
        {name: (lambda df=df: [df]) for name, df in tables.items()},
        sink,
        as_of,
        label_column=label_column,
        max_examples=max_examples,
        score_ranges=score_ranges,
        on_progress=on_progress,
    )
    data.tables = {name: sink.tables[name] for name in data.tables}
    return data


def is_known(ids: pd.Series, known: pd.Index) -> pd.Series:
    """`ids.isin(known)` by Arrow: pandas' isin on Arrow strings is slow (bench/README.md)."""
    import pyarrow as arrow
    import pyarrow.compute as pc

    values = arrow.array(ids.astype("string"), from_pandas=True)
    value_set = arrow.array(pd.Series(known, dtype="string"), from_pandas=True)
    found = pc.is_in(values, value_set=value_set).fill_null(False)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=ids.index)
