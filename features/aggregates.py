"""The windowed aggregates of point-in-time snapshots, as SQL that DuckDB runs.

One definition of every aggregation, written over named relations (`customers`,
`transactions`, `activity`, `feedback`, `market`) on a DuckDB connection: the stage points those
names at Parquet files (so nothing is loaded into pandas), tests at small DataFrames. A spine
row is a customer active at a cutoff; every event join carries `ts < cutoff`, so a cutoff's
aggregates never see its future, and only the label reads the window after the cutoff. The
features derived from these aggregates are defined in `churnlight.features.derived`.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from churnlight.features.activity import OWN_ACTIVITY, activity_sql, window_starts
from churnlight.features.btyd import OUTPUTS as BTYD_OUTPUTS
from churnlight.features.btyd import SCORES_TABLE as BTYD_TABLE
from churnlight.features.config import FeatureConfig
from churnlight.features.sql import ident, literal

EMPTY_SCHEMAS = {
    "customers": "customer_id VARCHAR, signup_date TIMESTAMP, cancel_date TIMESTAMP",
    "transactions": "customer_id VARCHAR, ts TIMESTAMP, amount DOUBLE",
    "activity": "customer_id VARCHAR, ts TIMESTAMP, event_type VARCHAR",
    "feedback": "customer_id VARCHAR, ts TIMESTAMP, kind VARCHAR, score DOUBLE, text VARCHAR, "
    "ticket_id VARCHAR",
    "market": "month TIMESTAMP, region VARCHAR, industry VARCHAR, industry_index DOUBLE, "
    "competitor_launch INTEGER, policy_shock INTEGER",
}

# The relations the aggregation SQL reads. The whole-table run reads them by these names; a
# range of customers reads views of the same names with a `part_` prefix, restricted to its
# customers (see `churnlight.features.ranges`), so that one SQL text serves both.
SOURCES = ("customers", "transactions", "activity", "feedback", "own_events")
# the per-source aggregates joined onto the spine (and the market when customers have geo)
AGGREGATE_TABLES = ("f_activity", "f_transactions", "f_feedback", "f_tickets", "f_text")
# scratch tables of one run of `aggregate_select`, besides the aggregates
SCRATCH_TABLES = ("spine", "first_seen", "tickets", "text_hits")
FULL = {name: name for name in SOURCES}
# The customer attributes ride along with the aggregates under this prefix, so that the
# derivation reads one relation.
PROFILE_COLUMN = "profile:"


def ensure_relations(con: duckdb.DuckDBPyConnection, present: set[str]) -> None:
    """Create empty stand-ins for missing tables so that one SQL text serves every input."""
    for name, schema in EMPTY_SCHEMAS.items():
        if name not in present:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({schema})")


def relation_types(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, str]:
    """Column name -> DuckDB type of the relation `rel`."""
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {rel}").fetchall()}


def _spine_sql(cfg: FeatureConfig, cust_cols: dict[str, str], src: dict[str, str] = FULL) -> str:
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


def _first_seen_sql(cust_cols: dict[str, str], src: dict[str, str] = FULL) -> str:
    """First event of each customer: the start of the customer when signup_date is missing.

    Only customers without a signup date need it, so only their events are read.
    """
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


def _transactions_sql(
    windows: tuple[int, ...], has_category: bool, src: dict[str, str] = FULL
) -> str:
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
    FROM {window_starts((*windows, 90, 365))} s JOIN {src["transactions"]} t
      ON t.customer_id = s.customer_id AND t.ts < s.cutoff
    GROUP BY s.sid
    """


