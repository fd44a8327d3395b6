"""The pandas derivation of the snapshot features: an independent reference for tests.

The library defines every derived feature, signal and the three-colour rule once, in SQL
(`churnlight.features.derived`, `churnlight.features.rules`). This module restates them in
pandas, step by step, so that a property test can hold the SQL against a second, independent
statement of the same arithmetic (`test_reference_derivation.py`). It is not used by the
pipeline.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from churnlight.features.activity import OWN_ACTIVITY
from churnlight.features.config import FeatureConfig
from churnlight.features.derived import RESERVED_CUSTOMER_COLUMNS
from churnlight.features.registry import ACTIVITY_WORDS
from churnlight.features.sql import ident as _ident

_NULLABLE = {
    "int8": "Int8",
    "int16": "Int16",
    "int32": "Int32",
    "int64": "Int64",
    "uint8": "UInt8",
    "uint16": "UInt16",
    "uint32": "UInt32",
    "uint64": "UInt64",
    "bool": "boolean",
}


def aggregate_frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """The aggregates of `sql` as a DataFrame in (customer_id, cutoff) order.

    Typed by their DuckDB types, never by their values, so that every range and batch of one
    run gets the same dtypes: integers and booleans nullable (Int64, ...: a customer without
    events has NULL aggregates), VARCHAR as `str`.
    """
    types = aggregate_types(con, sql)
    cols = ", ".join(f"a.{_ident(c)}" for c in types)
    rows = con.execute(f"SELECT {cols} FROM ({sql}) a ORDER BY a.customer_id, a.cutoff").df()
    return _static_dtypes(rows, types)


def _static_dtypes(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    for col in frame.columns:
        dtype = frame[col].dtype
        if isinstance(dtype, np.dtype) and dtype.name in _NULLABLE:
            frame[col] = frame[col].astype(_NULLABLE[dtype.name])
        elif types.get(col) == "VARCHAR" and pd.api.types.is_object_dtype(dtype):
            frame[col] = frame[col].astype("str")
    return frame


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.total_seconds() / 86400.0


def _score(values: pd.Series, cuts: list[float], higher_is_better: bool) -> pd.Series:
    """1-5 score from four thresholds (domain.md section 3)."""
    v = values.to_numpy(dtype=float)
    if higher_is_better:  # cuts descending: >= c0 -> 5, >= c1 -> 4, ...
        score = 1 + sum((v >= c).astype(int) for c in cuts)
    else:  # cuts ascending: <= c0 -> 5, <= c1 -> 4, ...
        score = 1 + sum((v <= c).astype(int) for c in cuts)
    return pd.Series(score, index=values.index, dtype="int64")


def _zero_filled(columns: list[str]) -> list[str]:
    """The aggregates where no rows means 0, not unknown: windowed counts and sums and a few
    totals. One list for both derivations (pandas and SQL), so they cannot drift apart."""
    windowed = [
        c
        for c in columns
        if c.endswith("d") and c.split("_")[-1][:-1].isdigit() and "_mean_" not in c
    ]
    return [
        *windowed,
        "complaints_365d",
        "complaints_open",
        "messages_90d",
        "vague_replies_90d",
        "competitor_mentions_90d",
        "n_tx_365d",
        "amt_365d",
        "amt_90d",
        "n_tx_all",
        "lv_30d",
        "lv_prior90",
        "sent_90d",
        "replied_90d",
        "sent_before",
        "replied_before",
    ]


def derive_features(
    agg: pd.DataFrame, cfg: FeatureConfig, windows_present: dict[str, bool]
) -> pd.DataFrame:
    """Ratios, flags, RFM, tiers: vectorised arithmetic on the aggregates, one row at a time."""
    df = agg.copy()
    cut = df["cutoff"]
    count_cols = _zero_filled(list(df.columns))
    for c in count_cols:
        if c in df.columns:
            df[c] = df[c].fillna(0)
    out = pd.DataFrame({"customer_id": df["customer_id"], "cutoff": cut})
    out["label"] = df["label"].astype("Int8")
    out["tenure_days"] = _days(cut, df["start_ts"])
    rfm, care, sig = cfg.rfm, cfg.care, cfg.signals

    if windows_present.get("activity"):
        for w in cfg.windows_days:
            for etype in ACTIVITY_WORDS:
                out[f"{etype}_{w}d"] = df[f"{etype}_{w}d"].astype("int64")
        # activity is read over the yearly lookback: no event in it means "a year or more"
        lookback = float(max(max(cfg.windows_days), 365))
        out["activity_recency_days"] = _days(cut, df["last_lvb"]).fillna(
            np.minimum(out["tenure_days"], lookback)
        )
        base = df["lv_prior90"] / 3.0
        out["activity_30d_vs_baseline"] = np.where(
            base > 0, df["lv_30d"] / base.where(base > 0), np.nan
        )
        out["reply_rate_90d"] = df["replied_90d"] / df["sent_90d"].where(df["sent_90d"] > 0)
        out["reply_rate_before"] = df["replied_before"] / df["sent_before"].where(
            df["sent_before"] > 0
        )
        out["reply_rate_change"] = out["reply_rate_90d"] - out["reply_rate_before"]
        overdue = df["last_service_due"].notna() & (
            df["last_service_done"].isna() | (df["last_service_done"] < df["last_service_due"])
        )
        out["service_overdue_days"] = np.where(overdue, _days(cut, df["last_service_due"]), 0.0)
    if windows_present.get("transactions"):
        for w in cfg.windows_days:
            out[f"purchases_{w}d"] = df[f"purchases_{w}d"].astype("int64")
            out[f"spend_{w}d"] = df[f"spend_{w}d"].astype(float)
        recency = _days(cut, df["last_tx"])
        out["recency_days"] = recency.fillna(out["tenure_days"])
        out["frequency_per_year"] = df["n_tx_365d"].astype(float)
        out["monetary_per_year"] = df["amt_365d"].astype(float)
        out["months_without_purchase"] = np.floor(out["recency_days"] / 30.44)
        span = _days(df["last_tx"], df["first_tx"])
        gap = span / (df["n_tx_all"] - 1).where(df["n_tx_all"] > 1)
        out["mean_gap_days"] = gap
        out["gap_ratio"] = recency / gap.where(gap > 0)
        earlier_q = (df["amt_365d"] - df["amt_90d"]) / 3.0
        out["spend_90d_vs_baseline"] = df["amt_90d"] / earlier_q.where(earlier_q > 0)
        out["promo_share_365d"] = df["promo_365d"] / df["n_tx_365d"].where(df["n_tx_365d"] > 0)
        out["r_score"] = _score(out["recency_days"], rfm["recency_days"], higher_is_better=False)
        out["f_score"] = _score(out["frequency_per_year"], rfm["frequency_per_year"], True)
        out["m_score"] = _score(out["monetary_per_year"], rfm["monetary_per_year"], True)
        out["rfm_sum"] = out["r_score"] + out["f_score"] + out["m_score"]
        t = rfm["tiers"]
        out["value_tier"] = np.select(
            [
                out["rfm_sum"] >= t["platinum"],
                out["rfm_sum"] >= t["gold"],
                out["rfm_sum"] >= t["silver"],
            ],
            ["platinum", "gold", "silver"],
            "regular",
        )
    if "nps_two" in df.columns and windows_present.get("feedback"):
        nps = df["nps_two"]
        last = nps.map(
            lambda v: v[0] if isinstance(v, list | np.ndarray) and len(v) > 0 else np.nan
        )
        prev = nps.map(
            lambda v: v[1] if isinstance(v, list | np.ndarray) and len(v) > 1 else np.nan
        )
        out["nps_last"] = last.astype(float)
        out["nps_change"] = (last - prev).astype(float)
        out["nps_detractor"] = (out["nps_last"] <= sig["nps_detractor_max"]).astype(int)
        out["days_since_nps"] = _days(cut, df["last_nps_ts"])
        out["nps_missing"] = out["nps_last"].isna().astype(int)
        out["csat_last"] = df["csat_last"].astype(float)
        out["csat_mean_365d"] = df["csat_mean_365d"].astype(float)
        out["days_since_csat"] = _days(cut, df["last_csat_ts"])
        out["csat_missing"] = out["csat_last"].isna().astype(int)
        out["complaints_365d"] = df["complaints_365d"].astype("int64")
        out["complaints_open"] = df["complaints_open"].astype("int64")
        out["oldest_open_complaint_days"] = df["oldest_open_complaint_days"].fillna(0.0)
        last_own = pd.concat(
            [df.get("last_own_activity"), df.get("last_tx"), df.get("last_message")], axis=1
        ).max(axis=1)
        resolved = df["last_resolved"]
        silent = resolved.notna() & (last_own.isna() | (last_own <= resolved))
        out["silent_days_after_complaint"] = np.where(silent, _days(cut, resolved), 0.0)
        out["messages_90d"] = df["messages_90d"].astype("int64")
        out["vague_replies_90d"] = df["vague_replies_90d"].astype("int64")
        out["competitor_mentions_90d"] = df["competitor_mentions_90d"].astype("int64")
    if "industry_index_change_3m" in df.columns and windows_present.get("market"):
        for c in ("industry_index_change_3m", "industry_index_change_6m"):
            out[c] = df[c].astype(float)
        for c in ("competitor_launch_90d", "policy_shock_180d"):
            out[c] = df[c].fillna(0).astype("int64")
    if windows_present.get("transactions") or windows_present.get("activity"):
        spend = out.get("monetary_per_year", 0.0)
        own_365 = sum(out.get(f"{e}_365d", 0) for e in OWN_ACTIVITY if e in ACTIVITY_WORDS)
        per_month = (own_365 + out.get("frequency_per_year", 0)) / 12.0
        last_seen = out[[c for c in ("recency_days", "activity_recency_days") if c in out]].min(
            axis=1
        )
        out["care_layer"] = np.select(
            [
                last_seen >= care["dormant_days"],
                (spend >= care["core_spend"]) & (per_month >= care["core_interactions_per_month"]),
            ],
            ["dormant", "core"],
            "active",
        )
    return out


def rule_signals(df: pd.DataFrame, signals: dict) -> pd.DataFrame:
    """Which warning signals of domain.md section 1 fire, per family (missing inputs never fire)."""

    def col(name: str) -> pd.Series:
        return df[name] if name in df.columns else pd.Series(np.nan, index=df.index)

    s = signals
    behaviour = {
        "activity_drop": col("activity_30d_vs_baseline") <= 1 - s["activity_drop"],
        "no_purchase": col("months_without_purchase") >= s["months_without_purchase"],
        "gap": col("gap_ratio") > s["gap_ratio"],
        "reply_drop": col("reply_rate_90d")
        <= (1 - s["reply_rate_drop"]) * col("reply_rate_before"),
        "cancellations": col("booking_cancelled_90d") >= s["booking_cancellations"],
        "service_overdue": col("service_overdue_days") >= s["service_overdue_days"],
    }
    attitude = {
        "vague": col("vague_replies_90d") >= s["vague_replies"],
        "csat_low": col("csat_last") <= s["csat_low_max"],
        "nps_low": (col("nps_last") <= s["nps_detractor_max"])
        | (col("nps_change") <= -s["nps_drop"]),
        "complaint_open": col("complaints_open") > 0,
        "silence": col("silent_days_after_complaint") > 0,
        "competitor": col("competitor_mentions_90d") >= s["competitor_mentions"],
    }
    external = {
        "industry_decline": col("industry_index_change_6m") <= s["industry_decline_6m"],
        "competitor_launch": col("competitor_launch_90d") > 0,
        "policy": col("policy_shock_180d") > 0,
    }
    out = pd.DataFrame(index=df.index)
    for fam, rules in (("behaviour", behaviour), ("attitude", attitude), ("external", external)):
        hits = pd.concat([r.fillna(False).astype(bool) for r in rules.values()], axis=1)
        out[f"rule_{fam}_signals"] = hits.sum(axis=1).astype("int64")
    out["rule_spend_drop"] = (col("spend_90d_vs_baseline") <= 1 - s["spend_drop"]).fillna(False)
    return out


def three_colour(df: pd.DataFrame, signals: dict) -> pd.DataFrame:
    """The practitioners' three-colour warning (domain.md section 2) and a score to rank by.

    red: 2+ families triggered or spend down 70%+; yellow: 1 family; green: none. The score
    orders colours first, then the number of signals, so the rules can be ranked at capacity.
    """
    sig = rule_signals(df, signals)
    fams = sum(
        (sig[f"rule_{f}_signals"] > 0).astype(int) for f in ("behaviour", "attitude", "external")
    )
    red = (fams >= 2) | sig["rule_spend_drop"].astype(bool)
    colour = np.where(red, "red", np.where(fams >= 1, "yellow", "green"))
    n_sig = sig[[c for c in sig.columns if c.endswith("_signals")]].sum(axis=1)
    level = np.select([colour == "red", colour == "yellow"], [2, 1], 0)
    return pd.DataFrame(
        {
            "rule_colour": colour,
            "rule_families": fams.astype("int64"),
            "rule_score": (level + np.minimum(n_sig, 9) / 10.0).astype(float),
        },
        index=df.index,
    )


def profile_columns(customers: pd.DataFrame, label_column: str | None = None) -> dict[str, bool]:
    """Attribute columns of the customers table: name -> is numeric."""
    skip = RESERVED_CUSTOMER_COLUMNS | ({label_column} if label_column else set())
    return {
        c: bool(pd.api.types.is_numeric_dtype(customers[c]))
        for c in customers.columns
        if c not in skip
    }


def add_profile(
    features: pd.DataFrame, customers: pd.DataFrame, columns: dict[str, bool]
) -> pd.DataFrame:
    """Typed customer attributes: numbers stay numbers, everything else is a string category."""
    prof = customers[["customer_id", *columns]].copy()
    for c, numeric in columns.items():
        prof[c] = prof[c].astype(float) if numeric else prof[c].astype("string")
    return features.merge(prof, on="customer_id", how="left", validate="many_to_one")


# --- the same derivations in SQL --------------------------------------------------------------
# `derive_features`, `add_profile` and `three_colour` restated as one SELECT over the relation
# `agg` (a range of `aggregate_ranges`), so that DuckDB derives a million customers' snapshots
# without a round trip through pandas. Every expression repeats the pandas arithmetic step by
# step (the same float operations in the same order, NULL where pandas has NaN or NA); the stage
# checks the two against each other on a sample before it trusts this one (`derived_sql`).


def finish_rows(
    agg: pd.DataFrame,
    cfg: FeatureConfig,
    windows_present: dict[str, bool],
    customers: pd.DataFrame,
    profile: dict[str, bool],
) -> pd.DataFrame:
    """The stage's feature rows from aggregates: derived features, profile, three colours."""
    feats = add_profile(derive_features(agg, cfg, windows_present), customers, profile)
    return pd.concat([feats, three_colour(feats, cfg.signals)], axis=1)


def aggregate_types(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
    """Column name -> DuckDB type of the aggregates of `sql` (a range's SELECT), not the
    profile columns riding along."""
    rel = con.sql(sql)
    return {
        c: str(t)
        for c, t in zip(rel.columns, rel.types, strict=True)
        if not c.startswith("profile:")
    }
