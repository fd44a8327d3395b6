"""Point-in-time feature snapshots, computed by DuckDB.

One definition of every windowed aggregation, written as SQL over named relations
(`customers`, `transactions`, `activity`, `feedback`, `market`) on a DuckDB connection: the stage
points those names at Parquet files (so nothing is loaded into pandas), tests at small
DataFrames. Every event join carries `ts < cutoff`, so a cutoff's features never see its future;
only the label reads the window after the cutoff.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnlight.features.contract import ACTIVITY_TYPES
from churnlight.features.registry import ACTIVITY_WORDS

log = logging.getLogger(__name__)

RESERVED_CUSTOMER_COLUMNS = {"customer_id", "signup_date", "cancel_date"}
# customer-initiated activity: what counts as "the customer did something"
OWN_ACTIVITY = (
    "login",
    "visit",
    "booking",
    "booking_cancelled",
    "outreach_replied",
    "service_done",
)

EMPTY_SCHEMAS = {
    "customers": "customer_id VARCHAR, signup_date TIMESTAMP, cancel_date TIMESTAMP",
    "transactions": "customer_id VARCHAR, ts TIMESTAMP, amount DOUBLE",
    "activity": "customer_id VARCHAR, ts TIMESTAMP, event_type VARCHAR",
    "feedback": "customer_id VARCHAR, ts TIMESTAMP, kind VARCHAR, score DOUBLE, text VARCHAR, "
    "ticket_id VARCHAR",
    "market": "month TIMESTAMP, region VARCHAR, industry VARCHAR, industry_index DOUBLE, "
    "competitor_launch INTEGER, policy_shock INTEGER",
}


@dataclass(frozen=True)
class FeatureConfig:
    """The `features` section of params.yaml, as typed values."""

    label_window_days: int = 90
    churn_definition: str = "cancellation"
    inactivity_days: int = 90
    windows_days: tuple[int, ...] = (30, 90, 180, 365)
    signals: dict = field(default_factory=dict)
    rfm: dict = field(default_factory=dict)
    care: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, p: dict) -> FeatureConfig:
        return cls(
            label_window_days=int(p["label_window_days"]),
            churn_definition=p["churn_definition"],
            inactivity_days=int(p["inactivity_days"]),
            windows_days=tuple(int(w) for w in p["windows_days"]),
            signals=dict(p["signals"]),
            rfm=dict(p["rfm"]),
            care=dict(p["care"]),
        )

    @property
    def label_horizon_days(self) -> int:
        """Days after a cutoff that its label reads: the row is labelled only if they are seen."""
        if self.churn_definition == "inactivity":
            return self.inactivity_days
        return self.label_window_days


def make_cutoffs(
    as_of: pd.Timestamp, first: str | None, last: str | None, step_months: int
) -> list[pd.Timestamp]:
    """Monthly cutoffs counted back from the last one (default: the day after the data end)."""
    end = pd.Timestamp(last) if last else pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
    start = pd.Timestamp(first) if first else end - pd.DateOffset(months=12)
    out, k = [], 0
    while (c := end - pd.DateOffset(months=k * step_months)) >= start:
        out.append(c)
        k += 1
    return sorted(out)


def needed_cutoffs(
    cutoffs: list[pd.Timestamp], cfg: FeatureConfig, data_end: pd.Timestamp
) -> list[pd.Timestamp]:
    """The cutoffs whose rows the stage keeps: those whose label window ends by `data_end`, and
    the newest (the scoring snapshot). The ones between get neither a label nor a use, so
    aggregating them (two of thirteen by default) would be wasted work."""
    horizon = pd.Timedelta(days=cfg.label_horizon_days)
    newest = max(cutoffs, default=None)
    return [c for c in cutoffs if c + horizon <= data_end or c == newest]


def ensure_relations(con: duckdb.DuckDBPyConnection, present: set[str]) -> None:
    """Create empty stand-ins for missing tables so that one SQL text serves every input."""
    for name, schema in EMPTY_SCHEMAS.items():
        if name not in present:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({schema})")


def _columns(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {rel}").fetchall()}


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# The relations the aggregation SQL reads. The whole-table run reads them by these names; a
# partition of customers reads views of the same names with a `part_` prefix, restricted to its
# customers (`_partition_views`), so that one SQL text serves both.
SOURCES = ("customers", "transactions", "activity", "feedback", "own_events")
# the per-source aggregates joined onto the spine (and the market when customers have geo)
AGGREGATE_TABLES = ("f_activity", "f_transactions", "f_feedback", "f_tickets", "f_text")
FULL = {name: name for name in SOURCES}
# The customer attributes ride along with the aggregates under this prefix (`aggregate_ranges`
# with `profile`), so that the SQL derivation reads one relation.
PROFILE_COLUMN = "profile:"
# The derived outputs under this prefix in the layers of the SQL derivation (`snapshot_select`)
DERIVED = "derived:"


def _spine_sql(
    cfg: FeatureConfig, cust_cols: dict[str, str], src: dict[str, str] | None = None
) -> str:
    src = src or FULL
    signup = "c.signup_date" if "signup_date" in cust_cols else "NULL::TIMESTAMP"
    cancel = "c.cancel_date" if "cancel_date" in cust_cols else "NULL::TIMESTAMP"
    n = cfg.inactivity_days
    own_events = src["own_events"]
    if cfg.churn_definition == "cancellation":
        if "cancel_date" not in cust_cols:
            raise ValueError(
                "features.churn_definition=cancellation needs customers.cancel_date; "
                "use churn_definition=inactivity for data without it"
            )
        active = f"({cancel} IS NULL OR {cancel} >= k.cutoff)"
        label = (
            f"({cancel} IS NOT NULL AND {cancel} < k.cutoff + INTERVAL {cfg.label_window_days} DAY)"
        )
    elif cfg.churn_definition == "inactivity":
        active = (
            f"EXISTS (SELECT 1 FROM {own_events} e WHERE e.customer_id = c.customer_id "
            f"AND e.ts < k.cutoff AND e.ts >= k.cutoff - INTERVAL {n} DAY)"
        )
        label = (
            f"NOT EXISTS (SELECT 1 FROM {own_events} e WHERE e.customer_id = c.customer_id "
            f"AND e.ts >= k.cutoff AND e.ts < k.cutoff + INTERVAL {n} DAY)"
        )
    else:
        raise ValueError(f"unknown features.churn_definition: {cfg.churn_definition!r}")
    horizon = cfg.label_horizon_days
    return f"""
    CREATE OR REPLACE TEMP TABLE spine AS
    SELECT c.customer_id, k.cutoff,
           coalesce({signup}, f.first_ts) AS start_ts,
           CASE WHEN k.cutoff + INTERVAL {horizon} DAY <= (SELECT data_end FROM meta)
                THEN ({label})::INTEGER END AS label,
           (row_number() OVER ())::INTEGER AS sid  -- the key of every aggregate
    FROM {src["customers"]} c
    LEFT JOIN first_seen f USING (customer_id)
    CROSS JOIN cutoffs k
    WHERE coalesce({signup}, f.first_ts) < k.cutoff AND {active}
    """


def _first_seen_sql(cust_cols: dict[str, str], src: dict[str, str] | None = None) -> str:
    """First event of each customer: the start of the customer when signup_date is missing.

    Only customers without a signup date need it, so only their events are read.
    """
    src = src or FULL
    who = (
        f"WHERE customer_id IN (SELECT customer_id FROM {src['customers']} "
        "WHERE signup_date IS NULL)"
        if "signup_date" in cust_cols
        else ""
    )
    return f"""
    CREATE OR REPLACE TEMP TABLE first_seen AS
    SELECT customer_id, min(ts) AS first_ts FROM (
        SELECT customer_id, ts FROM {src["activity"]} {who}
        UNION ALL SELECT customer_id, ts FROM {src["transactions"]} {who}
    ) GROUP BY customer_id
    """


# The activity outputs, as sets of event types: each word of ACTIVITY_WORDS counts its own type
# (`other`: any type not in ACTIVITY_TYPES; events without a type count nowhere), and the latest
# times are kept per group of types.
LATEST_GROUPS = {
    "last_own_activity": OWN_ACTIVITY,
    "last_lvb": ("login", "visit", "booking"),
    "last_service_due": ("service_due",),
    "last_service_done": ("service_done",),
}


def _activity_outputs(windows: tuple[int, ...], lookback: int, count, latest) -> list[str]:
    """The columns of f_activity, in order, from `count(types, span, minus=None)` (events of
    those types in the `span` days before the cutoff, less those in the `minus` days) and
    `latest(column)` (the latest time of the types `LATEST_GROUPS[column]` within `lookback`)."""
    out = [f"{count([e], w)} AS {e}_{w}d" for w in windows for e in ACTIVITY_WORDS]
    lv, sent, replied = ["login", "visit"], ["outreach_sent"], ["outreach_replied"]
    return [
        *out,
        f"{latest('last_own_activity')} AS last_own_activity",
        f"{latest('last_lvb')} AS last_lvb",
        f"{count(lv, 30)} AS lv_30d",
        f"{count(lv, 120, 30)} AS lv_prior90",
        f"{count(sent, 90)} AS sent_90d",
        f"{count(replied, 90)} AS replied_90d",
        f"{count(sent, lookback, 90)} AS sent_before",
        f"{count(replied, lookback, 90)} AS replied_before",
        f"{latest('last_service_due')} AS last_service_due",
        f"{latest('last_service_done')} AS last_service_done",
    ]


def activity_reference_sql(
    windows: tuple[int, ...], lookback: int, src: dict[str, str] | None = None
) -> str:
    """The definition of f_activity: a row per spine row (`sid`) with an event in the `lookback`
    days before its cutoff, and per output one filter over those events. Plain but slow (a
    filter per output and event): the stage runs `_activity_sql`, the tests prove them equal."""
    src = src or FULL
    known = ", ".join(_q(t) for t in ACTIVITY_TYPES)

    def is_type(types) -> str:
        conds = [
            f"a.event_type NOT IN ({known})" if t == "other" else f"a.event_type = {_q(t)}"
            for t in types
        ]
        return "(" + " OR ".join(conds) + ")"

    def count(types: list[str], span: int, minus: int | None = None) -> str:
        cond = f"{is_type(types)} AND a.ts >= s.cutoff - INTERVAL {span} DAY"
        if minus is not None:
            cond += f" AND a.ts < s.cutoff - INTERVAL {minus} DAY"
        return f"count(*) FILTER (WHERE {cond})"

    def latest(column: str) -> str:
        return f"max(a.ts) FILTER (WHERE {is_type(LATEST_GROUPS[column])})"

    outputs = _activity_outputs(windows, lookback, count, latest)
    return f"""
    CREATE OR REPLACE TEMP TABLE f_activity AS
    SELECT s.sid, {", ".join(outputs)}
    FROM spine s JOIN {src["activity"]} a
      ON a.customer_id = s.customer_id AND a.ts < s.cutoff
     AND a.ts >= s.cutoff - INTERVAL {lookback} DAY
    GROUP BY s.sid
    """


def _activity_sql(
    windows: tuple[int, ...], lookback: int, src: dict[str, str] | None = None
) -> str:
    """f_activity exactly as `activity_reference_sql` defines it, about 5x faster.

    Two steps: per (spine row, event type) one count per distinct span (plus the whole
    lookback and the latest time), then one row per spine row that picks and sums those, e.g.
    the 120-day minus the 30-day count is "between 30 and 120 days before". A handful of counts
    per event instead of a filter per output, and small integer keys (spine row, type code)
    instead of strings: hashing and comparing those dominates both steps. The second step
    picks a type's count with max() over the one row it has per spine row: DuckDB sums
    integers into 128 bits, which made the pick about 15% slower.
    """
    src = src or FULL
    spans = sorted({*windows, 30, 90, 120} - {lookback})  # the lookback: every joined event
    per_type = ", ".join(
        [f"count(*) FILTER (WHERE a.ts >= s.from{w})::INTEGER AS n{w}" for w in spans]
        + ["count(*)::INTEGER AS n_all", "max(a.ts) AS last_ts"]
    )
    codes = {t: k for k, t in enumerate(ACTIVITY_TYPES)}
    other = len(codes)  # any other type; NULL gets -1 and counts nowhere
    code = " ".join(f"WHEN event_type = {_q(t)} THEN {k}" for t, k in codes.items())

    def is_type(types) -> str:
        return f"t IN ({', '.join(str(codes.get(t, other)) for t in types)})"

    def count(types: list[str], span: int, minus: int | None = None) -> str:
        n = "n_all" if span == lookback else f"n{span}"
        if minus is not None:
            n += f" - n{minus}"
        # a CASE per type, not a FILTER: DuckDB aggregates plain columns much faster
        picks = [f"coalesce(max(CASE WHEN {is_type([t])} THEN {n} END), 0)" for t in types]
        return f"({' + '.join(picks)})::BIGINT"

    def latest(column: str) -> str:
        return f"max(CASE WHEN {is_type(LATEST_GROUPS[column])} THEN last_ts END)"

    outputs = _activity_outputs(windows, lookback, count, latest)
    return f"""
    CREATE OR REPLACE TEMP TABLE f_activity AS
    SELECT sid, {", ".join(outputs)}
    FROM (
        SELECT s.sid, a.t, {per_type}
        FROM {_window_starts((*spans, lookback))} s JOIN (
            -- the type code once per event, not once per (event, cutoff) the join pairs up
            SELECT customer_id, ts,
                   (CASE WHEN event_type IS NULL THEN -1 {code} ELSE {other} END)::TINYINT AS t
            FROM {src["activity"]}
        ) a ON a.customer_id = s.customer_id AND a.ts < s.cutoff AND a.ts >= s.from{lookback}
        GROUP BY s.sid, a.t
    )
    GROUP BY sid
    """


def _window_starts(days: tuple[int, ...]) -> str:
    """The spine with `from<n>` = cutoff - n days: computed once per row, not once per event."""
    starts = ", ".join(f"cutoff - INTERVAL {d} DAY AS from{d}" for d in sorted(set(days)))
    return f"(SELECT sid, customer_id, cutoff, {starts} FROM spine)"


def _transactions_sql(
    windows: tuple[int, ...], has_category: bool, src: dict[str, str] | None = None
) -> str:
    src = src or FULL
    aggs = []
    for w in windows:
        aggs.append(f"count(*) FILTER (WHERE t.ts >= s.from{w}) AS purchases_{w}d")
        aggs.append(f"coalesce(sum(t.amount) FILTER (WHERE t.ts >= s.from{w}), 0) AS spend_{w}d")
    aggs += [
        "count(*) FILTER (WHERE t.ts >= s.from365) AS n_tx_365d",
        "coalesce(sum(t.amount) FILTER (WHERE t.ts >= s.from365), 0) AS amt_365d",
        "coalesce(sum(t.amount) FILTER (WHERE t.ts >= s.from90), 0) AS amt_90d",
        "max(t.ts) AS last_tx",
        "min(t.ts) AS first_tx",
        "count(*) AS n_tx_all",
        (
            "count(*) FILTER (WHERE t.category = 'promo' AND t.ts >= s.from365)"
            if has_category
            else "NULL::BIGINT"
        )
        + " AS promo_365d",
    ]
    return f"""
    CREATE OR REPLACE TEMP TABLE f_transactions AS
    SELECT s.sid, {", ".join(aggs)}
    FROM {_window_starts((*windows, 90, 365))} s JOIN {src["transactions"]} t
      ON t.customer_id = s.customer_id AND t.ts < s.cutoff
    GROUP BY s.sid
    """


def text_patterns(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    """One RE2 pattern per lexicon category (`vague`, `competitor`) from the table `lexicon`,
    None for a category without phrases.

    A message counts for a category when one of its phrases occurs in the lower-cased text:
    as whole words for phrases in printable ASCII ('rival' not inside 'arrival'), anywhere for
    the others (Chinese has no spaces). One pattern per category is one linear scan of each
    text, where a join of texts with phrases tested every pair (3x slower at 1M customers).
    """
    rows = con.execute("""
        SELECT category, regexp_escape(lower(phrase)), regexp_matches(phrase, '^[ -~]+$')
        FROM lexicon WHERE phrase IS NOT NULL ORDER BY category, phrase
    """).fetchall()
    out = {}
    for category in ("vague", "competitor"):
        words = [e for c, e, ascii_ in rows if c == category and ascii_]
        anywhere = [e for c, e, ascii_ in rows if c == category and not ascii_]
        parts = ([f"\\b(?:{'|'.join(words)})\\b"] if words else []) + (
            [f"(?:{'|'.join(anywhere)})"] if anywhere else []
        )
        out[category] = "|".join(parts) or None
    return out


def _feedback_sql(patterns: dict[str, str | None], src: dict[str, str] | None = None) -> str:
    feedback = (src or FULL)["feedback"]

    def hit(category: str) -> str:
        pattern = patterns.get(category)
        return f"regexp_matches(t, {_q(pattern)})::INTEGER" if pattern else "0"

    return f"""
