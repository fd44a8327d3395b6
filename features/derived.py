"""The features of a snapshot row, each defined once as a typed SQL expression.

Event mode reads a range's aggregates (`churnlight.features.aggregates`, the relation `agg`):
ratios, recencies, flags, RFM scores, value tiers and care layers, then the customer's own
attributes (the profile) and the three-colour rule (`churnlight.features.rules`). Flat mode
(a labelled customers table without events) has the profile and the rule only.

Missing inputs stay missing (NULL) unless a count without events means zero; no value is
guessed. Durations are in days as whole seconds plus the microseconds' fraction, so that a day
count is exact to the microsecond.
"""

from __future__ import annotations

from churnlight.features.activity import OWN_ACTIVITY
from churnlight.features.aggregates import PROFILE_COLUMN
from churnlight.features.btyd import OUTPUTS as BTYD_OUTPUTS
from churnlight.features.columns import (
    CATEGORY,
    INTEGER,
    LABEL,
    NULLABLE_NUMBER,
    NUMBER,
    TEXT,
    TIMESTAMP,
    Column,
    ColumnType,
    ref,
    source,
)
from churnlight.features.config import FeatureConfig
from churnlight.features.registry import ACTIVITY_WORDS
from churnlight.features.rules import rule_columns
from churnlight.features.sql import ident, literal
from churnlight.features.sql import number as num

# cancel_reason is written when the customer leaves: a churn feature made of it would be the
# label in disguise (the win-back list reads it instead)
RESERVED_CUSTOMER_COLUMNS = {"customer_id", "signup_date", "cancel_date", "cancel_reason"}
# DuckDB's number types: a customer attribute of one of them is a number, any other a category
NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "BOOLEAN",
)
# the aggregates that are counts or sums besides the windowed ones: no rows means 0
_ZERO_WHEN_NONE = {
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
}


def profile_columns(types: dict[str, str], label_column: str | None = None) -> dict[str, bool]:
    """The customer attributes among the customers table's columns (name -> DuckDB type):
    name -> is numeric."""
    skip = RESERVED_CUSTOMER_COLUMNS | ({label_column} if label_column else set())
    return {c: t.split("(")[0] in NUMERIC_TYPES for c, t in types.items() if c not in skip}


def zero_when_none(name: str) -> bool:
    """Whether no rows means 0 for the aggregate `name` (windowed counts and sums, a few
    totals), not unknown."""
    windowed = name.endswith("d") and name.split("_")[-1][:-1].isdigit()
    return (windowed and "_mean_" not in name) or name in _ZERO_WHEN_NONE


def _agg(name: str) -> str:
    """An aggregate of the input relation, 0 where no rows means 0."""
    return f"coalesce({source(name)}, 0)" if zero_when_none(name) else source(name)


def days_between(later: str, earlier: str) -> str:
    """Days from `earlier` to `later`: whole seconds plus the remaining microseconds / 1e6."""
    d = f"date_diff('microsecond', {earlier}, {later})"
    rem = f"((({d} % 1000000) + 1000000) % 1000000)"
    return f"((({d} - {rem}) / 1000000) + {rem} / {num(1e6)}) / {num(86400)}"


