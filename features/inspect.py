"""Guess how a user's export maps onto the data contract (`churnlight inspect`): which files are
per customer (entities) and which per event (a timestamp, a customer id that repeats), each
column's role, and a commented `mapping.yaml` that `data.mapping` applies at validation.

Guesses come from the column's name (English and Chinese) checked against its values; the
confidence says how much of both agreed: a name and values that fit (0.9), values alone (0.6), a
name whose values do not fit (0.4). Everything here is pure: frames in, guesses and text out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from churnlight.features.contract import ACTIVITY_TYPES, OPTIONAL
from churnlight.features.mapping import snake_case, to_number
from churnlight.features.roles import ATTRIBUTE_NAMES, EVENT_WORDS, NAMES, NO, YES

SAMPLE = 2000


@dataclass(frozen=True)
class ColumnGuess:
    name: str
    role: str  # customer_id, timestamp, signup_date, ..., attribute, ignore
    confidence: float
    examples: tuple[str, ...]
    note: str = ""


@dataclass
class TableGuess:
    file: str
    rows: int
    kind: str  # entity, event or unknown
    table: str | None  # the contract table it becomes, None: left out
    confidence: float
    columns: list[ColumnGuess]
    note: str = ""
    # the mapping of this table: contract column -> source column or derivation, and the rest
    spec: dict[str, Any] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-\.()（）/]", "", str(name).lower())


def _name_role(name: str) -> tuple[str | None, bool]:
    """The role a column's name suggests, and whether the match was exact."""
    key = _key(name)
    for role, (exact, _) in NAMES.items():
        if key in exact:
            return role, True
    for role, (_, parts) in NAMES.items():
        if any(p in key for p in parts):
            return role, False
    return None, False


def _text(values: pd.Series) -> pd.Series:
    s = values.dropna().astype("string").str.strip()
    return s[s != ""].head(SAMPLE)


def _share_dates(s: pd.Series) -> float:
    if s.empty or pd.api.types.is_numeric_dtype(s):
        return 0.0
    if pd.api.types.is_datetime64_any_dtype(s):
        return 1.0
    looks = s.str.contains(r"\d{1,4}[-/.年]\d{1,2}", regex=True).fillna(False)
    if looks.mean() < 0.9:
        return 0.0
    conv = pd.to_datetime(
        s.str.replace(r"[年月]", "-", regex=True).str.replace("日", ""),
        errors="coerce",
        format="mixed",
    )
    return float(conv.notna().mean())


def _share_numbers(s: pd.Series) -> float:
    return float(to_number(s).notna().mean()) if not s.empty else 0.0


def _is_label(s: pd.Series) -> bool:
    words = set(s.str.lower().unique())
    return 1 < len(words) <= 2 and words <= (YES | NO) and bool(words & YES) and bool(words & NO)