CREATE OR REPLACE TEMP TABLE f_feedback AS
SELECT s.sid,
  max_by(f.score, f.ts, 2) FILTER (WHERE f.kind = 'nps' AND f.score IS NOT NULL) AS nps_two,
  max(f.ts) FILTER (WHERE f.kind = 'nps' AND f.score IS NOT NULL) AS last_nps_ts,
  max_by(f.score, f.ts) FILTER (WHERE f.kind = 'csat' AND f.score IS NOT NULL) AS csat_last,
  avg(f.score) FILTER (WHERE f.kind = 'csat' AND f.ts >= s.from365)
    AS csat_mean_365d,
  max(f.ts) FILTER (WHERE f.kind = 'csat' AND f.score IS NOT NULL) AS last_csat_ts,
  count(*) FILTER (WHERE f.kind = 'complaint_opened' AND f.ts >= s.from365)
    AS complaints_365d,
  count(*) FILTER (WHERE f.kind = 'message' AND f.ts >= s.from90) AS messages_90d,
  max(f.ts) FILTER (WHERE f.kind = 'message') AS last_message
FROM {_window_starts((90, 365))} s JOIN {feedback} f
  ON f.customer_id = s.customer_id AND f.ts < s.cutoff
GROUP BY s.sid;

CREATE OR REPLACE TEMP TABLE tickets AS
SELECT customer_id, ticket_id,
       min(ts) FILTER (WHERE kind = 'complaint_opened') AS opened,
       min(ts) FILTER (WHERE kind = 'complaint_resolved') AS resolved