def _ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator where the denominator is positive, else missing."""
    return f"CASE WHEN {denominator} > 0 THEN {numerator} / {denominator} END"


def _score(value: str, cuts: list, higher: bool) -> str:
    """1-5 score from four thresholds (domain.md section 3): 1 + the number of cuts reached."""
    op = ">=" if higher else "<="
    hits = " + ".join(f"coalesce(CAST(({value} {op} {num(c)}) AS BIGINT), 0)" for c in cuts)
    return f"(1 + {hits})"


def _activity(cfg: FeatureConfig) -> list[Column]:
    cut = source("cutoff")
    out = [
        Column(f"{e}_{w}d", _agg(f"{e}_{w}d"), INTEGER)
        for w in cfg.windows_days
        for e in ACTIVITY_WORDS
    ]
    # activity is read over the lookback: no event in it means "the lookback or more"
    tenure = ref("tenure_days")
    capped = f"CASE WHEN {tenure} IS NOT NULL THEN least({tenure}, {num(cfg.lookback_days)}) END"
    due, done = source("last_service_due"), source("last_service_done")
    overdue = f"{due} IS NOT NULL AND ({done} IS NULL OR {done} < {due})"
    return [
        *out,
        Column(
            "activity_recency_days",
            f"coalesce({days_between(cut, source('last_lvb'))}, {capped})",
            NUMBER,
        ),
        Column(
            "activity_30d_vs_baseline",
            _ratio(_agg("lv_30d"), f"({_agg('lv_prior90')} / {num(3)})"),
            NUMBER,
        ),
        Column("reply_rate_90d", _ratio(_agg("replied_90d"), _agg("sent_90d")), NULLABLE_NUMBER),
        Column(
            "reply_rate_before",
            _ratio(_agg("replied_before"), _agg("sent_before")),
            NULLABLE_NUMBER,
        ),
        Column(
            "reply_rate_change",
            f"{ref('reply_rate_90d')} - {ref('reply_rate_before')}",
            NULLABLE_NUMBER,
        ),
        Column(
            "service_overdue_days",
            f"CASE WHEN {overdue} THEN {days_between(cut, due)} ELSE {num(0)} END",
            NUMBER,
        ),
    ]


def _transactions(cfg: FeatureConfig) -> list[Column]:
    out = []
    for w in cfg.windows_days:
        out.append(Column(f"purchases_{w}d", _agg(f"purchases_{w}d"), INTEGER))
        out.append(Column(f"spend_{w}d", _agg(f"spend_{w}d"), NUMBER))
    recency = f"({days_between(source('cutoff'), source('last_tx'))})"
    n_all = _agg("n_tx_all")
    gap = f"({days_between(source('last_tx'), source('first_tx'))} / "
    gap += f"CASE WHEN {n_all} > 1 THEN {n_all} - 1 END)"
    earlier_quarter = f"(({_agg('amt_365d')} - {_agg('amt_90d')}) / {num(3)})"
    rfm, tiers, total = cfg.rfm, cfg.rfm["tiers"], ref("rfm_sum")
    return [
        *out,
        Column("recency_days", f"coalesce({recency}, {ref('tenure_days')})", NUMBER),
        Column("frequency_per_year", _agg("n_tx_365d"), NUMBER),
        Column("monetary_per_year", _agg("amt_365d"), NUMBER),
        Column("months_without_purchase", f"floor({ref('recency_days')} / {num(30.44)})", NUMBER),
        Column("mean_gap_days", gap, NULLABLE_NUMBER),
        Column("gap_ratio", _ratio(recency, gap), NULLABLE_NUMBER),
        Column("spend_90d_vs_baseline", _ratio(_agg("amt_90d"), earlier_quarter), NUMBER),
        Column("promo_share_365d", _ratio(_agg("promo_365d"), _agg("n_tx_365d")), NULLABLE_NUMBER),
        Column("r_score", _score(ref("recency_days"), rfm["recency_days"], False), INTEGER),
        Column(
            "f_score", _score(ref("frequency_per_year"), rfm["frequency_per_year"], True), INTEGER
        ),
        Column(
            "m_score", _score(ref("monetary_per_year"), rfm["monetary_per_year"], True), INTEGER
        ),
        Column("rfm_sum", f"{ref('r_score')} + {ref('f_score')} + {ref('m_score')}", INTEGER),
        Column(
            "value_tier",
            f"CASE WHEN {total} >= {tiers['platinum']} THEN 'platinum' "
            f"WHEN {total} >= {tiers['gold']} THEN 'gold' "
            f"WHEN {total} >= {tiers['silver']} THEN 'silver' ELSE 'regular' END",
            TEXT,
        ),
    ]


def _btyd() -> list[Column]:
    """The BTYD baseline's per-customer numbers (`churnlight.features.btyd`), NULL without a
    purchase before the cutoff."""
    return [Column(c, source(c), NUMBER) for c in BTYD_OUTPUTS]


def _feedback(cfg: FeatureConfig) -> list[Column]:
    cut, nps = source("cutoff"), source("nps_two")  # the last two NPS answers, newest first
    last_own = "greatest({})".format(
        ", ".join(source(c) for c in ("last_own_activity", "last_tx", "last_message"))
    )
    resolved = source("last_resolved")
    silent = f"{resolved} IS NOT NULL AND ({last_own} IS NULL OR {last_own} <= {resolved})"
    detractor = num(cfg.signals["nps_detractor_max"])
    return [
        Column("nps_last", f"{nps}[1]", NUMBER),
        Column("nps_change", f"{nps}[1] - {nps}[2]", NUMBER),
        Column(
            "nps_detractor",
            f"coalesce(CAST(({ref('nps_last')} <= {detractor}) AS BIGINT), 0)",
            INTEGER,
        ),
        Column("days_since_nps", days_between(cut, source("last_nps_ts")), NUMBER),
        Column("nps_missing", f"CAST(({ref('nps_last')} IS NULL) AS BIGINT)", INTEGER),
        Column("csat_last", source("csat_last"), NUMBER),
        Column("csat_mean_365d", source("csat_mean_365d"), NUMBER),
        Column("days_since_csat", days_between(cut, source("last_csat_ts")), NUMBER),
        Column("csat_missing", f"CAST(({ref('csat_last')} IS NULL) AS BIGINT)", INTEGER),
        Column("complaints_365d", _agg("complaints_365d"), INTEGER),
        Column("complaints_open", _agg("complaints_open"), INTEGER),
        Column(
            "oldest_open_complaint_days",
            f"coalesce({source('oldest_open_complaint_days')}, {num(0)})",
            NUMBER,
        ),
        Column(
            "silent_days_after_complaint",
            f"CASE WHEN {silent} THEN {days_between(cut, resolved)} ELSE {num(0)} END",
            NUMBER,
        ),
        Column("messages_90d", _agg("messages_90d"), INTEGER),
        Column("vague_replies_90d", _agg("vague_replies_90d"), INTEGER),
        Column("competitor_mentions_90d", _agg("competitor_mentions_90d"), INTEGER),
    ]


def _market() -> list[Column]:
    changes = ("industry_index_change_3m", "industry_index_change_6m")
    flags = ("competitor_launch_90d", "policy_shock_180d")
    return [Column(c, source(c), NUMBER) for c in changes] + [
        Column(c, _agg(c), INTEGER) for c in flags
    ]


def _care_layer(cfg: FeatureConfig, names: set[str]) -> Column:
    """Core, active or dormant (domain.md section 3), from whichever of spend, purchases and
    own activity the run has."""
    care = cfg.care
    spend = ref("monetary_per_year") if "monetary_per_year" in names else num(0)
    own_365 = " + ".join(["0", *(ref(f"{e}_365d") for e in OWN_ACTIVITY if f"{e}_365d" in names)])
    freq = ref("frequency_per_year") if "frequency_per_year" in names else "0"
    per_month = f"(({own_365}) + {freq}) / {num(12)}"
    # the most recent of the last purchase and the last activity (either may be missing)
    seen = [ref(c) for c in ("recency_days", "activity_recency_days") if c in names]
    return Column(
        "care_layer",
        f"CASE WHEN least({', '.join(seen)}) >= {num(care['dormant_days'])} THEN 'dormant' "
        f"WHEN {spend} >= {num(care['core_spend'])} "
        f"AND {per_month} >= {num(care['core_interactions_per_month'])} THEN 'core' "
        f"ELSE 'active' END",
        TEXT,
    )


def _profile(profile: dict[str, bool]) -> list[Column]:
    """The customer's attributes: numbers stay numbers, everything else is a category."""
    return [
        Column(c, source(PROFILE_COLUMN + c), NUMBER if numeric else CATEGORY)
        for c, numeric in profile.items()
    ]