def guess_column(name: str, values: pd.Series) -> ColumnGuess:
    """One column's role: its name's suggestion checked against its values."""
    s = _text(values)
    examples = tuple(dict.fromkeys(s.head(50).tolist()))[:3]
    by_name, exact = _name_role(name)
    dates, numbers = _share_dates(s), _share_numbers(s)
    distinct = s.nunique() / max(len(s), 1)
    mean_len = float(s.str.len().mean()) if len(s) else 0.0
    fits = {
        "customer_id": numbers < 1 or (s.str.fullmatch(r"\d+(\.0)?").all() and distinct > 0.01),
        "signup_date": dates > 0.9,
        "cancel_date": dates > 0.9,
        "timestamp": dates > 0.9,
        "label": _is_label(s),
        "quantity": numbers > 0.98,
        "unit_price": numbers > 0.98,
        "amount": numbers > 0.98,
        "score": numbers > 0.98 and len(s) > 0 and to_number(s).between(0, 10).all(),
        "event_type": numbers < 0.5 and s.nunique() <= 50,
        "text": mean_len >= 8 and numbers < 0.5,
        "id_other": True,
        "region": numbers < 0.5,
        "industry": numbers < 0.5,
        "plan": numbers < 0.5,
        "category": numbers < 0.5 and s.nunique() <= 100,
    }
    if s.empty:
        return ColumnGuess(name, "ignore", 0.9, examples, "empty column")
    if by_name is not None:
        if fits[by_name]:
            return ColumnGuess(name, by_name, 0.9 if exact else 0.75, examples)
        if by_name == "timestamp" and numbers > 0.98:
            by_name = None  # "Time" of numbers: a duration, an attribute
        else:
            return ColumnGuess(
                name, by_name, 0.4, examples, "the name fits, the values less so: check"
            )
    if dates > 0.9:
        return ColumnGuess(name, "timestamp", 0.6, examples)
    if _is_label(s) and numbers < 0.5:  # 0/1 alone is as often a flag attribute
        return ColumnGuess(name, "label", 0.6, examples, "two values, yes/no like")
    if numbers > 0.98:
        return ColumnGuess(name, "number", 0.6, examples)
    if mean_len >= 20 and distinct > 0.5:
        return ColumnGuess(name, "text", 0.6, examples)
    if s.nunique() <= max(20, 0.05 * len(s)):
        return ColumnGuess(name, "attribute", 0.6, examples)
    return ColumnGuess(name, "ignore", 0.5, examples, "many distinct values: an id or free text")


def _first(cols: list[ColumnGuess], role: str) -> ColumnGuess | None:
    found = [c for c in cols if c.role == role]
    return max(found, key=lambda c: c.confidence) if found else None


def _blank_numbers(values: pd.Series) -> bool:
    """Numbers with some blank cells (Telco's TotalCharges " "): cast so blanks are missing."""
    s = values.dropna().astype("string")
    blank = (s.str.strip() == "").sum()
    return bool(blank) and _share_numbers(_text(values)) > 0.98


def guess_table(file: str, df: pd.DataFrame, label_column: str = "churn") -> TableGuess:
    """The kind of one file (entity or event), its contract table and its columns' roles."""
    cols = [guess_column(str(c), df[c]) for c in df.columns]
    cid = _first(cols, "customer_id")
    if cid is None:
        return TableGuess(file, len(df), "unknown", None, 0.3, cols, "no customer id column")
    ids = df[cid.name].dropna()
    ts = _first(cols, "timestamp")
    unique = ids.is_unique
    if unique and (ts is None or _first(cols, "amount") is None):
        return TableGuess(file, len(df), "entity", "customers", cid.confidence, cols)
    if ts is None:
        return TableGuess(
            file, len(df), "unknown", None, 0.3, cols, "customer id repeats but no timestamp"
        )
    if _first(cols, "amount") or (_first(cols, "quantity") and _first(cols, "unit_price")):
        table = "transactions"
    elif _first(cols, "score") or _first(cols, "text"):
        table = "feedback"
    else:
        table = "activity"
    return TableGuess(file, len(df), "event", table, min(cid.confidence, ts.confidence), cols)


def _event_values(values: pd.Series) -> dict[str, str]:
    """Event type words mapped onto the contract's activity types where they are known."""
    out = {}
    for v in _text(values).unique()[:50]:
        word = re.sub(r"[_\-]", " ", str(v).strip().lower())
        if word in EVENT_WORDS and EVENT_WORDS[word] != v:
            out[str(v)] = EVENT_WORDS[word]
    return out


def _label_values(values: pd.Series) -> dict[str, int]:
    return {str(v): int(str(v).lower() in YES) for v in _text(values).unique()}


def _attribute_name(name: str, taken: set[str]) -> str:
    new = ATTRIBUTE_NAMES.get(str(name).strip(), snake_case(name))
    while new in taken:
        new += "_2"
    return new