FROM {feedback} WHERE ticket_id IS NOT NULL AND kind IN ('complaint_opened', 'complaint_resolved')
GROUP BY customer_id, ticket_id;

CREATE OR REPLACE TEMP TABLE f_tickets AS
SELECT s.sid,
  count(*) FILTER (WHERE t.resolved IS NULL OR t.resolved >= s.cutoff) AS complaints_open,
  max(date_diff('second', t.opened, s.cutoff) / 86400.0)
    FILTER (WHERE t.resolved IS NULL OR t.resolved >= s.cutoff) AS oldest_open_complaint_days,
  max(t.resolved) FILTER (WHERE t.resolved < s.cutoff) AS last_resolved
FROM spine s JOIN tickets t ON t.customer_id = s.customer_id AND t.opened < s.cutoff
GROUP BY s.sid;

-- one regular expression per lexicon category, compiled once (see text_patterns)
CREATE OR REPLACE TEMP TABLE text_hits AS
SELECT customer_id, ts, vague, competitor FROM (
  SELECT customer_id, ts, {hit("vague")} AS vague, {hit("competitor")} AS competitor
  FROM (SELECT customer_id, ts, lower(text) AS t FROM {feedback}
        WHERE text IS NOT NULL AND kind IN ('message', 'complaint_opened'))
) WHERE vague + competitor > 0;

