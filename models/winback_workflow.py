"""What the winback stage computes, as one library call: the leavers at every cutoff and their
rows, the return model trained and judged out of time, and the list at the scoring cutoff.

Data that cannot support a part gets that part empty, with the reason in `missing` (no event
tables: no leavers to find; no return observed: no return model, the list goes by value).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnlight.features.params import WinbackParams
from churnlight.models.winback import (
    LIST_COLUMNS,
    OFFER,
    STATED,
    empty_list,
    leavers,
    rank_leavers,
    training_table,
)
from churnlight.models.winback_model import (
    ReturnModel,
    compare_orderings,
    fit_return_model,
    leaver_reasons,
    model_features,
    return_probabilities,
    split_leavers,
)

log = logging.getLogger(__name__)
VALUE, TIER = "_winback_value", "_winback_tier"  # the snapshot's value and tier (set by caller)


@dataclass(frozen=True)
class WinbackData:
    """The inputs: snapshots (features.parquet, plus `VALUE` and `TIER` columns), customers,
    own events, contacts, the cutoffs (the scoring one last), the data end, the churn
    definition, the churn champion (its raw pipeline and features) and the registry."""

    snapshots: pd.DataFrame
    customers: pd.DataFrame
    events: pd.DataFrame
    contacts: pd.DataFrame
    cutoffs: list[pd.Timestamp]
    data_end: pd.Timestamp
    definition: str
    inactivity_days: int
    churn_pipe: object
    churn_features: list[str]
    registry: pd.DataFrame


@dataclass(frozen=True)
class Settings:
    """What the winback stage takes from other sections: calibration as train does it
    (methods, folds, tie, floor), the explain stage's number of reasons, the seed."""

    calibration: tuple[str, ...]
    folds: int
    tie: float
    floor: float
    top_reasons: int
    seed: int


@dataclass
class WinbackResult:
    table: pd.DataFrame  # every leaver row (all cutoffs), with label and offer
    winback_list: pd.DataFrame  # `LIST_COLUMNS`, ranked
    metrics: dict
    model: ReturnModel | None = None
    missing: list[str] = field(default_factory=list)


def build_winback(data: WinbackData, wp: WinbackParams, how: Settings) -> WinbackResult:
    """Leavers, the return model and the win-back list (see the module docstring)."""
    tiers = ("platinum", "gold", "silver", "regular")
    if set(tiers) - set(wp.playbook):
        raise ValueError(f"winback.playbook needs a play for each of {list(tiers)}")
    missing: list[str] = []
    if data.events.empty:
        missing.append("no own events (transactions, activity): leavers cannot be found")
    left = leavers(
        data.customers,
        data.events,
        data.cutoffs,
        data.definition,
        data.inactivity_days,
        wp.lookback_days,
    )
    args = (data.snapshots, data.events, data.contacts, wp.window_days, data.data_end)
    table = training_table(left, *args)
    scoring_cutoff = max(data.cutoffs) if data.cutoffs else data.data_end
    current = table[table["cutoff"] == scoring_cutoff].reset_index(drop=True)
    labelled = table[table["label"].notna() & (table["cutoff"] < scoring_cutoff)]
    labelled = labelled.reset_index(drop=True)
    features = model_features(data.churn_features)
    metrics = _base_metrics(table, labelled, current, wp)
    rm = None
    if table.empty:
        missing.append("no leavers at any cutoff")
    elif labelled["label"].nunique() < 2:
        missing.append("no return observed within the window: no return model")
    else:
        rm, judged = _fit_and_judge(labelled, features, wp, how)
        metrics.update(judged)
    if not (table.empty or labelled.empty) and table[OFFER].sum() == 0:
        missing.append("no win-back offers logged: P(return | offer) = P(return | no offer)")
    metrics["missing"] = missing
    metrics["status"] = "ok" if rm is not None else missing[0]
    the_list = _the_list(current, rm, data, wp, how.top_reasons, scoring_cutoff)
    metrics["list"] = _list_summary(the_list)
    return WinbackResult(table, the_list, metrics, rm, missing)