def plan_table(tg: TableGuess, df: pd.DataFrame, label_column: str, events: bool) -> None:
    """Fill `tg.spec` (the mapping of this table) and `tg.comments` (why, per column)."""
    spec: dict[str, Any] = {"file": tg.file, "columns": {}}
    columns, types, values, comments = spec["columns"], {}, {}, tg.comments
    drop_missing, drop_negative = [], []

    def put(target: str, src: Any, why: str) -> None:
        columns[target] = src
        comments[target] = why

    def describe(c: ColumnGuess) -> str:
        ex = ", ".join(c.examples)
        return f"{c.role} ({c.confidence:.0%}) e.g. {ex}" + (f"; {c.note}" if c.note else "")

    cid = _first(tg.columns, "customer_id")
    assert cid is not None
    put("customer_id", cid.name, describe(cid))
    if df[cid.name].isna().any() or (df[cid.name].astype("string").str.strip() == "").any():
        drop_missing.append("customer_id")
        comments["drop_missing"] = "rows without a customer id cannot be attributed: left out"
    if tg.table == "customers":
        optional = set(OPTIONAL["customers"])
        for c in tg.columns:
            if c is cid:
                continue
            if c.role in ("signup_date", "cancel_date") and c.role not in columns:
                put(c.role, c.name, describe(c))
                types[c.role] = "date"
            elif c.role in ("region", "industry", "plan") and c.role not in columns:
                put(c.role, c.name, describe(c))
            elif c.role == "label" and c is _first(tg.columns, "label"):
                if events:
                    comments[f"# {c.name}"] = (
                        f"{c.name}: a churn label ({describe(c)}); left out: beside event "
                        "tables churn is defined from the events (features.churn_definition), "
                        "and a label among the attributes would leak the answer"
                    )
                    continue
                put(label_column, c.name, describe(c))
                values[label_column] = _label_values(df[c.name])
            elif c.role in ("ignore", "timestamp", "id_other", "text"):
                comments[f"# {c.name}"] = f"{c.name}: {describe(c)}; left out"
            else:
                new = _attribute_name(c.name, set(columns) | optional)
                put(new, c.name, f"attribute: {describe(c)}")
                if _blank_numbers(df[c.name]):
                    types[new] = "number"
                    comments[new] += "; blank cells become missing"
    else:
        ts = _first(tg.columns, "timestamp")
        assert ts is not None
        put("ts", ts.name, describe(ts))
        types["ts"] = "date"
        if tg.table == "transactions":
            amount = _first(tg.columns, "amount")
            qty, price = _first(tg.columns, "quantity"), _first(tg.columns, "unit_price")
            if qty and price:
                conf = min(qty.confidence, price.confidence)
                why = f"amount = {qty.name} x {price.name} ({conf:.0%})"
                put("amount", {"multiply": [qty.name, price.name]}, why)
            else:
                assert amount is not None
                put("amount", amount.name, describe(amount))
                types["amount"] = "number"
            src = [qty.name, price.name] if qty and price else [columns["amount"]]
            if any((to_number(df[s]) < 0).any() for s in src):
                drop_negative.append("amount")
                comments["drop_negative"] = (
                    "returns and credits (negative amounts) left out: the contract counts purchases"
                )
            cat = _first(tg.columns, "category")
            if cat:
                put("category", cat.name, describe(cat))
        elif tg.table == "feedback":
            score, text = _first(tg.columns, "score"), _first(tg.columns, "text")
            if score:
                put("score", score.name, describe(score))
                types["score"] = "number"
                nums = to_number(df[score.name]).dropna()
                kind = "csat" if len(nums) and nums.between(1, 5).all() else "nps"
                put(
                    "kind",
                    {"value": kind},
                    f"every row a {kind} score ({'1-5' if kind == 'csat' else '0-10'} scale)",
                )
            else:
                put("kind", {"value": "message"}, "free text only: every row a message")
            if text:
                put("text", text.name, describe(text))
        else:
            et = _first(tg.columns, "event_type")
            if et:
                put("event_type", et.name, describe(et))
                known = _event_values(df[et.name])
                if known:
                    values["event_type"] = known
                other = [
                    v
                    for v in _text(df[et.name]).unique()[:50]
                    if v not in known and v not in ACTIVITY_TYPES
                ]
                if other:
                    comments["# event types"] = (
                        f"event types the features do not know (map them in `values` to one of "
                        f"{', '.join(ACTIVITY_TYPES)}): {', '.join(map(str, other[:10]))}"
                    )
            else:
                put("event_type", {"value": "visit"}, "no event type column: every row a visit")
        used = {s for v in columns.values() for s in ([v] if isinstance(v, str) else [])}
        for c in tg.columns:
            if c.name not in used and not (
                isinstance(columns.get("amount"), dict) and c.name in columns["amount"]["multiply"]
            ):
                comments[f"# {c.name}"] = f"{c.name}: {describe(c)}; left out"
    if types:
        spec["types"] = types
    if values:
        spec["values"] = values
    if drop_missing:
        spec["drop_missing"] = drop_missing
    if drop_negative:
        spec["drop_negative"] = drop_negative
    tg.spec = spec