def text_patterns(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    """One RE2 pattern per lexicon category (`vague`, `competitor`) from the table `lexicon`,
    None for a category without phrases.

    A message counts for a category when one of its phrases occurs in the lower-cased text:
    as whole words for phrases in printable ASCII ('rival' not inside 'arrival'), anywhere for
    the others (Chinese has no spaces). One pattern per category is one linear scan of each
    text, where a join of texts with phrases would test every pair.
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


def _feedback_sql(patterns: dict[str, str | None], src: dict[str, str] = FULL) -> str:
    feedback = src["feedback"]

    def hit(category: str) -> str:
        pattern = patterns.get(category)
        return f"regexp_matches(t, {literal(pattern)})::INTEGER" if pattern else "0"

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
FROM {window_starts((90, 365))} s JOIN {feedback} f
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


def prepare(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    cutoffs: list[pd.Timestamp],
    data_end: pd.Timestamp,
    lexicon: pd.DataFrame,
) -> bool:
    """Tables every range shares: cutoffs, data end, lexicon, market; True if geo is known.

    `data_end` is the exclusive end of the data (the day after as_of): labels whose window
    runs past it stay empty.
    """
    ensure_relations(con, present)
    con.execute("CREATE OR REPLACE TEMP TABLE cutoffs (cutoff TIMESTAMP)")
    con.executemany("INSERT INTO cutoffs VALUES (?)", [[c.to_pydatetime()] for c in cutoffs])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE meta AS SELECT ?::TIMESTAMP AS data_end",
        [data_end.to_pydatetime()],
    )
    con.register("lexicon_df", lexicon)
    con.execute("CREATE OR REPLACE TEMP TABLE lexicon AS SELECT * FROM lexicon_df")
    has_geo = has_geography(relation_types(con, "customers"))
    if has_geo:
        con.execute(MARKET_SQL)
    return has_geo


def has_geography(customer_types: dict[str, str]) -> bool:
    """Market data is joined on the customer's region and industry: without both, no market."""
    return {"region", "industry"} <= set(customer_types)


def aggregate_select(
    con: duckdb.DuckDBPyConnection,
    cfg: FeatureConfig,
    has_geo: bool,
    src: dict[str, str] = FULL,
    profile: tuple[str, ...] = (),
    btyd: bool = False,
) -> str:
    """Build the per-source aggregate tables (after `prepare`) for the customers of the
    relations `src`; return the SELECT that joins them onto the spine: one row per (customer,
    cutoff) active at that cutoff, with the customer columns `profile` as `profile:<name>`;
    `btyd`: with the BTYD scores of the table `btyd_scores` (`churnlight.features.btyd`)."""
    own = ", ".join(literal(t) for t in OWN_ACTIVITY)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {src["own_events"]} AS
        SELECT customer_id, ts FROM {src["activity"]} WHERE event_type IN ({own})
        UNION ALL SELECT customer_id, ts FROM {src["transactions"]}
    """)
    cust_cols = relation_types(con, src["customers"])
    con.execute(_first_seen_sql(cust_cols, src))
    con.execute(_spine_sql(cfg, cust_cols, src))
    con.execute(activity_sql(cfg.windows_days, cfg.lookback_days, src["activity"]))
    tx_cols = relation_types(con, src["transactions"])
    con.execute(_transactions_sql(cfg.windows_days, "category" in tx_cols, src))
    con.execute(_feedback_sql(text_patterns(con), src))
    # every aggregate is keyed by the spine's row number: one integer, cheap to join on. Each
    # join matches at most one row, so their order changes no value; the joins on other keys
    # come first, while the rows are narrow (Spark moves the joined row at each change of key)
    columns = [f"{t}.* EXCLUDE (sid)" for t in ("s", *AGGREGATE_TABLES)]
    tables = ""
    if has_geo:
        columns += EXTERNAL_COLUMNS
    if btyd:
        columns += [f"b.{c}" for c in BTYD_OUTPUTS]
        tables += (
            f" LEFT JOIN {BTYD_TABLE} b ON b.customer_id = s.customer_id AND b.cutoff = s.cutoff"
        )
    columns += [f"p.{ident(c)} AS {ident(PROFILE_COLUMN + c)}" for c in profile]
    if profile or has_geo:
        tables += f" LEFT JOIN {src['customers']} p ON p.customer_id = s.customer_id"
    if has_geo:
        tables += (
            " LEFT JOIN market_pit m ON m.region = p.region AND m.industry = p.industry"
            " AND m.cutoff = s.cutoff"
        )
    # ON, not USING: a customer column named sid (a profile attribute of p) stays unambiguous
    tables += "".join(f" LEFT JOIN {t} ON {t}.sid = s.sid" for t in AGGREGATE_TABLES)
    return f"SELECT {', '.join(columns)} FROM spine s{tables}"