def _base_metrics(
    table: pd.DataFrame, labelled: pd.DataFrame, current: pd.DataFrame, wp: WinbackParams
) -> dict:
    return {
        "status": "ok",
        "window_days": wp.window_days,
        "lookback_days": wp.lookback_days,
        "capacity": wp.capacity,
        "leaver_rows": len(table),
        "labelled_rows": len(labelled),
        "returned_rows": int(labelled["label"].sum()) if len(labelled) else 0,
        "offer_rows": int(table[OFFER].sum()) if len(table) else 0,
        "current_leavers": len(current),
    }


def _fit_and_judge(
    labelled: pd.DataFrame,
    features: list[str],
    wp: WinbackParams,
    how: Settings,
) -> tuple[ReturnModel, dict]:
    """Fit on the earlier cutoffs, judge on the newest labelled one(s), then refit on all the
    labelled rows for the list (the test only measures)."""
    split = split_leavers(labelled, wp.window_days, wp.test_months, how.seed)
    fit = {
        "folds": how.folds,
        "window_days": wp.window_days,
        "calibration": how.calibration,
        "tie": how.tie,
        "floor": how.floor,
        "seed": how.seed,
    }
    hyper = getattr(wp, wp.model).model_dump()
    out: dict = {"model": wp.model, "scheme": split.scheme}
    test = split.test.reset_index(drop=True)
    if split.train["label"].nunique() == 2 and len(test):
        rm = fit_return_model(split.train, features, wp.model, hyper, **fit)
        p_obs = rm.model.predict_proba(test[features])[:, 1]
        p_offer, _ = return_probabilities(rm, test)
        cost = test[TIER].map(lambda t: wp.playbook[t].cost).to_numpy(dtype=float)
        ev = p_offer * test[VALUE].to_numpy(dtype=float) - cost
        judged = test.assign(value=test[VALUE])
        out["orderings"] = compare_orderings(judged, p_obs, ev, wp.capacity)
        out["calibration"] = rm.calibration
        beats = [
            out["orderings"]["model"][m] is not None
            and all(
                (o[m] or 0) < out["orderings"]["model"][m]
                for n, o in out["orderings"].items()
                if n != "model"
            )
            for m in ("roc_auc", "value_won_back_at_capacity")
        ]
        out["model_beats_orderings"] = bool(all(beats))
    else:
        out["orderings"] = None
        log.warning("return model: the training or test cutoffs have one class; not judged")
    out.update(
        n_train=len(split.train),
        n_test=len(test),
        base_rate_train=round(float(split.train["label"].mean()), 4),
        base_rate_test=round(float(test["label"].mean()), 4) if len(test) else None,
        test_cutoffs=[str(pd.Timestamp(c).date()) for c in split.test_cutoffs],
    )
    final = fit_return_model(labelled, features, wp.model, hyper, **fit)
    out["final_calibration"] = final.calibration
    return final, out


def _the_list(
    current: pd.DataFrame,
    rm: ReturnModel | None,
    data: WinbackData,
    wp: WinbackParams,
    top_reasons: int,
    scoring_cutoff: pd.Timestamp,
) -> pd.DataFrame:
    if current.empty:
        return empty_list()
    x = current[data.churn_features]
    background = data.snapshots[data.churn_features].head(2000)
    reasons = leaver_reasons(data.churn_pipe, x, data.registry, top_reasons, background)
    keep = ["customer_id", "left_date", "days_since_leaving", "churn_kind", STATED]
    rows = current[keep].copy()
    rows["value"] = current[VALUE].to_numpy(dtype=float)
    rows["value_tier"] = current[TIER].to_numpy()
    for c in LIST_COLUMNS:
        if c.startswith("reason_"):
            rows[c] = reasons[c].to_numpy() if c in reasons else ""
    p_offer, p_none = return_probabilities(rm, current) if rm is not None else (None, None)
    play = dict(wp.playbook)
    return rank_leavers(rows, p_offer, p_none, play, scoring_cutoff, wp.no_offer_action)


def _list_summary(the_list: pd.DataFrame) -> dict:
    offered = the_list["owner"].ne("none")
    ev = the_list["expected_value"].to_numpy(dtype=float)
    return {
        "leavers": len(the_list),
        "worth_an_offer": int(offered.sum()),
        "value": round(float(the_list["value"].sum()), 2),
        "expected_value": round(float(np.nansum(ev[offered.to_numpy()])), 2),
        "by_tier": the_list["value_tier"].value_counts().to_dict(),
        "by_owner": the_list.loc[offered, "owner"].value_counts().to_dict(),
    }
