"""Attitude family: NPS, CSAT, complaints by ticket, silence after a complaint, lexicon texts.

Events relative to CUTOFF = 2026-01-01 00:00; `days_before(-d)` is d days AFTER the cutoff.
"""

from __future__ import annotations

import pandas as pd
import pytest

from .helpers import CUTOFF, activity, build, by_customer, customers, days_before, feedback


def fb(cid, d, kind, score=None, text=None, ticket=None):
    row = {
        "customer_id": cid,
        "ts": days_before(d),
        "kind": kind,
        "text": text,
        "ticket_id": ticket,
    }
    if score is not None:
        row["score"] = float(score)
    return row


def attitude(rows, ids, **tables) -> pd.DataFrame:
    return by_customer(build({"customers": customers(ids), "feedback": feedback(rows), **tables}))


# --- NPS and CSAT --------------------------------------------------------------------------------


def test_nps_last_change_detractor_missing():
    # N1: 9 at -200d, 6 at -20d, an unanswered survey (score NULL) at -1d
    #     -> last 6, change 6 - 9 = -3, detractor (6 <= 6), 20 days since, not missing
    # N2: 10 at -100d, 8 at -50d; 3 at the cutoff and 2 after it are not seen yet
    #     -> last 8, change -2, not a detractor, 50 days since
    # N3: no NPS -> last/change/days missing, detractor 0, missing 1
    # N4: a single answer 7 -> change missing, 7 is not a detractor
    rows = [
        fb("N1", 200, "nps", 9),
        fb("N1", 20, "nps", 6),
        fb("N1", 1, "nps"),
        fb("N2", 100, "nps", 10),
        fb("N2", 50, "nps", 8),
        fb("N2", 0, "nps", 3),
        fb("N2", -5, "nps", 2),
        fb("N3", 10, "csat", 4),
        fb("N4", 30, "nps", 7),
    ]
    f = attitude(rows, ["N1", "N2", "N3", "N4"])
    n1, n2, n3, n4 = (f.loc[c] for c in ("N1", "N2", "N3", "N4"))
    assert (n1["nps_last"], n1["nps_change"], n1["nps_detractor"], n1["nps_missing"]) == (
        6.0,
        -3.0,
        1,
        0,
    )
    assert n1["days_since_nps"] == pytest.approx(20.0)
    assert (n2["nps_last"], n2["nps_change"], n2["nps_detractor"], n2["nps_missing"]) == (
        8.0,
        -2.0,
        0,
        0,
    )
    assert n2["days_since_nps"] == pytest.approx(50.0)
    assert pd.isna(n3["nps_last"]) and pd.isna(n3["nps_change"]) and pd.isna(n3["days_since_nps"])
    assert (n3["nps_detractor"], n3["nps_missing"]) == (0, 1)
    assert n4["nps_last"] == 7.0 and pd.isna(n4["nps_change"])
    assert (n4["nps_detractor"], n4["nps_missing"]) == (0, 0)


def test_csat_last_mean_and_missing():
    # C1: 5 at -400d (outside the 365-day mean), 4 at -100d, 2 at -10d, 1 after the cutoff
    #     -> last 2, mean over 365 days (4 + 2) / 2 = 3.0, 10 days since, not missing
    # C2: none -> last missing, missing flag 1
    rows = [
        fb("C1", 400, "csat", 5),
        fb("C1", 100, "csat", 4),
        fb("C1", 10, "csat", 2),
        fb("C1", -1, "csat", 1),
        fb("C2", 10, "nps", 9),
    ]
    f = attitude(rows, ["C1", "C2"])
    assert f.loc["C1", "csat_last"] == 2.0
    assert f.loc["C1", "csat_mean_365d"] == pytest.approx(3.0)
    assert f.loc["C1", "days_since_csat"] == pytest.approx(10.0)
    assert f.loc["C1", "csat_missing"] == 0
    assert pd.isna(f.loc["C2", "csat_last"]) and pd.isna(f.loc["C2", "days_since_csat"])
    assert f.loc["C2", "csat_missing"] == 1


