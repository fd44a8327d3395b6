"""Point in time, as properties over a small seeded synthetic world.

1. Appending any events at or after a cutoff (activity of every type, purchases, surveys,
   complaints and resolutions of existing tickets, messages with lexicon phrases, market rows
   for months not yet ended) changes no feature of that cutoff or of any earlier one.
2. Appending events after the label window of a cutoff leaves its labels alone; moving one
   cancel_date across the window's end flips exactly that one label.
"""

from __future__ import annotations

import functools

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnlight.features.contract import ACTIVITY_TYPES
from churnlight.features.synthetic import TEXTS, WorldConfig, generate_world

from .helpers import CFG, LEXICON, PARAMS, build, config

WORLD = WorldConfig.from_params(
    PARAMS["generate"], n_customers=150, months=18, start="2025-01-01"
)  # data end 2026-07-01
SEED = 5
DATA_END = WORLD.end_ts
CUTOFFS = [pd.Timestamp(c) for c in ("2025-12-01", "2026-01-01", "2026-02-01", "2026-04-01")]
VARIANTS = ("cancellation", "inactivity")
BOUNDED = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis folder in the project
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PHRASES = list(LEXICON["phrase"])
TEMPLATES = [t for texts in TEXTS.values() for t in texts]


@functools.cache
def _world() -> dict[str, pd.DataFrame]:
    return generate_world(WORLD, seed=SEED).raw_tables()


def world_tables(variant: str) -> dict[str, pd.DataFrame]:
    """Fresh copies. The inactivity variant drops signup and cancel dates: customers start at
    their first event and churn is judged on events alone."""
    tables = {k: v.copy() for k, v in _world().items()}
    if variant == "inactivity":
        tables["customers"] = tables["customers"].drop(columns=["signup_date", "cancel_date"])
    return tables


def variant_config(variant: str):
    return CFG if variant == "cancellation" else config(churn_definition="inactivity")


def features(tables: dict[str, pd.DataFrame], variant: str) -> pd.DataFrame:
    return build(tables, CUTOFFS, DATA_END, variant_config(variant), profile=True)


@functools.cache
def baseline(variant: str) -> pd.DataFrame:
    return features(world_tables(variant), variant)


def up_to(feats: pd.DataFrame, cutoff: pd.Timestamp, label: bool = True) -> pd.DataFrame:
    """The rows of `cutoff` and earlier ones. Nullable float columns (Float64) become float64:
    whether DuckDB's NULLs arrive as Float64 or float64 depends on rows of LATER cutoffs (any
    customer without activity anywhere in the frame), which is not what is compared here."""
    out = feats[feats["cutoff"] <= cutoff].reset_index(drop=True)
    for c in out.columns:
        if isinstance(out[c].dtype, pd.Float64Dtype):
            out[c] = out[c].astype("float64")
    return out if label else out.drop(columns="label")


# --- strategies ----------------------------------------------------------------------------------

_world_now = _world()
IDS = list(_world_now["customers"]["customer_id"])
_tickets = _world_now["feedback"][["customer_id", "ticket_id"]].dropna().drop_duplicates()
TICKETS = list(_tickets.itertuples(index=False, name=None))
REGIONS = sorted(_world_now["market"]["region"].unique())
INDUSTRIES = sorted(_world_now["market"]["industry"].unique())

texts = st.one_of(
    st.sampled_from(TEMPLATES),
    st.builds(
        lambda a, p, b: f"{a}{p}{b}",
        st.sampled_from(["", "OK. ", "嗯，", "Hi, "]),
        st.sampled_from(PHRASES).map(lambda p: p.upper() if p.isascii() else p),
        st.sampled_from(["", "?", "。", " thanks"]),
    ),
)


def moments(start: pd.Timestamp):
    """Timestamps at or after `start`: often exactly on it, else up to 200 days later."""
    return st.one_of(st.just(0), st.integers(0, 200 * 86400)).map(
        lambda s: start + pd.Timedelta(seconds=s)
    )


@st.composite
def feedback_rows(draw, when):
    kind = draw(
        st.sampled_from(["nps", "csat", "complaint_opened", "complaint_resolved", "message"])
    )
    cid, ticket, score, text = draw(st.sampled_from(IDS)), None, float("nan"), None
    if kind == "nps":
        score = float(draw(st.integers(0, 10)))
    elif kind == "csat":
        score = float(draw(st.integers(1, 5)))
    elif kind in ("complaint_opened", "complaint_resolved"):
        # an existing ticket of that customer (re-opened / resolved now) or a new one
        if TICKETS and draw(st.booleans()):
            cid, ticket = draw(st.sampled_from(TICKETS))
        else:
            ticket = f"NEW{draw(st.integers(0, 5))}"
        text = draw(texts) if kind == "complaint_opened" else None
    else:
        text = draw(texts)
    return (cid, draw(when), kind, score, text, ticket)


