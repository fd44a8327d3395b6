"""Rows whose outcome a contact changed, so that training learns the risk without intervention.

A retention contact that worked turns a churner into a stayer: trained on that label, the model
learns that the customers the team already calls are safe, and ranks them down the next month.
A snapshot row (customer, cutoff) counts as treated when the customer had a `treatment`-group
contact with `ts` in [cutoff - carryover_days, cutoff + label_window_days): inside the label
window the contact shaped the outcome directly; in the carryover days before the cutoff its
effect still lasts. Control contacts (flagged, deliberately not contacted) are untreated: their
rows stay in the test metrics. They leave training too, though (`train.control_rows: exclude`,
with `treated_rows: exclude`): the champion later cuts past campaigns into risk tiers, and a
model that learned the control group's outcomes (but not the treated group's) sorts control
churners up and control stayers down, which biased the per-tier uplift (default world, low
tier: -2.9% estimated against +7.8% true).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from churnlight.features.params import TrainParams
from churnlight.models.train import Split

TREATMENT, CONTROL = "treatment", "control"
CONTACT_COLUMNS = ("customer_id", "ts", "group")
POLICIES = ("exclude", "keep")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Treated:
    """Which rows a contact treated (`mask`, aligned with the rows' index) and how many rows could
    not be linked because they have no cutoff (a flat table without dates)."""

    mask: pd.Series
    unlinkable: int


def treated_rows(
    rows: pd.DataFrame,
    contacts: pd.DataFrame,
    carryover_days: int,
    label_window_days: int,
    group: str = TREATMENT,
) -> Treated:
    """Mark the rows (customer_id, cutoff, ...) with a contact of `group` in
    [cutoff - carryover_days, cutoff + label_window_days); neither input is changed."""
    missing = [c for c in ("customer_id", "cutoff") if c not in rows.columns]
    missing += [f"contacts.{c}" for c in CONTACT_COLUMNS if c not in contacts.columns]
    if missing:
        raise KeyError(f"treated_rows: missing column(s) {missing}")
    mask = pd.Series(False, index=rows.index, name="treated")
    unlinkable = int(rows["cutoff"].isna().sum())
    # a win-back contact comes after the customer left: it cannot change a churn label
    keep = contacts["group"] == group
    if "kind" in contacts:
        keep &= contacts["kind"].astype(object) != "winback"
    treat = contacts.loc[keep, ["customer_id", "ts"]].dropna()
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
    """The split the models see: training without the contacted and held-out rows when `policy`
    is exclude, the test cutoff always without the treated ones (its metrics judge the risk
    without intervention)."""

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
    *,
    control_rows: str = "exclude",
) -> TreatedSplit:
    """`split` of the snapshots `df` without the rows a treatment contact changed: on the
    training side when `policy` is exclude (with the control group's rows when `control_rows`
    is exclude), always on the test side (treatment only). No treated row: the
    split's frames come back unchanged (the very same objects)."""
    if policy not in POLICIES:
        raise ValueError(f"train.treated_rows must be one of {POLICIES}, got {policy!r}")
    if control_rows not in POLICIES:
        raise ValueError(f"train.control_rows must be one of {POLICIES}, got {control_rows!r}")
    found = treated_rows(df, contacts, carryover_days, label_window_days)
    held = treated_rows(df, contacts, carryover_days, label_window_days, group=CONTROL)
    exclude_train = policy == "exclude"
    # training: neither arm's outcome (see the module docstring), unless control rows are kept
    contacted = found.mask | held.mask if control_rows == "exclude" else found.mask
    excluded = {
        "train": int(contacted.loc[split.train.index].sum()) if exclude_train else 0,
        "test": int(found.mask.loc[split.test.index].sum()),
    }
    out = split
    if excluded["train"] or excluded["test"]:
        tr = split.train[~contacted.loc[split.train.index]] if exclude_train else split.train
        te = split.test[~found.mask.loc[split.test.index]]
        out = replace(split, train=tr, test=te)
    return TreatedSplit(out, excluded, found.unlinkable)


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
        f"rows a campaign touched, excluded: {ts.excluded['train']} training (treated or held "
        f"out; train.treated_rows: {policy}), {ts.excluded['test']} test (treated)"
    )


def untouched_split(
    df: pd.DataFrame,
    split: Split,
    contacts: pd.DataFrame,
    train: TrainParams,
    label_window_days: int,
) -> TreatedSplit:
    """`treatment_split` under params.yaml's `train` policy, logged: the one call the train and
    evaluate stages share, so both see the same rows."""
    ts = treatment_split(
        df,
        split,
        contacts,
        train.treated_rows,
        train.treatment_carryover_days,
        label_window_days,
        control_rows=train.control_rows,
    )
    log.info(treatment_summary(ts, len(contacts), train.treated_rows))
    return ts