def event_columns(
    cfg: FeatureConfig, tables: dict[str, bool], profile: dict[str, bool], btyd: bool = False
) -> list[Column]:
    """Every column of an event-mode snapshot row, in file order, over a range's aggregates
    (with the attributes `profile` as `profile:<name>`). `tables`: which of activity,
    transactions, feedback and market the features can read (market: only with the
    customers' region and industry); the features of a missing one are left out. `btyd`: with
    the BTYD baseline's numbers (from the table `btyd_scores`, which must then exist)."""
    out = [
        Column("customer_id", source("customer_id"), TEXT),
        Column("cutoff", source("cutoff"), TIMESTAMP),
        Column("label", source("label"), LABEL),
        Column("tenure_days", days_between(source("cutoff"), source("start_ts")), NUMBER),
    ]
    if tables.get("activity"):
        out += _activity(cfg)
    if tables.get("transactions"):
        out += _transactions(cfg)
    if btyd and tables.get("transactions"):
        out += _btyd()
    if tables.get("feedback"):
        out += _feedback(cfg)
    if tables.get("market"):
        out += _market()
    if tables.get("transactions") or tables.get("activity"):
        out.append(_care_layer(cfg, {c.name for c in out}))
    out += _profile(profile)
    return out + rule_columns({c.name for c in out}, cfg.signals)


def flat_source_sql(
    customers: str, label_column: str, cutoff: str | None, profile: dict[str, bool]
) -> str:
    """The input relation of flat mode: one row per customer of the relation `customers`, at
    the one `cutoff` (YYYY-MM-DD; None: a table without dates, cutoff NULL), labelled by its
    column `label_column` (0/1, as the data contract wrote it), with the attributes `profile`
    as `profile:<name>`."""
    attributes = "".join(f", {ident(c)} AS {ident(PROFILE_COLUMN + c)}" for c in profile)
    day = "NULL" if cutoff is None else literal(cutoff)
    return (
        f"SELECT customer_id, CAST({day} AS TIMESTAMP) AS cutoff, "
        f"{ident(label_column)} AS label{attributes} FROM {customers}"
    )


def flat_columns(
    signals: dict, profile: dict[str, bool], id_type: ColumnType = CATEGORY
) -> list[Column]:
    """Every column of a flat-mode snapshot row over `flat_source_sql`: the keys, the label,
    the profile and the three-colour rule (green: no signal has an input)."""
    out = [
        Column("customer_id", source("customer_id"), id_type),
        Column("cutoff", source("cutoff"), TIMESTAMP),
        Column("label", source("label"), LABEL),
        *_profile(profile),
    ]
    return out + rule_columns({c.name for c in out}, signals)