CREATE OR REPLACE TEMP TABLE f_text AS
SELECT s.sid,
  sum(h.vague) AS vague_replies_90d, sum(h.competitor) AS competitor_mentions_90d
FROM spine s JOIN text_hits h ON h.customer_id = s.customer_id
 AND h.ts < s.cutoff AND h.ts >= s.cutoff - INTERVAL 90 DAY
GROUP BY s.sid;
"""


MARKET_SQL = """
CREATE OR REPLACE TEMP TABLE market_pit AS
SELECT m.region, m.industry, k.cutoff,
  max_by(m.industry_index, m.month) AS idx_now,
  max_by(m.industry_index, m.month)
    FILTER (WHERE m.month + INTERVAL 1 MONTH <= k.cutoff - INTERVAL 3 MONTH) AS idx_3m,
  max_by(m.industry_index, m.month)
    FILTER (WHERE m.month + INTERVAL 1 MONTH <= k.cutoff - INTERVAL 6 MONTH) AS idx_6m,
  coalesce(max(m.competitor_launch)
    FILTER (WHERE m.month + INTERVAL 1 MONTH > k.cutoff - INTERVAL 90 DAY), 0)
    AS competitor_launch_90d,
  coalesce(max(m.policy_shock)
    FILTER (WHERE m.month + INTERVAL 1 MONTH > k.cutoff - INTERVAL 180 DAY), 0) AS policy_shock_180d
FROM market m CROSS JOIN cutoffs k
WHERE m.month + INTERVAL 1 MONTH <= k.cutoff
GROUP BY m.region, m.industry, k.cutoff;
"""


# The external columns: the customer's market (region, industry) at the spine row's cutoff,
# read from `market_pit` (alias m) in the join that also brings the profile (alias p)
EXTERNAL_COLUMNS = (
    "m.idx_now / m.idx_3m - 1 AS industry_index_change_3m",
    "m.idx_now / m.idx_6m - 1 AS industry_index_change_6m",
    "m.competitor_launch_90d",
    "m.policy_shock_180d",
)


def _prepare(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    cutoffs: list[pd.Timestamp],
    data_end: pd.Timestamp,
    lexicon: pd.DataFrame,
) -> bool:
    """Tables every partition shares: cutoffs, data end, lexicon, market; True if geo is known."""
    ensure_relations(con, present)
    con.execute("CREATE OR REPLACE TEMP TABLE cutoffs (cutoff TIMESTAMP)")
    con.executemany("INSERT INTO cutoffs VALUES (?)", [[c.to_pydatetime()] for c in cutoffs])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE meta AS SELECT ?::TIMESTAMP AS data_end",
        [data_end.to_pydatetime()],
    )
    con.register("lexicon_df", lexicon)
    con.execute("CREATE OR REPLACE TEMP TABLE lexicon AS SELECT * FROM lexicon_df")
    has_geo = {"region", "industry"} <= set(_columns(con, "customers"))
    if has_geo:
        con.execute(MARKET_SQL)
    return has_geo


def _aggregate(
    con: duckdb.DuckDBPyConnection,
    cfg: FeatureConfig,
    has_geo: bool,
    src: dict[str, str],
    profile: tuple[str, ...] = (),
) -> str:
    """Build the per-source aggregate tables; return the SELECT that joins them onto the spine,
    with the customer columns `profile` as `profile:<name>`."""
    own = ", ".join(_q(t) for t in OWN_ACTIVITY)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {src["own_events"]} AS
        SELECT customer_id, ts FROM {src["activity"]} WHERE event_type IN ({own})
        UNION ALL SELECT customer_id, ts FROM {src["transactions"]}
    """)
    cust_cols = _columns(con, src["customers"])
    con.execute(_first_seen_sql(cust_cols, src))
    con.execute(_spine_sql(cfg, cust_cols, src))
    lookback = max(max(cfg.windows_days), 365)
    con.execute(_activity_sql(cfg.windows_days, lookback, src))
    tx_cols = _columns(con, src["transactions"])
    con.execute(_transactions_sql(cfg.windows_days, "category" in tx_cols, src))
    con.execute(_feedback_sql(text_patterns(con), src))
    # every aggregate is keyed by the spine's row number: one integer, cheap to join on
    columns = [f"{t}.* EXCLUDE (sid)" for t in ("s", *AGGREGATE_TABLES)]
    tables = " ".join(f"LEFT JOIN {t} USING (sid)" for t in AGGREGATE_TABLES)
    if has_geo:
        columns += EXTERNAL_COLUMNS
    columns += [f"p.{_ident(c)} AS {_ident(PROFILE_COLUMN + c)}" for c in profile]
    if profile or has_geo:
        tables += f" LEFT JOIN {src['customers']} p ON p.customer_id = s.customer_id"
    if has_geo:
        tables += (
            " LEFT JOIN market_pit m ON m.region = p.region AND m.industry = p.industry"
            " AND m.cutoff = s.cutoff"
        )
    return f"SELECT {', '.join(columns)} FROM spine s {tables}"


def compute_aggregates(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    cutoffs: list[pd.Timestamp],
    data_end: pd.Timestamp,
    cfg: FeatureConfig,
    lexicon: pd.DataFrame,
) -> pd.DataFrame:
    """Run the windowed aggregations; one row per (customer, cutoff) active at that cutoff,
    in (customer_id, cutoff) order, typed as `aggregate_frame` types them.

    `data_end` is the exclusive end of the data (the day after as_of): labels whose window
    runs past it stay empty. Everything is held in memory at once: `aggregate_ranges` runs the
    same SQL a range of customers at a time.
    """
    has_geo = _prepare(con, present, cutoffs, data_end, lexicon)
    return aggregate_frame(con, _aggregate(con, cfg, has_geo, FULL))


def _partition_bounds(con: duckdb.DuckDBPyConnection, partitions: int) -> list[str]:
    """Customer ids that split the customers into `partitions` ranges of about equal size."""
    if partitions <= 1:
        return []
    rows = con.execute(f"""
        SELECT min(customer_id) FROM (
            SELECT customer_id, ntile({int(partitions)}) OVER (ORDER BY customer_id) AS part
            FROM customers WHERE customer_id IS NOT NULL
        ) GROUP BY part ORDER BY 1
    """).fetchall()
    return [r[0] for r in rows[1:]]


