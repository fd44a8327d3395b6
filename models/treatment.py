"""Rows whose outcome a contact changed, so that training learns the risk without intervention.

A retention contact that worked turns a churner into a stayer: trained on that label, the model
learns that the customers the team already calls are safe, and ranks them down the next month.
A snapshot row (customer, cutoff) counts as treated when the customer had a `treatment`-group
contact with `ts` in [cutoff - carryover_days, cutoff + label_window_days): inside the label
window the contact shaped the outcome directly; in the carryover days before the cutoff its
effect still lasts. Control contacts (flagged, deliberately not contacted) are the untreated
comparison and never count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from churnlight.models.train import Split

TREATMENT = "treatment"
CONTACT_COLUMNS = ("customer_id", "ts", "group")
POLICIES = ("exclude", "keep")


@dataclass(frozen=True)
class Treated:
    """Which rows a contact treated (`mask`, aligned with the rows' index) and how many rows could
    not be linked because they have no cutoff (a flat table without dates)."""

    mask: pd.Series
    unlinkable: int


def treated_rows(
    rows: pd.DataFrame, contacts: pd.DataFrame, carryover_days: int, label_window_days: int
) -> Treated:
    """Mark the rows (customer_id, cutoff, ...) with a treatment contact in
    [cutoff - carryover_days, cutoff + label_window_days); neither input is changed."""
    missing = [c for c in ("customer_id", "cutoff") if c not in rows.columns]
    missing += [f"contacts.{c}" for c in CONTACT_COLUMNS if c not in contacts.columns]
    if missing:
        raise KeyError(f"treated_rows: missing column(s) {missing}")
    mask = pd.Series(False, index=rows.index, name="treated")
    unlinkable = int(rows["cutoff"].isna().sum())
    treat = contacts.loc[contacts["group"] == TREATMENT, ["customer_id", "ts"]].dropna()
    if treat.empty or unlinkable == len(rows):
        return Treated(mask, unlinkable)
    key = rows["customer_id"].astype(str).to_numpy()
    left = pd.DataFrame(
        {"pos": np.arange(len(rows)), "key": key, "cutoff": pd.to_datetime(rows["cutoff"])}
    ).dropna(subset=["cutoff"])
    right = pd.DataFrame(
        {"key": treat["customer_id"].astype(str).to_numpy(), "ts": pd.to_datetime(treat["ts"])}
    )
    pairs = left.merge(right, on="key")
    start = pairs["cutoff"] - pd.Timedelta(days=carryover_days)
    end = pairs["cutoff"] + pd.Timedelta(days=label_window_days)
    hit = pairs.loc[(pairs["ts"] >= start) & (pairs["ts"] < end), "pos"].unique()
    mask.iloc[hit] = True
    return Treated(mask, unlinkable)


@dataclass(frozen=True)
class TreatedSplit:
    """The split the models see: training without the treated rows when `policy` is exclude,
    the test cutoff always without them (its metrics judge the risk without intervention)."""

    split: Split
    excluded: dict[str, int]  # rows left out as treated, per side (train, test)
    unlinkable: int  # rows without a cutoff: no contact can be placed against them


def treatment_split(
    df: pd.DataFrame,
    split: Split,
    contacts: pd.DataFrame,
    policy: str,
    carryover_days: int,
    label_window_days: int,
) -> TreatedSplit:
    """`split` of the snapshots `df` without the rows a treatment contact changed: on the
    training side when `policy` is exclude, always on the test side. No treated row: the
    split's frames come back unchanged (the very same objects)."""
    if policy not in POLICIES:
        raise ValueError(f"train.treated_rows must be one of {POLICIES}, got {policy!r}")
    found = treated_rows(df, contacts, carryover_days, label_window_days)
    exclude_train = policy == "exclude"
    excluded = {
        "train": int(found.mask.loc[split.train.index].sum()) if exclude_train else 0,
        "test": int(found.mask.loc[split.test.index].sum()),
    }
    out = split
    if excluded["train"] or excluded["test"]:
        out = untreated(split, found.mask, train=exclude_train, test=True)
    return TreatedSplit(out, excluded, found.unlinkable)


def untreated(split: Split, treated: pd.Series, *, train: bool, test: bool) -> Split:
    """The split without the treated rows on the sides asked for (`train`: the training period,
    so also its tuning folds; `test`: the test cutoff's metrics)."""
    tr = split.train[~treated.loc[split.train.index]] if train else split.train
    te = split.test[~treated.loc[split.test.index]] if test else split.test
    return replace(split, train=tr, test=te)


def treatment_summary(ts: TreatedSplit, n_contacts: int, policy: str) -> str:
    """One log line: what the contact log did to the rows (train and evaluate say the same)."""
    if n_contacts == 0:
        return "no contacts logged: no row is treated"
    if ts.unlinkable:
        return (
            f"{n_contacts} contacts cannot be linked to {ts.unlinkable} rows without a cutoff "
            "(a flat table without dates): no row excluded as treated"
        )
    return (
        f"rows treated by a contact, excluded: {ts.excluded['train']} training "
        f"(train.treated_rows: {policy}), {ts.excluded['test']} test"
    )