def test_csat_mean_is_missing_without_answers():
    # C2 never answered, C3 answered only 400 days ago: no average over the last 365 days
    rows = [fb("C2", 10, "nps", 9), fb("C3", 400, "csat", 5)]
    f = attitude(rows, ["C2", "C3"])
    assert pd.isna(f.loc["C2", "csat_mean_365d"])
    assert pd.isna(f.loc["C3", "csat_mean_365d"])


# --- complaints by ticket ------------------------------------------------------------------------


def test_complaints_open_and_resolved_by_ticket():
    # K1 tickets:
    #   T1 opened -100d, resolved -90d                 -> resolved
    #   T2 opened -60d, never resolved                 -> open (60 days)
    #   T3 opened -30d, resolved only after the cutoff -> still open at the cutoff
    #   T4 opened after the cutoff                     -> not seen
    #   a complaint without ticket_id at -20d counts in complaints_365d, never as open
    #   -> complaints_365d = 4 (T1, T2, T3, no-ticket), complaints_open = 2, oldest open = 60
    # K2: T5 opened -400d (outside the 12 months) never resolved; T6 opened -10d, resolved twice
    #   (-5d and -2d: the first resolution counts)
    #   -> complaints_365d = 1, complaints_open = 1, oldest open = 400
    # K3: nothing -> 0, 0, 0
    rows = [
        fb("K1", 100, "complaint_opened", text="The repair was not done properly.", ticket="T1"),
        fb("K1", 90, "complaint_resolved", ticket="T1"),
        fb("K1", 60, "complaint_opened", ticket="T2"),
        fb("K1", 30, "complaint_opened", ticket="T3"),
        fb("K1", -10, "complaint_resolved", ticket="T3"),
        fb("K1", -5, "complaint_opened", ticket="T4"),
        fb("K1", 20, "complaint_opened", text="I waited two hours, this is unacceptable."),
        fb("K2", 400, "complaint_opened", ticket="T5"),
        fb("K2", 10, "complaint_opened", ticket="T6"),
        fb("K2", 5, "complaint_resolved", ticket="T6"),
        fb("K2", 2, "complaint_resolved", ticket="T6"),
    ]
    f = attitude(rows, ["K1", "K2", "K3"])
    cols = ["complaints_365d", "complaints_open", "oldest_open_complaint_days"]
    assert tuple(f.loc["K1", cols]) == (4, 2, pytest.approx(60.0))
    assert tuple(f.loc["K2", cols]) == (1, 1, pytest.approx(400.0))
    assert tuple(f.loc["K3", cols]) == (0, 0, 0.0)


def test_silence_after_a_resolved_complaint():
    # each customer: ticket opened -50d, resolved -40d
    # S1: nothing afterwards -> silent for 40 days
    # S2: a login at -30d (after the resolution) -> 0
    # S3: a message at -35d -> 0
    # S4: the resolution only comes after the cutoff -> still open, so no silence yet -> 0
    # S5: only a login BEFORE the resolution (-45d) -> silent 40
    # S6: a purchase at -10d -> 0
    # S7: a login after the cutoff (+1d) is not seen -> silent 40
    from .helpers import transactions

    ids = ["S1", "S2", "S3", "S4", "S5", "S6", "S7"]
    rows = []
    for cid in ids:
        rows.append(fb(cid, 50, "complaint_opened", ticket=f"T-{cid}"))
        rows.append(fb(cid, -3 if cid == "S4" else 40, "complaint_resolved", ticket=f"T-{cid}"))
    rows.append(fb("S3", 35, "message", text="Thanks, the service was fine."))
    act = activity(
        [
            ("S2", days_before(30), "login"),
            ("S5", days_before(45), "login"),
            ("S7", days_before(-1), "login"),
        ]
    )
    tx = transactions([("S6", days_before(10), 100.0)])
    f = attitude(rows, ids, activity=act, transactions=tx)
    assert f["silent_days_after_complaint"].to_dict() == {
        "S1": pytest.approx(40.0),
        "S2": 0.0,
        "S3": 0.0,
        "S4": 0.0,
        "S5": pytest.approx(40.0),
        "S6": 0.0,
        "S7": pytest.approx(40.0),
    }
    assert f.loc["S4", "complaints_open"] == 1