def _partition_views(
    con: duckdb.DuckDBPyConnection,
    lo: str | None,
    hi: str | None,
    materialize: bool = True,
    ids: str | None = None,
) -> dict:
    """The source tables restricted to customer ids in [lo, hi) (None: unbounded), and to the
    customer ids in the table `ids` if given.

    A range, not a hash: on files clustered by customer the scan skips whole row groups. With
    `materialize` the event rows are copied into temporary tables once: each is read by several
    statements, and DuckDB scans its own tables in parallel in small row groups, where a
    Parquet row group (often a million rows) goes to one thread.
    """
    conds = ["customer_id IS NOT NULL"]
    if lo is not None:
        conds.append(f"customer_id >= {_q(lo)}")
    if hi is not None:
        conds.append(f"customer_id < {_q(hi)}")
    if ids is not None:
        conds.append(f"customer_id IN (SELECT customer_id FROM {ids})")
    where = " AND ".join(conds)
    src = {"own_events": "part_own_events"}
    for name in ("customers", "transactions", "activity", "feedback"):
        src[name] = f"part_{name}"
        kind = "TABLE" if materialize and name != "customers" else "VIEW"
        con.execute(
            f"CREATE OR REPLACE TEMP {kind} part_{name} AS SELECT * FROM {name} WHERE {where}"
        )
    return src


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


