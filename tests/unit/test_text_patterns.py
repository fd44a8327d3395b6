"""The lexicon's compiled patterns find exactly what the plain phrase-by-phrase match finds.

The stage matches each message against one RE2 pattern per category (`text_patterns`). The
definition is phrase by phrase: a message counts for a category when one of its phrases occurs
in the lower-cased text, as whole words for phrases in printable ASCII, anywhere for the others.
Both run on random messages built from phrases, their neighbours ('rival' in 'arrival'), case
changes, punctuation and Chinese, with lexicons holding regex metacharacters ('c++', 'a.b',
'(x)') as a user's edited file might.
"""

from __future__ import annotations

import duckdb
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnlight.features import aggregates

from .helpers import LEXICON

BOUNDED = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the project
    suppress_health_check=[HealthCheck.too_slow],
)
EXTRA = ["c++", "a.b", "(x)", "no [way]", "50%", "why?", "shop$", "\\d", "商店*", "一|二"]
FILLERS = ["", " ", ".", ",", "!", "x", "s", "ar", "_", "1", "的", "。", "\n", "-"]


def reference_hits(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """(mid, vague, competitor) for every message with a hit: the phrase-by-phrase definition."""
    return con.execute("""
        SELECT m.mid,
               max((l.category = 'vague')::INTEGER) AS vague,
               max((l.category = 'competitor')::INTEGER) AS competitor
        FROM (SELECT mid, lower(text) AS t FROM messages) m
        JOIN lexicon l ON l.phrase IS NOT NULL AND contains(m.t, lower(l.phrase))
        WHERE CASE WHEN regexp_matches(l.phrase, '^[ -~]+$')
                   THEN regexp_matches(m.t, '\\b' || regexp_escape(lower(l.phrase)) || '\\b')
                   ELSE true END
        GROUP BY m.mid
        HAVING max((l.category IN ('vague', 'competitor'))::INTEGER) = 1
        ORDER BY m.mid
    """).df()


def pattern_hits(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The same through the stage's SQL (`_feedback_sql`, table text_hits)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fb AS SELECT mid::VARCHAR AS customer_id, "
        "TIMESTAMP '2026-01-01' AS ts, 'message' AS kind, text FROM messages"
    )
    sql = aggregates._feedback_sql(aggregates.text_patterns(con), {"feedback": "fb"})
    statement = next(s for s in sql.split(";\n") if "TABLE text_hits AS" in s)
    con.execute(statement)
    return con.execute("""
        SELECT customer_id::BIGINT AS mid, vague, competitor FROM text_hits ORDER BY mid
    """).df()


@st.composite
def messages(draw, phrases: list[str]) -> list[str]:
    pieces = st.one_of(
        st.sampled_from(phrases),
        st.sampled_from(phrases).map(str.upper),
        st.sampled_from(phrases).map(lambda p: p[1:] or p),
        st.sampled_from(FILLERS),
        st.text(alphabet="abcxyz .是别家", max_size=4),
    )
    return draw(st.lists(st.lists(pieces, max_size=5).map("".join), min_size=1, max_size=25))


lexicons = st.lists(
    st.tuples(
        st.sampled_from([*LEXICON["phrase"], *EXTRA]),
        st.sampled_from(["vague", "competitor", "other"]),
    ),
    max_size=12,
    unique_by=lambda pc: pc[0],
)


@BOUNDED
@given(data=st.data(), lexicon=lexicons)
def test_compiled_patterns_match_the_phrase_by_phrase_definition(data, lexicon):
    lex = pd.DataFrame(lexicon, columns=["phrase", "category"], dtype=object)
    phrases = [p for p, _ in lexicon] or ["rival"]
    texts = data.draw(messages([*phrases, "arrival", "rivalry", "别家店"]))
    con = duckdb.connect()
    con.register("lex_df", lex.assign(language="en"))
    con.execute("CREATE TABLE lexicon AS SELECT * FROM lex_df")
    con.register("msg_df", pd.DataFrame({"mid": range(len(texts)), "text": texts}))
    con.execute("CREATE TABLE messages AS SELECT * FROM msg_df")
    want, got = reference_hits(con), pattern_hits(con)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_a_category_without_phrases_matches_nothing():
    con = duckdb.connect()
    con.register("lex_df", LEXICON[LEXICON["category"] == "vague"])
    con.execute("CREATE TABLE lexicon AS SELECT * FROM lex_df")
    patterns = aggregates.text_patterns(con)
    assert patterns["competitor"] is None and patterns["vague"]
    con.register("msg_df", pd.DataFrame({"mid": [0, 1], "text": ["maybe later", "a rival"]}))
    con.execute("CREATE TABLE messages AS SELECT * FROM msg_df")
    got = pattern_hits(con)
    assert got.to_dict("list") == {"mid": [0], "vague": [1], "competitor": [0]}
