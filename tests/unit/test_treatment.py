"""Which snapshot rows a contact treated, and the split the models then see."""

from __future__ import annotations

import pandas as pd
import pytest

from churnlight.models.train import Split
from churnlight.models.treatment import treated_rows, treatment_split, treatment_summary

CUTOFF = pd.Timestamp("2025-06-01")
CARRY, WINDOW = 90, 90


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c"],
            "cutoff": [CUTOFF, CUTOFF + pd.DateOffset(months=1), CUTOFF, CUTOFF],
            "label": [0, 1, 0, 1],
        },
        index=[10, 11, 12, 13],  # not a RangeIndex: the mask must follow the rows' index
    )


def _contacts(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"customer_id": c, "ts": pd.Timestamp(ts), "campaign_id": "x", "group": g}
            for c, ts, g in rows
        ],
        columns=["customer_id", "ts", "campaign_id", "group"],
    )


def _mark(contacts: pd.DataFrame, rows: pd.DataFrame | None = None) -> pd.Series:
    return treated_rows(_rows() if rows is None else rows, contacts, CARRY, WINDOW).mask


@pytest.mark.parametrize(
    ("ts", "treated"),
    [
        (CUTOFF - pd.Timedelta(days=CARRY), True),  # carryover start: inclusive
        (CUTOFF - pd.Timedelta(days=CARRY) - pd.Timedelta(seconds=1), False),
        (CUTOFF, True),
        (CUTOFF + pd.Timedelta(days=WINDOW) - pd.Timedelta(seconds=1), True),
        (CUTOFF + pd.Timedelta(days=WINDOW), False),  # window end: exclusive
    ],
)
def test_window_boundaries(ts, treated):
    mask = _mark(_contacts(("b", ts, "treatment")))
    assert bool(mask.loc[12]) is treated
    assert mask.drop(12).sum() == 0  # other customers untouched


def test_one_contact_can_treat_several_cutoffs_of_its_customer():
    # 2025-06-15 is inside the window of 2025-06-01 and within carryover of 2025-07-01
    mask = _mark(_contacts(("a", "2025-06-15 10:00", "treatment")))
    assert mask.to_dict() == {10: True, 11: True, 12: False, 13: False}


def test_control_rows_are_never_treated():
    mask = _mark(_contacts(("a", "2025-06-02", "control"), ("c", "2025-06-02", "control")))
    assert not mask.any()


def test_inputs_are_not_mutated():
    rows, contacts = _rows(), _contacts(("c", "2025-06-02", "treatment"))
    before = rows.copy(), contacts.copy()
    mask = _mark(contacts, rows)
    assert mask.to_dict() == {10: False, 11: False, 12: False, 13: True}
    pd.testing.assert_frame_equal(rows, before[0])
    pd.testing.assert_frame_equal(contacts, before[1])


def test_customer_ids_of_another_type_still_link():
    rows = _rows().assign(customer_id=[1, 1, 2, 3])
    mask = _mark(_contacts(("3", "2025-06-02", "treatment")), rows)
    assert mask.to_dict() == {10: False, 11: False, 12: False, 13: True}


def test_a_flat_table_passes_through():
    flat = _rows().assign(cutoff=pd.NaT)
    found = treated_rows(flat, _contacts(("a", "2025-06-02", "treatment")), CARRY, WINDOW)
    assert not found.mask.any()
    assert found.unlinkable == len(flat)


def test_missing_columns_are_named():
    with pytest.raises(KeyError, match=r"contacts\.group"):
        _mark(_contacts(("a", "2025-06-02", "treatment")).drop(columns="group"))


def _split(rows: pd.DataFrame) -> Split:
    test = rows["cutoff"] == rows["cutoff"].max()
    return Split(rows[~test], rows[test], [rows["cutoff"].max()], WINDOW)


def test_exclude_drops_treated_rows_from_train_and_test():
    rows = _rows()
    contacts = _contacts(("a", "2025-06-15", "treatment"), ("b", "2025-06-02", "control"))
    ts = treatment_split(rows, _split(rows), contacts, "exclude", CARRY, WINDOW)
    # a treated and b held out leave training (a model that saw one arm's outcomes would tier
    # past campaigns unevenly); c stays
    assert list(ts.split.train.index) == [13]
    assert list(ts.split.test.index) == []
    assert ts.excluded == {"train": 2, "test": 1}
    assert "2 training" in treatment_summary(ts, len(contacts), "exclude")


def test_keep_trains_on_treated_rows_but_tests_without_them():
    rows = _rows()
    contacts = _contacts(("a", "2025-06-15", "treatment"))
    ts = treatment_split(rows, _split(rows), contacts, "keep", CARRY, WINDOW)
    assert list(ts.split.train.index) == [10, 12, 13]
    assert list(ts.split.test.index) == []
    assert ts.excluded == {"train": 0, "test": 1}


def test_no_contacts_leave_the_split_as_it_was():
    rows = _rows()
    split = _split(rows)
    ts = treatment_split(rows, split, _contacts(), "exclude", CARRY, WINDOW)
    assert ts.split is split
    assert ts.excluded == {"train": 0, "test": 0}
    assert treatment_summary(ts, 0, "exclude") == "no contacts logged: no row is treated"


def test_flat_table_summary_says_contacts_cannot_be_linked():
    flat = _rows().assign(cutoff=pd.NaT)
    split = Split(flat.iloc[:3], flat.iloc[3:], [], 0)
    contacts = _contacts(("a", "2025-06-02", "treatment"))
    ts = treatment_split(flat, split, contacts, "exclude", CARRY, WINDOW)
    assert ts.split is split
    assert "cannot be linked" in treatment_summary(ts, 1, "exclude")


def test_unknown_policy_is_refused():
    rows = _rows()
    with pytest.raises(ValueError, match="treated_rows"):
        treatment_split(rows, _split(rows), _contacts(), "drop", CARRY, WINDOW)


def test_held_out_rows_leave_training_but_stay_in_the_test():
    rows = _rows()
    contacts = _contacts(("a", "2025-06-15", "control"))
    ts = treatment_split(rows, _split(rows), contacts, "exclude", CARRY, WINDOW)
    assert 10 not in ts.split.train.index  # a's training row: held out, so not trained on
    assert list(ts.split.test.index) == list(_split(rows).test.index)  # untreated: judged
    assert ts.excluded["test"] == 0
    kept = treatment_split(
        rows, _split(rows), contacts, "exclude", CARRY, WINDOW, control_rows="keep"
    )
    assert 10 in kept.split.train.index and kept.excluded == {"train": 0, "test": 0}


def test_a_winback_contact_treats_no_row():
    """A win-back offer reaches a customer after leaving: it cannot change a churn label, and
    the leaver's earlier rows (its churn) must stay in training."""
    contacts = _contacts(("c", "2025-06-20", "treatment"), ("b", "2025-06-20", "treatment"))
    contacts["kind"] = ["winback", "retention"]
    mask = _mark(contacts)
    assert mask.to_dict() == {10: False, 11: False, 12: True, 13: False}
    held = contacts.assign(group="control")
    assert treated_rows(_rows(), held, CARRY, WINDOW, group="control").mask.sum() == 1
