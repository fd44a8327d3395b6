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
    df = df.copy()
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
            "amount": pa.Column(float, pa.Check.ge(0), **nn),
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


def _contacts_known(typed: dict[str, pd.DataFrame], n_ex: int, out: list[Violation]) -> None:
    """Every contact names a known customer: one in customers, or (without a customers table)
    one seen in the event tables."""
    if "customers" in typed:
        known = pd.Index(typed["customers"]["customer_id"])
        where = "customers"
    else:
        ids = [typed[t]["customer_id"] for t in EVENT_TABLES if t in typed]
        known = pd.Index(pd.concat(ids)) if ids else pd.Index([])
        where = "any event table"
    df = typed[CONTACTS]
    unk = ~df["customer_id"].isin(known)
    if unk.any():
        out.append(
            Violation(
                CONTACTS,
                "customer_id",
                f"contacts for unknown customers (not in {where})",
                int(unk.sum()),
                _examples(df, unk, n_ex),
            )
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
    out: list[Violation] = []
    n_ex = max_examples
    unknown = sorted(set(tables) - set(ALL_TABLES))
    present = {k: v for k, v in tables.items() if k in ALL_TABLES}
    has_events = any(t in present for t in ("transactions", "activity"))
    flat = (
        not has_events and "customers" in present and label_column in present["customers"].columns
    )
    if not has_events and not flat:
        out.append(
            Violation(
                "transactions|activity",
                "-",
                "missing file: at least one event table (transactions or activity) is required, "
                f"or a customers table with a '{label_column}' label column (flat mode); "
                f"found tables: {sorted(tables) or 'none'}",
                0,
            )
        )
        raise ContractError(out)

    typed: dict[str, pd.DataFrame] = {}
    for i, (name, df) in enumerate(present.items()):
        if on_progress is not None and i:  # the previous table is done (whichever way)
            on_progress(1)
        if df.empty and name == CONTACTS and len(df.columns) == 0:
            continue  # an empty log file: no contacts yet
        if df.empty and name != CONTACTS:
            out.append(Violation(name, "-", "empty table (no rows)", 0))
            continue
        missing = [c for c in REQUIRED[name] if c not in df.columns]
        if missing:
            for c in missing:
                out.append(
                    Violation(
                        name, c, f"missing column (columns found: {list(df.columns)})", len(df)
                    )
                )
            continue
        kinds = {**REQUIRED[name], **OPTIONAL[name]}
        before = len(out)
        tdf = _coerce(name, df.reset_index(drop=True), kinds, n_ex, out)
        if len(out) > before:
            continue
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
        typed[name] = tdf
    if on_progress is not None and present:
        on_progress(1)

    if flat and "customers" in typed:
        lab = parse_label(typed["customers"][label_column])
        bad = lab.isna()
        if bad.any():
            out.append(
                Violation(
                    "customers",
                    label_column,
                    "label not understood (use yes/no, true/false, 1/0)",
                    int(bad.sum()),
                    _examples(typed["customers"], bad, n_ex),
                )
            )
        else:
            typed["customers"] = typed["customers"].assign(**{label_column: lab})

    # cross-table checks
    if "customers" in typed and not flat:
        known = pd.Index(typed["customers"]["customer_id"])
        for name in EVENT_TABLES:
            if name not in typed:
                continue
            unk = ~typed[name]["customer_id"].isin(known)
            if unk.any():
                out.append(
                    Violation(
                        name,
                        "customer_id",
                        "events for unknown customers (not in customers)",
                        int(unk.sum()),
                        _examples(typed[name], unk, n_ex),
                    )
                )

    if CONTACTS in typed:
        _contacts_known(typed, n_ex, out)

    stated = pd.Timestamp(as_of) if as_of is not None else None
    latest = max((typed[t]["ts"].max() for t in EVENT_TABLES if t in typed), default=pd.NaT)
    if stated is not None:
        end = stated.normalize() + pd.Timedelta(days=1)
        for name in EVENT_TABLES:
            if name not in typed:
                continue
            late = typed[name]["ts"] >= end
            if late.any():
                out.append(
                    Violation(
                        name,
                        "ts",
                        f"timestamps after the data's stated end date (as_of {stated.date()})",
                        int(late.sum()),
                        _examples(typed[name], late, n_ex),
                    )
                )
    if out:
        raise ContractError(out)

    if not flat and "customers" not in typed:
        ids = pd.concat([typed[t]["customer_id"] for t in EVENT_TABLES if t in typed])
        typed["customers"] = pd.DataFrame({"customer_id": ids.drop_duplicates().sort_values()})
        typed["customers"] = typed["customers"].reset_index(drop=True)
    typed[CONTACTS] = contacts_frame(typed.get(CONTACTS))
    resolved_as_of = (
        stated.normalize()
        if stated is not None
        else (latest.normalize() if pd.notna(latest) else _latest_date(typed.get("customers")))
    )
    families = {
        fam: any(t in typed and t in present for t in tabs) for fam, tabs in FAMILY_TABLES.items()
    }
    if flat:
        families = {fam: fam == "profile" for fam in FAMILY_TABLES}
    report = {
        "mode": "flat" if flat else "events",
        "as_of": None if resolved_as_of is None else str(resolved_as_of.date()),
        "rows": {k: len(v) for k, v in typed.items() if k != CONTACTS or k in present},
        "tables_missing": [t for t in DATA_TABLES if t not in present],
        "tables_ignored": unknown,
        "families": families,
        "customers_derived_from_events": not flat and "customers" not in present,
    }
    return ValidatedData(typed, resolved_as_of, report["mode"], report)