def aggregate_types(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
    """Column name -> DuckDB type of the aggregates of `sql` (a range's SELECT), not the
    profile columns riding along."""
    rel = con.sql(sql)
    return {
        c: str(t)
        for c, t in zip(rel.columns, rel.types, strict=True)
        if not c.startswith(PROFILE_COLUMN)
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


def aggregate_batches(
    con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int = 100_000
) -> Iterator[pd.DataFrame]:
    """`aggregate_frame(con, sql)` in batches of about `batch_rows` rows; at least one."""
    types = aggregate_types(con, sql)
    cols = ", ".join(f"a.{_ident(c)}" for c in types)
    res = con.execute(f"SELECT {cols} FROM ({sql}) a ORDER BY a.customer_id, a.cutoff")
    vectors = max(1, batch_rows // 2048)  # DuckDB hands out rows 2048 at a time
    first = True
    while len(batch := res.fetch_df_chunk(vectors)) or first:
        first = False
        yield _static_dtypes(batch, types)


def _static_dtypes(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    for col in frame.columns:
        dtype = frame[col].dtype
        if isinstance(dtype, np.dtype) and dtype.name in _NULLABLE:
            frame[col] = frame[col].astype(_NULLABLE[dtype.name])
        elif types.get(col) == "VARCHAR" and pd.api.types.is_object_dtype(dtype):
            frame[col] = frame[col].astype("str")
    return frame


def aggregate_ranges(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    cutoffs: list[pd.Timestamp],
    data_end: pd.Timestamp,
    cfg: FeatureConfig,
    lexicon: pd.DataFrame,
    partitions: int = 1,
    profile: tuple[str, ...] = (),
    sample: int = 0,
) -> Iterator[tuple[str, str]]:
    """Run the aggregations of `compute_aggregates` one range of customers at a time
    (`partitions` ranges, in customer_id order) and yield, for each, ("range", the SELECT of
    its rows): valid until the next item is asked for, and read by the caller in between
    (derived and written). The customer columns `profile` ride along as `profile:<name>`.

    With `sample`, the first item is ("sample", the SELECT of the rows of that many customers
    picked pseudo-randomly from all ranges): what a derivation is checked on before any range.

    Every row depends on its own customer only, so the ranges together give exactly the
    whole-table result, in its (customer_id, cutoff) order when each is read sorted, while
    each statement works on 1/partitions of the customers. Nothing is stored in between:
    keeping a million customers' aggregates for a second pass cost more than deriving and
    writing them.
    """
    has_geo = _prepare(con, present, cutoffs, data_end, lexicon)
    bounds = range_bounds(con, partitions)
    try:
        if sample > 0:
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE sample_ids AS SELECT customer_id FROM customers
                WHERE customer_id IS NOT NULL
                ORDER BY hash(customer_id), customer_id LIMIT {int(sample)}
            """)
            src = _partition_views(con, None, None, ids="sample_ids")
            yield "sample", _aggregate(con, cfg, has_geo, src, profile)
        for i, (lo, hi) in enumerate(bounds):
            t0 = time.perf_counter()
            src = _partition_views(con, lo, hi) if len(bounds) > 1 else FULL
            yield "range", _aggregate(con, cfg, has_geo, src, profile)
            log.debug("range %d/%d in %.1f s", i + 1, len(bounds), time.perf_counter() - t0)
    finally:
        scratch = ("spine", "first_seen", "tickets", "text_hits", "agg_sample")
        parts = tuple(f"part_{t}" for t in ("transactions", "activity", "feedback"))
        temporary = "SELECT table_name FROM duckdb_tables() WHERE temporary"
        tables = {name for (name,) in con.execute(temporary).fetchall()}
        for name in (*AGGREGATE_TABLES, *scratch, *parts, "sample_ids"):
            if name in tables:  # the part_ relations are views when not materialized
                con.execute(f"DROP TABLE {name}")


def range_bounds(
    con: duckdb.DuckDBPyConnection, partitions: int
) -> list[tuple[str | None, str | None]]:
    """The customer id ranges [lo, hi) of `partitions` ranges of about equal size, in order
    (None: unbounded)."""
    return list(itertools.pairwise([None, *_partition_bounds(con, partitions), None]))


def snapshot_tables(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    cutoffs: list[pd.Timestamp],
    data_end: pd.Timestamp,
    cfg: FeatureConfig,
    lexicon: pd.DataFrame,
    partitions: int,
    profile: tuple[str, ...],
    select: str,
    schema: pa.Schema,
    workers: int = 1,
) -> Iterator[pa.Table]:
    """Every customer range's feature rows (`snapshot_table` of `aggregate_ranges`' ranges),
    in range order.

    With `workers` > 1, that many ranges are aggregated and derived at once, each on a cursor
    of its own (its own temporary tables) with DuckDB on one thread. A range's statements have
    serial stretches and its hash tables cost merging across threads; ranges share nothing,
    so two of them side by side kept two cores busier, for less CPU, than one range on both
    (the stage at 1M customers and 47.5M events: 46 -> 36 s, 80 -> 69 CPU seconds). At most
    `workers` ranges are in work while the caller holds the last one handed out. The
    database's threads are shared out: each worker's own thread plus `threads - workers`
    helpers, as many as before in all.
    """
    bounds = range_bounds(con, partitions) if workers > 1 else []
    if len(bounds) <= 1:
        args = (con, present, cutoffs, data_end, cfg, lexicon, partitions, profile)
        ranges = aggregate_ranges(*args)
        try:
            for _, sql in ranges:
                yield snapshot_table(con, select, sql, schema)
        finally:
            ranges.close()
        return

    local = threading.local()
    cursors: list[duckdb.DuckDBPyConnection] = []
    lock, stop = threading.Lock(), threading.Event()

    def derive(lo: str | None, hi: str | None) -> pa.Table | None:
        with lock:
            if stop.is_set():  # the run failed or was abandoned: leave the range alone
                return None
            if not hasattr(local, "cursor"):
                local.cursor = con.cursor()
                cursors.append(local.cursor)
        if not hasattr(local, "has_geo"):
            local.has_geo = _prepare(local.cursor, present, cutoffs, data_end, lexicon)
        src = _partition_views(local.cursor, lo, hi)
        sql = _aggregate(local.cursor, cfg, local.has_geo, src, profile)
        return None if stop.is_set() else snapshot_table(local.cursor, select, sql, schema)

    (threads,) = con.execute("SELECT current_setting('threads')").fetchone()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="churnlight-range")
    pending: deque = deque()
    try:
        # for the whole database: every cursor's queries run on their own thread and share
        # the rest
        con.execute(f"SET threads = {max(1, int(threads) - workers + 1)}")
        todo = iter(bounds)
        pending.extend(pool.submit(derive, lo, hi) for lo, hi in itertools.islice(todo, workers))
        while pending:
            table = pending.popleft().result()
            assert table is not None  # only a stopped run's ranges give none
            if (bound := next(todo, None)) is not None:
                pending.append(pool.submit(derive, *bound))
            yield table
    finally:
        try:
            with lock:
                stop.set()
                for cursor in cursors:
                    cursor.interrupt()  # the statement running now; the next ones see `stop`
            pool.shutdown(wait=True, cancel_futures=True)
            for cursor in cursors:
                cursor.close()  # and with it its temporary tables
        finally:
            con.execute(f"SET threads = {int(threads)}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
                (spend >= care["active_spend"])
                & (per_month >= care["active_interactions_per_month"]),
            ],
            ["dormant", "core", "active"],
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


def _num(x: float) -> str:
    """A float constant exactly as Python holds it (a bare literal would be parsed as DECIMAL)."""
    return f"'{float(x)!r}'::DOUBLE"


def _days_sql(later: str, earlier: str) -> str:
    """`_days`: pandas' total_seconds is whole seconds plus the remainder over 1e6, then days."""
    d = f"(epoch_us({later}) - epoch_us({earlier}))"
    rem = f"((({d} % 1000000) + 1000000) % 1000000)"
    return f"((({d} - {rem}) // 1000000)::DOUBLE + {rem} / {_num(1e6)}) / {_num(86400)}"


def _min_skipna(*exprs: str) -> str:
    """pandas' row-wise min/max skip NaN, as DuckDB's least/greatest skip NULL."""
    return f"least({', '.join(exprs)})"


def derived_sql(
    agg_types: dict[str, str],
    cfg: FeatureConfig,
    windows_present: dict[str, bool],
    profile: dict[str, bool],
) -> list[tuple[str, str]]:
    """(name, SQL expression) of every column of derive_features + add_profile + three_colour,
    in their order, over `agg` (alias a), with the profile columns `aggregate_ranges` adds.
    An expression reads earlier outputs as `_derived_ref(name)`: `snapshot_select` nests them."""
    a = {c: f"a.{_ident(c)}" for c in agg_types}
    count_cols = _zero_filled(list(agg_types))
    for c in count_cols:
        if c in a:
            a[c] = f"coalesce({a[c]}, 0)"
    cut = a["cutoff"]
    out: dict[str, str] = {"customer_id": a["customer_id"], "cutoff": cut, "label": a["label"]}
    out["tenure_days"] = _days_sql(cut, a["start_ts"])
    rfm, care, sig = cfg.rfm, cfg.care, cfg.signals

    def col(name: str) -> str:  # an earlier output, computed once (see `snapshot_select`)
        if name not in out:
            raise KeyError(name)
        return _derived_ref(name)

    def ratio(num: str, den: str) -> str:  # num / den.where(den > 0)
        return f"CASE WHEN {den} > 0 THEN {num} / {den} END"

    if windows_present.get("activity"):
        for w in cfg.windows_days:
            for etype in ACTIVITY_WORDS:
                out[f"{etype}_{w}d"] = a[f"{etype}_{w}d"]
        lookback = _num(max(max(cfg.windows_days), 365))
        tenure = col("tenure_days")
        # np.minimum keeps NaN where least() would skip NULL
        capped = f"CASE WHEN {tenure} IS NOT NULL THEN least({tenure}, {lookback}) END"
        out["activity_recency_days"] = f"coalesce({_days_sql(cut, a['last_lvb'])}, {capped})"
        base = f"({a['lv_prior90']} / {_num(3)})"
        out["activity_30d_vs_baseline"] = ratio(a["lv_30d"], base)
        out["reply_rate_90d"] = ratio(a["replied_90d"], a["sent_90d"])
        out["reply_rate_before"] = ratio(a["replied_before"], a["sent_before"])
        out["reply_rate_change"] = f"{col('reply_rate_90d')} - {col('reply_rate_before')}"
        due, done = a["last_service_due"], a["last_service_done"]
        overdue = f"{due} IS NOT NULL AND ({done} IS NULL OR {done} < {due})"
        out["service_overdue_days"] = (
            f"CASE WHEN {overdue} THEN {_days_sql(cut, due)} ELSE {_num(0)} END"
        )
    if windows_present.get("transactions"):
        for w in cfg.windows_days:
            out[f"purchases_{w}d"] = a[f"purchases_{w}d"]
            out[f"spend_{w}d"] = a[f"spend_{w}d"]
        recency = f"({_days_sql(cut, a['last_tx'])})"
        out["recency_days"] = f"coalesce({recency}, {col('tenure_days')})"
        out["frequency_per_year"] = a["n_tx_365d"]
        out["monetary_per_year"] = a["amt_365d"]
        out["months_without_purchase"] = f"floor({col('recency_days')} / {_num(30.44)})"
        span = _days_sql(a["last_tx"], a["first_tx"])
        gap = f"({span} / CASE WHEN {a['n_tx_all']} > 1 THEN {a['n_tx_all']} - 1 END)"
        out["mean_gap_days"] = gap
        out["gap_ratio"] = ratio(recency, gap)
        earlier_q = f"(({a['amt_365d']} - {a['amt_90d']}) / {_num(3)})"
        out["spend_90d_vs_baseline"] = ratio(a["amt_90d"], earlier_q)
        out["promo_share_365d"] = ratio(a["promo_365d"], a["n_tx_365d"])

        def score(value: str, cuts: list, higher: bool) -> str:
            op = ">=" if higher else "<="
            hits = " + ".join(f"coalesce(({value} {op} {_num(c)})::BIGINT, 0)" for c in cuts)
            return f"(1 + {hits})"

        out["r_score"] = score(col("recency_days"), rfm["recency_days"], False)
        out["f_score"] = score(col("frequency_per_year"), rfm["frequency_per_year"], True)
        out["m_score"] = score(col("monetary_per_year"), rfm["monetary_per_year"], True)
        out["rfm_sum"] = f"{col('r_score')} + {col('f_score')} + {col('m_score')}"
        t, s = rfm["tiers"], col("rfm_sum")
        out["value_tier"] = (
            f"CASE WHEN {s} >= {t['platinum']} THEN 'platinum' WHEN {s} >= {t['gold']} "
            f"THEN 'gold' WHEN {s} >= {t['silver']} THEN 'silver' ELSE 'regular' END"
        )
    if windows_present.get("feedback"):
        last, prev = f"{a['nps_two']}[1]", f"{a['nps_two']}[2]"
        out["nps_last"] = last
        out["nps_change"] = f"{last} - {prev}"
        detractor = _num(sig["nps_detractor_max"])
        out["nps_detractor"] = f"coalesce(({col('nps_last')} <= {detractor})::BIGINT, 0)"
        out["days_since_nps"] = _days_sql(cut, a["last_nps_ts"])
        out["nps_missing"] = f"({col('nps_last')} IS NULL)::BIGINT"
        out["csat_last"] = a["csat_last"]
        out["csat_mean_365d"] = a["csat_mean_365d"]
        out["days_since_csat"] = _days_sql(cut, a["last_csat_ts"])
        out["csat_missing"] = f"({col('csat_last')} IS NULL)::BIGINT"
        out["complaints_365d"] = a["complaints_365d"]
        out["complaints_open"] = a["complaints_open"]
        out["oldest_open_complaint_days"] = (
            f"coalesce({a['oldest_open_complaint_days']}, {_num(0)})"
        )
        own = [a[c] for c in ("last_own_activity", "last_tx", "last_message") if c in a]
        last_own = f"greatest({', '.join(own)})"
        resolved = a["last_resolved"]
        silent = f"{resolved} IS NOT NULL AND ({last_own} IS NULL OR {last_own} <= {resolved})"
        out["silent_days_after_complaint"] = (
            f"CASE WHEN {silent} THEN {_days_sql(cut, resolved)} ELSE {_num(0)} END"
        )
        out["messages_90d"] = a["messages_90d"]
        out["vague_replies_90d"] = a["vague_replies_90d"]
        out["competitor_mentions_90d"] = a["competitor_mentions_90d"]
    if "industry_index_change_3m" in a and windows_present.get("market"):
        for c in ("industry_index_change_3m", "industry_index_change_6m"):
            out[c] = a[c]
        for c in ("competitor_launch_90d", "policy_shock_180d"):
            out[c] = f"coalesce({a[c]}, 0)"
    if windows_present.get("transactions") or windows_present.get("activity"):
        spend = col("monetary_per_year") if "monetary_per_year" in out else _num(0)
        own_cols = [f"{e}_365d" for e in OWN_ACTIVITY if e in ACTIVITY_WORDS]
        own_365 = " + ".join(["0", *(col(c) for c in own_cols if c in out)])
        freq = col("frequency_per_year") if "frequency_per_year" in out else "0"
        per_month = f"(({own_365}) + {freq}) / {_num(12)}"
        seen = [col(c) for c in ("recency_days", "activity_recency_days") if c in out]
        last_seen = _min_skipna(*seen)
        out["care_layer"] = (
            f"CASE WHEN {last_seen} >= {_num(care['dormant_days'])} THEN 'dormant' "
            f"WHEN {spend} >= {_num(care['core_spend'])} "
            f"AND {per_month} >= {_num(care['core_interactions_per_month'])} THEN 'core' "
            f"ELSE 'active' END"
        )
    for c, numeric in profile.items():
        value = f"a.{_ident(PROFILE_COLUMN + c)}"
        out[c] = f"{value}::DOUBLE" if numeric else f"{value}::VARCHAR"
    out.update(_rules_sql(set(out), cfg.signals))
    return list(out.items())


def _rules_sql(names: set[str], s: dict) -> dict[str, str]:
    """`three_colour` (with `rule_signals`) over the derived outputs `names`."""

    def le(name: str, x: str) -> str:
        return f"{_derived_ref(name)} <= {x}" if name in names else "NULL"

    def ge(name: str, x: str) -> str:
        return f"{_derived_ref(name)} >= {x}" if name in names else "NULL"

    def gt(name: str, x: str) -> str:
        return f"{_derived_ref(name)} > {x}" if name in names else "NULL"

    drop = _num(1 - s["reply_rate_drop"])
    reply = (
        f"{_derived_ref('reply_rate_90d')} <= {drop} * {_derived_ref('reply_rate_before')}"
        if "reply_rate_90d" in names and "reply_rate_before" in names
        else "NULL"
    )
    families = {
        "behaviour": [
            le("activity_30d_vs_baseline", _num(1 - s["activity_drop"])),
            ge("months_without_purchase", _num(s["months_without_purchase"])),
            gt("gap_ratio", _num(s["gap_ratio"])),
            reply,
            ge("booking_cancelled_90d", _num(s["booking_cancellations"])),
            ge("service_overdue_days", _num(s["service_overdue_days"])),
        ],
        "attitude": [
            ge("vague_replies_90d", _num(s["vague_replies"])),
            le("csat_last", _num(s["csat_low_max"])),
            f"coalesce({le('nps_last', _num(s['nps_detractor_max']))}, false) OR "
            f"coalesce({le('nps_change', _num(-s['nps_drop']))}, false)",
            gt("complaints_open", "0"),
            gt("silent_days_after_complaint", "0"),
            ge("competitor_mentions_90d", _num(s["competitor_mentions"])),
        ],
        "external": [
            le("industry_index_change_6m", _num(s["industry_decline_6m"])),
            gt("competitor_launch_90d", "0"),
            gt("policy_shock_180d", "0"),
        ],
    }
    n = {
        fam: " + ".join(f"coalesce(({r})::BIGINT, 0)" for r in rules)
        for fam, rules in families.items()
    }
    fams = " + ".join(f"(({n[f]}) > 0)::BIGINT" for f in families)
    spend_drop = f"coalesce({le('spend_90d_vs_baseline', _num(1 - s['spend_drop']))}, false)"
    families_hit = _derived_ref("rule_families")
    colour = (
        f"CASE WHEN {families_hit} >= 2 OR {spend_drop} THEN 'red' "
        f"WHEN {families_hit} >= 1 THEN 'yellow' ELSE 'green' END"
    )
    level = f"CASE {_derived_ref('rule_colour')} WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 ELSE 0 END"
    n_sig = " + ".join(f"({n[f]})" for f in families)
    return {
        "rule_colour": colour,
        "rule_families": fams,
        "rule_score": f"{level} + least({n_sig}, 9) / {_num(10)}",
    }


_DUCKDB_TYPES = {
    "int64": "BIGINT",
    "Int64": "BIGINT",
    "int32": "INTEGER",
    "Int32": "INTEGER",
    "int8": "TINYINT",
    "Int8": "TINYINT",
    "float64": "DOUBLE",
    "Float64": "DOUBLE",
    "bool": "BOOLEAN",
    "boolean": "BOOLEAN",
    "str": "VARCHAR",
    "string": "VARCHAR",
    "datetime64[us]": "TIMESTAMP",
}


def _derived_ref(name: str) -> str:
    """An output of `derived_sql` as later outputs read it: a column of the layer below."""
    return f"a.{_ident(DERIVED + name)}"


def _layers(cols: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The outputs grouped so that each reads only aggregates and outputs of earlier groups."""
    exprs = dict(cols)
    depth: dict[str, int] = {}

    def level(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in depth:
            if name in seen:
                raise ValueError(f"derived outputs depend on each other in a cycle: {seen}")
            deps = [d for d in exprs if d != name and _derived_ref(d) in exprs[name]]
            depth[name] = 1 + max((level(d, (*seen, name)) for d in deps), default=-1)
        return depth[name]

    layers: list[list[tuple[str, str]]] = [[] for _ in range(1 + max(map(level, exprs)))]
    for name, expr in cols:
        layers[depth[name]].append((name, expr))
    return layers


def snapshot_select(
    agg_types: dict[str, str],
    cfg: FeatureConfig,
    windows_present: dict[str, bool],
    profile: dict[str, bool],
    dtypes: pd.Series,
) -> str | None:
    """SELECT of the feature rows from the relation `agg` (alias a: a range's aggregates, see
    `snapshot_table`), typed like `dtypes` (the pandas rows'), or None if its columns are
    not exactly those.

    Nested, a layer of outputs at a time: an output that others read (recency, the rule
    counts) is computed once per row, not once per reader. Inlined, the rules alone repeated
    the signals' expressions several times over (a 57 KB SELECT).
    """
    cols = derived_sql(agg_types, cfg, windows_present, profile)
    if [name for name, _ in cols] != list(dtypes.index):
        return None
    items = []
    for name, _ in cols:
        sql_type = _DUCKDB_TYPES.get(str(dtypes[name]))
        if sql_type is None:
            return None
        items.append(f"CAST({_derived_ref(name)} AS {sql_type}) AS {_ident(name)}")
    rel = "agg a"
    for layer in _layers(cols):
        outputs = ", ".join(f"({expr}) AS {_ident(DERIVED + name)}" for name, expr in layer)
        rel = f"(SELECT a.*, {outputs} FROM {rel}) a"
    return f"SELECT {', '.join(items)} FROM {rel}"


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


def sample_aggregates(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """The rows of the sample `sql` (see `aggregate_ranges`) as `aggregate_frame` gives them;
    kept, with all columns, in the temporary table `agg_sample` (for `check_snapshot_select`)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE agg_sample AS {sql}")
    return aggregate_frame(con, "SELECT * FROM agg_sample")


def check_snapshot_select(
    con: duckdb.DuckDBPyConnection, select: str | None, sample: pd.DataFrame, scratch: Path
) -> str | None:
    """None if `select` writes exactly what pandas writes for `sample` (the rows of
    `finish_rows` for `sample_aggregates`, whose rows are in `agg_sample`) once both are read
    back, else what differs."""
    if select is None:
        return "does not give the columns or types derive_features gives"
    schema = snapshot_schema(con, select, sample)
    # the same SELECT over the sample's rows only: the name agg is the sample's in this query
    sql = f"WITH agg AS (SELECT * FROM agg_sample) {select} ORDER BY a.customer_id, a.cutoff"
    pq.write_table(con.sql(sql).to_arrow_table().cast(schema), scratch / "check_sql.parquet")
    sample.to_parquet(scratch / "check_pandas.parquet", index=False)
    want = pd.read_parquet(scratch / "check_pandas.parquet")
    got = pd.read_parquet(scratch / "check_sql.parquet")
    try:
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    except AssertionError as err:
        return f"differs from derive_features on {len(sample)} sample rows: {err}"
    return None


def snapshot_schema(con: duckdb.DuckDBPyConnection, select: str, like: pd.DataFrame) -> pa.Schema:
    """The Arrow schema of `select`'s rows with the pandas metadata of `like` (a frame with the
    same columns), so that pandas reads back the dtypes it would have written itself."""
    meta = pa.Schema.from_pandas(like.iloc[:0], preserve_index=False).metadata
    sql = f"WITH agg AS (SELECT * FROM agg_sample LIMIT 0) {select}"
    return con.sql(sql).to_arrow_table().schema.with_metadata(meta)


def snapshot_table(
    con: duckdb.DuckDBPyConnection, select: str, sql: str, schema: pa.Schema
) -> pa.Table:
    """The feature rows `select` derives from the range `sql`, typed as `schema`: a whole range
    at once (batches of it cost more to fetch). The labelled rows come first, then those
    without a label, each part in (customer_id, cutoff) order: the labelled file's rows are
    one slice of this table, not a filtered copy."""
    query = f"WITH agg AS ({sql}) {select} ORDER BY a.label IS NULL, a.customer_id, a.cutoff"
    return con.sql(query).to_arrow_table().cast(schema)