def inspect_files(
    files: Mapping[str, pd.DataFrame], label_column: str = "churn"
) -> list[TableGuess]:
    """Every file's guess; a contract table claimed by two files goes to the more confident."""
    guesses = [guess_table(name, df, label_column) for name, df in files.items()]
    chosen: dict[str, TableGuess] = {}
    for g in sorted(guesses, key=lambda g: (-g.confidence, -g.rows)):
        if g.table is None:
            continue
        if g.table in chosen:
            g.note = f"also looks like {g.table} ({chosen[g.table].file} is mapped): left out"
            g.table = None
            continue
        chosen[g.table] = g
    events = any(t in chosen for t in ("transactions", "activity"))
    for g in guesses:
        if g.table is not None:
            plan_table(g, files[g.file], label_column, events)
    return guesses


def mapping_dict(guesses: list[TableGuess]) -> dict[str, Any]:
    """The mapping as data (what `data.mapping`'s file holds)."""
    return {"tables": {g.table: g.spec for g in guesses if g.table is not None}}


def _flow(value: Any) -> str:
    """A value on one line, quoted where YAML needs it (Yes, No, 1/1/2023)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def mapping_yaml(guesses: list[TableGuess], source: str) -> str:
    """The mapping as commented YAML: each guess with its confidence and examples, the files
    left out and why, what to check."""
    out = [
        f"# churnlight mapping for {source}, written by `churnlight inspect`: guesses, check them.",
        '# Each table of the data contract (README "Bring your own data") names its source file;',
        "# `columns` maps a contract (or new attribute) column to a source column, to",
        "# {multiply: [a, b]} (a derived amount) or to {value: constant}; unlisted columns are",
        "# left out. `types`: number (blank cells missing), date, text. `values`: old -> new",
        "# (labels to 1/0, event types to the contract's). drop_missing / drop_negative leave",
        "# rows out. Use it with: dvc exp run -S data.source=FOLDER -S data.mapping=THIS_FILE",
        "# (the file must be inside the data.source folder, so dvc re-runs when you edit it).",
        "tables:",
    ]
    for g in guesses:
        if g.table is None:
            continue
        spec = g.spec
        out.append(f"  {g.table}:  # {g.kind} table, {g.rows:,} rows ({g.confidence:.0%})")
        out.append(f"    file: {_flow(spec['file'])}")
        out.append("    columns:")
        for target, src in spec["columns"].items():
            why = g.comments.get(target, "")
            out.append(f"      {_flow(target)}: {_flow(src)}" + (f"  # {why}" if why else ""))
        for key, why in g.comments.items():
            if key.startswith("# "):
                out.append(f"      # {why}")
        for key in ("types", "values"):
            if key in spec:
                out.append(f"    {key}:")
                for col, val in spec[key].items():
                    out.append(f"      {_flow(col)}: {_flow(val)}")
        for key in ("drop_missing", "drop_negative"):
            if key in spec:
                out.append(f"    {key}: {_flow(spec[key])}  # {g.comments.get(key, '')}")
    left = [g for g in guesses if g.table is None]
    if left:
        out.append("# files left out:")
        out += [f"#   {g.file}: {g.note or g.kind}" for g in left]
    return "\n".join(out) + "\n"
