"""External family, joined point in time: a market month is usable only once it has ended
(`month + 1 month <= cutoff`); a month still running at the cutoff must not be seen.
"""

from __future__ import annotations

import pandas as pd
import pytest

from .helpers import CUTOFF, build, by_customer, customers, market

# industry index of retail, the same in every region with market rows; every other month 97
INDEX = {"2025-06-01": 100.0, "2025-09-01": 95.0, "2025-12-01": 90.0, "2026-01-01": 50.0}
MONTHS = pd.date_range("2025-01-01", "2026-01-01", freq="MS")
# (region, month) -> competitor launch; (region, month) -> policy shock
LAUNCH = {("north", "2026-01-01"), ("south", "2025-10-01"), ("east", "2025-09-01")}
POLICY = {("north", "2025-07-01"), ("south", "2025-06-01"), ("east", "2026-01-01")}


def _tables() -> dict[str, pd.DataFrame]:
    rows = []
    for region in ("north", "south", "east"):
        for m in MONTHS:
            key = str(m.date())
            rows.append(
                (
                    m,
                    region,
                    "retail",
                    INDEX.get(key, 97.0),
                    (region, key) in LAUNCH,
                    (region, key) in POLICY,
                )
            )
    cust = pd.concat(
        [
            customers([cid], region=region)
            for cid, region in zip("ABCD", ("north", "south", "east", "west"), strict=True)
        ],
        ignore_index=True,
    )
    return {"customers": cust, "market": market(rows)}


def test_index_change_uses_only_ended_months():
    # cutoff 2026-01-01: the newest ended month is 2025-12 (ends exactly at the cutoff): 90.
    # January 2026 (index 50) is still running and must not be used.
    #   3 months back: newest month ending by 2025-10-01 -> 2025-09: 95 -> 90/95 - 1 = -0.0526...
    #   6 months back: newest month ending by 2025-07-01 -> 2025-06: 100 -> 90/100 - 1 = -0.1
    f = by_customer(build(_tables()))
    for cid in "ABC":
        assert f.loc[cid, "industry_index_change_3m"] == pytest.approx(90 / 95 - 1)
        assert f.loc[cid, "industry_index_change_6m"] == pytest.approx(-0.1)
    # D's region has no market rows: changes missing, flags 0
    assert pd.isna(f.loc["D", "industry_index_change_3m"])
    assert pd.isna(f.loc["D", "industry_index_change_6m"])
    assert (f.loc["D", "competitor_launch_90d"], f.loc["D", "policy_shock_180d"]) == (0, 0)


def test_competitor_launch_90d_and_policy_shock_180d():
    # cutoff - 90 days = 2025-10-03; a month counts if it ended after that and by the cutoff:
    #   A (north): launch only in 2026-01, not ended -> 0
    #   B (south): launch in 2025-10 (ends 2025-11-01) -> 1
    #   C (east):  launch in 2025-09 (ended 2025-10-01, before 2025-10-03) -> 0
    # cutoff - 180 days = 2025-07-05:
    #   A: policy in 2025-07 (ends 2025-08-01) -> 1
    #   B: policy in 2025-06 (ended 2025-07-01) -> 0
    #   C: policy in 2026-01, not ended -> 0
    f = by_customer(build(_tables()))
    assert f["competitor_launch_90d"].to_dict() == {"A": 0, "B": 1, "C": 0, "D": 0}
    assert f["policy_shock_180d"].to_dict() == {"A": 1, "B": 0, "C": 0, "D": 0}


def test_a_mid_month_cutoff_does_not_see_the_running_month():
    # cutoff 2026-01-15: January is half over, still not usable -> same as at 2026-01-01
    #   3 months back: newest month ending by 2025-10-15 -> 2025-09 (95); 6: by 2025-07-15 -> 06
    #   launch window from 2025-10-17: B's October launch (ends 11-01) still counts
    mid = pd.Timestamp("2026-01-15")
    f = by_customer(build(_tables(), cutoffs=[mid]), mid)
    assert f.loc["A", "industry_index_change_3m"] == pytest.approx(90 / 95 - 1)
    assert f.loc["A", "industry_index_change_6m"] == pytest.approx(-0.1)
    assert f["competitor_launch_90d"].to_dict() == {"A": 0, "B": 1, "C": 0, "D": 0}
    assert f.loc["C", "policy_shock_180d"] == 0


def test_the_month_is_used_once_it_has_ended():
    # cutoff 2026-02-01: January has ended: now 50; 3 months back: 2025-10 (97);
    # 6 months back: 2025-07 (97). A's January launch and C's January policy shock now count.
    nxt = pd.Timestamp("2026-02-01")
    f = by_customer(build(_tables(), cutoffs=[CUTOFF, nxt]), nxt)
    assert f.loc["A", "industry_index_change_3m"] == pytest.approx(50 / 97 - 1)
    assert f.loc["A", "industry_index_change_6m"] == pytest.approx(50 / 97 - 1)
    assert f.loc["A", "competitor_launch_90d"] == 1
    assert f.loc["C", "policy_shock_180d"] == 1


def test_changing_a_running_month_changes_nothing_at_the_cutoff():
    # rewrite every value of January 2026 (still running at CUTOFF): the features do not move
    base = build(_tables())
    tables = _tables()
    mk = tables["market"]
    jan = mk["month"] == pd.Timestamp("2026-01-01")
    mk.loc[jan, "industry_index"] = 1.0
    mk.loc[jan, "competitor_launch"] = 1
    mk.loc[jan, "policy_shock"] = 1
    pd.testing.assert_frame_equal(build(tables), base)