@st.composite
def future_events(draw, start: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Random rows for every event table, all at or after `start`."""
    when = moments(start)
    ids = st.sampled_from(IDS)
    act = draw(
        st.lists(st.tuples(ids, when, st.sampled_from([*ACTIVITY_TYPES, "chat"])), max_size=12)
    )
    tx = draw(
        st.lists(
            st.tuples(ids, when, st.floats(0, 50_000), st.sampled_from(["promo", "service"])),
            max_size=6,
        )
    )
    fb = draw(st.lists(feedback_rows(when), max_size=10))
    # market months that have not ended at `start`: the one it falls in and the next six
    first_month = start.to_period("M").to_timestamp()
    mk = draw(
        st.lists(
            st.tuples(
                st.integers(0, 6).map(lambda i: first_month + pd.DateOffset(months=i)),
                st.sampled_from(REGIONS),
                st.sampled_from(INDUSTRIES),
                st.floats(1, 300),
                st.integers(0, 1),
                st.integers(0, 1),
            ),
            max_size=6,
        )
    )
    return {
        "activity": pd.DataFrame(act, columns=["customer_id", "ts", "event_type"]),
        "transactions": pd.DataFrame(tx, columns=["customer_id", "ts", "amount", "category"]),
        "feedback": pd.DataFrame(
            fb, columns=["customer_id", "ts", "kind", "score", "text", "ticket_id"]
        ),
        "market": pd.DataFrame(
            mk,
            columns=[
                "month",
                "region",
                "industry",
                "industry_index",
                "competitor_launch",
                "policy_shock",
            ],
        ),
    }


def append(tables: dict[str, pd.DataFrame], extra: dict[str, pd.DataFrame]) -> dict:
    out = dict(tables)
    for name, rows in extra.items():
        if rows.empty:
            continue
        base = tables[name]
        rows = rows.astype({c: base[c].dtype for c in rows.columns})
        out[name] = pd.concat([base, rows], ignore_index=True)
    return out


# --- 1. nothing at or after a cutoff reaches its features ----------------------------------------


@BOUNDED
@given(data=st.data())
def test_events_at_or_after_a_cutoff_change_none_of_its_features(data):
    variant = data.draw(st.sampled_from(VARIANTS), label="variant")
    cutoff = data.draw(st.sampled_from(CUTOFFS), label="cutoff")
    extra = data.draw(future_events(cutoff), label="events")
    base = baseline(variant)
    new = features(append(world_tables(variant), extra), variant)
    # features of this cutoff and every earlier one: identical (labels may see the future)
    pd.testing.assert_frame_equal(up_to(new, cutoff, label=False), up_to(base, cutoff, label=False))
    if variant == "cancellation":  # the cancellation label reads only cancel_date
        pd.testing.assert_frame_equal(up_to(new, cutoff), up_to(base, cutoff))


def test_the_world_gives_every_cutoff_rows_and_both_labels():
    # guards the properties above against an empty world
    for variant in VARIANTS:
        base = baseline(variant)
        assert set(base["cutoff"]) == set(CUTOFFS)
        assert set(base["label"].dropna().astype(int)) == {0, 1}


# --- 2. labels -----------------------------------------------------------------------------------


@BOUNDED
@given(data=st.data())
def test_labels_ignore_events_after_their_window_and_follow_only_their_cancel_date(data):
    """Events at or after the end of a cutoff's label window change no row (label included) of
    that cutoff or earlier ones; in the cancellation variant one customer's cancel_date is also
    moved across the window's end (inside -> at/after the end, or outside/none -> inside), which
    flips that one label at the cutoff and nothing else."""
    variant = data.draw(st.sampled_from(VARIANTS), label="variant")
    cutoff = data.draw(st.sampled_from(CUTOFFS), label="cutoff")
    cfg = variant_config(variant)
    days = cfg.label_window_days if variant == "cancellation" else cfg.inactivity_days
    window_end = cutoff + pd.Timedelta(days=days)
    extra = data.draw(future_events(window_end), label="events after the window")
    tables = append(world_tables(variant), extra)
    base = baseline(variant)
    moved, churner = None, False
    if variant == "cancellation":
        at = base[base["cutoff"] == cutoff].set_index("customer_id")
        churner = data.draw(st.booleans(), label="churner")
        pool = sorted(at.index[at["label"] == (1 if churner else 0)])
        moved = data.draw(st.sampled_from(pool), label="customer")
        seconds = data.draw(st.integers(0, 200 * 86400), label="seconds")
        if churner:  # from inside the window to at or after its end
            new_cancel = window_end + pd.Timedelta(seconds=seconds)
        else:  # from outside (or never) to inside [cutoff, window end)
            new_cancel = cutoff + pd.Timedelta(seconds=seconds % (days * 86400))
        cust = tables["customers"]
        cust.loc[cust["customer_id"] == moved, "cancel_date"] = new_cancel
    new = features(tables, variant)

    now_new, now_base = up_to(new, cutoff), up_to(base, cutoff)
    # the same rows and features at this cutoff and every earlier one
    pd.testing.assert_frame_equal(now_new.drop(columns="label"), now_base.drop(columns="label"))
    flipped = now_new["label"].astype(float).fillna(-1) != now_base["label"].astype(float).fillna(
        -1
    )
    at_cut = now_base["cutoff"] == cutoff
    if moved is None:
        assert not flipped.any()
        return
    # exactly the moved customer's label flips at the cutoff ...
    assert now_base.loc[flipped & at_cut, "customer_id"].tolist() == [moved]
    assert now_new.loc[flipped & at_cut, "label"].tolist() == [0 if churner else 1]
    # ... and at earlier cutoffs at most that customer's (its window there may reach the date)
    assert set(now_base.loc[flipped & ~at_cut, "customer_id"]) <= {moved}