# --- texts through the bilingual lexicon ---------------------------------------------------------


def test_vague_replies_and_competitor_mentions_in_english_and_chinese():
    # M1 messages in the last 90 days:
    #   "Let me think about it."                   vague       ("think about it")
    #   "暂时不需要。"                               vague       ("暂时不需要")
    #   "X店怎么样？"                               competitor  ("x店" after lower())
    #   "A competitor offered me a better price."  competitor  (two phrases, ONE message)
    #   "MAYBE LATER, the other shop is cheaper"   vague + competitor (case-insensitive)
    #   "Thanks, the service was fine."            neutral
    #   "先考虑下。" exactly at -90d                  vague       (window edge: inside)
    # outside: "Maybe later." at -90d-1s, "再说吧" after the cutoff, "别家更便宜" at the cutoff
    #   -> vague_replies_90d = 4, competitor_mentions_90d = 3, messages_90d = 7
    # M2: a complaint text mentioning a competitor counts as a mention, not as a message:
    #   "别家给的价格更便宜。" -> competitor 1, messages 0
    # M3: only neutral texts -> 0, 0, 1
    texts = [
        (10, "Let me think about it."),
        (20, "暂时不需要。"),
        (30, "X店怎么样？"),
        (40, "A competitor offered me a better price."),
        (50, "MAYBE LATER, the other shop is cheaper"),
        (60, "Thanks, the service was fine."),
        (90, "先考虑下。"),
        (90 + 1 / 86400, "Maybe later."),
        (-1, "再说吧"),
        (0, "别家更便宜"),
    ]
    rows = [fb("M1", d, "message", text=t) for d, t in texts]
    rows += [
        fb("M2", 5, "complaint_opened", text="别家给的价格更便宜。", ticket="T9"),
        fb("M3", 5, "message", text="谢谢，服务挺好的。"),
    ]
    f = attitude(rows, ["M1", "M2", "M3"])
    cols = ["vague_replies_90d", "competitor_mentions_90d", "messages_90d"]
    assert tuple(f.loc["M1", cols]) == (4, 3, 7)
    assert tuple(f.loc["M2", cols]) == (0, 1, 0)
    assert tuple(f.loc["M3", cols]) == (0, 0, 1)


def test_a_text_outside_the_90_day_window_is_not_counted():
    # one vague + competitor message 91 days before CUTOFF:
    #   at the cutoff exactly 90 days after it (CUTOFF - 1 day) it is on the window edge: counted
    #   at CUTOFF it is 91 days old: outside [cutoff - 90 days, cutoff) -> 0, 0 and no message
    text = "Not needed for now, 别家 is cheaper"
    rows = [fb("A", 91, "message", text=text)]
    first = days_before(91) + pd.Timedelta(days=90)  # exactly 90 days after the message
    cutoffs = [first, CUTOFF]
    feats = build({"customers": customers(["A"]), "feedback": feedback(rows)}, cutoffs=cutoffs)
    at_edge = by_customer(feats, first).loc["A"]
    now = by_customer(feats, CUTOFF).loc["A"]
    assert (at_edge["vague_replies_90d"], at_edge["competitor_mentions_90d"]) == (1, 1)
    assert (now["vague_replies_90d"], now["competitor_mentions_90d"]) == (0, 0)
    assert now["messages_90d"] == 0


def test_english_phrases_match_whole_words_only():
    # "Please confirm my arrival time." mentions no competitor
    rows = [fb("A", 5, "message", text="Please confirm my arrival time.")]
    f = attitude(rows, ["A"])
    assert f.loc["A", "competitor_mentions_90d"] == 0
