"""The activity aggregates (table `f_activity`): event counts per type and window, the latest
times of groups of types, and the counts the derived ratios read, per spine row.

Two texts of one definition: `activity_reference_sql` states each output as one filter over
the events of a (customer, cutoff), plainly; `activity_sql` computes exactly the same in two
cheaper steps and is what runs. A property test holds them equal.
"""

from __future__ import annotations

from churnlight.features.contract import ACTIVITY_TYPES
from churnlight.features.registry import ACTIVITY_WORDS
from churnlight.features.sql import literal

# customer-initiated activity: what counts as "the customer did something"
OWN_ACTIVITY = (
    "login",
    "visit",
    "booking",
    "booking_cancelled",
    "outreach_replied",
    "service_done",
)

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
    windows: tuple[int, ...], lookback: int, activity: str = "activity"
) -> str:
    """The definition of f_activity: a row per spine row (`sid`) with an event in the `lookback`
    days before its cutoff, and per output one filter over those events (of the relation
    `activity`). Plain but slow (a filter per output and event)."""
    known = ", ".join(literal(t) for t in ACTIVITY_TYPES)

    def is_type(types) -> str:
        conds = [
            f"a.event_type NOT IN ({known})" if t == "other" else f"a.event_type = {literal(t)}"
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
    FROM spine s JOIN {activity} a
      ON a.customer_id = s.customer_id AND a.ts < s.cutoff
     AND a.ts >= s.cutoff - INTERVAL {lookback} DAY
    GROUP BY s.sid
    """


def activity_sql(windows: tuple[int, ...], lookback: int, activity: str = "activity") -> str:
    """f_activity exactly as `activity_reference_sql` defines it, in two cheaper steps.

    Per (spine row, event type) one count per distinct span (plus the whole lookback and the
    latest time), then one row per spine row that picks and sums those, e.g. the 120-day minus
    the 30-day count is "between 30 and 120 days before". A handful of counts per event instead
    of a filter per output, and small integer keys (spine row, type code) instead of strings:
    hashing and comparing those dominates both steps. The second step picks a type's count
    with max() over the one row it has per spine row, because DuckDB sums integers into 128
    bits, which is slower (bench/README.md). Both steps also group by the customer, which
    the spine row fixes: it changes no group, but tells Spark that the rows are already
    partitioned by customer after the join, which spares it two shuffles (200k customers:
    16.4 to 8.3 s on Spark; DuckDB, hashing one more key, 8.7 to 9.1 s).
    """
    spans = sorted({*windows, 30, 90, 120} - {lookback})  # the lookback: every joined event
    per_type = ", ".join(
        [f"count(*) FILTER (WHERE a.ts >= s.from{w})::INTEGER AS n{w}" for w in spans]
        + ["count(*)::INTEGER AS n_all", "max(a.ts) AS last_ts"]
    )
    codes = {t: k for k, t in enumerate(ACTIVITY_TYPES)}
    other = len(codes)  # any other type; NULL gets -1 and counts nowhere
    code = " ".join(f"WHEN event_type = {literal(t)} THEN {k}" for t, k in codes.items())

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
        SELECT s.customer_id, s.sid, a.t, {per_type}
        FROM {window_starts((*spans, lookback))} s JOIN (
            -- the type code once per event, not once per (event, cutoff) the join pairs up
            SELECT customer_id, ts,
                   (CASE WHEN event_type IS NULL THEN -1 {code} ELSE {other} END)::TINYINT AS t
            FROM {activity}
        ) a ON a.customer_id = s.customer_id AND a.ts < s.cutoff AND a.ts >= s.from{lookback}
        GROUP BY s.customer_id, s.sid, a.t
    )
    GROUP BY customer_id, sid
    """


def window_starts(days: tuple[int, ...]) -> str:
    """The spine with `from<n>` = cutoff - n days: computed once per row, not once per event."""
    starts = ", ".join(f"cutoff - INTERVAL {d} DAY AS from{d}" for d in sorted(set(days)))
    return f"(SELECT sid, customer_id, cutoff, {starts} FROM spine)"
