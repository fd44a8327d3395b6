"""What the explain stage computes, as library calls: the global drivers of every candidate
(importance per feature, family and model, from contributions on a sample) and the champion's
top reasons for the customers in the tiers someone acts on. bench/score.py times the same
`customer_reasons`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from churnlight.features.params import SegmentParams
from churnlight.models.explain.contributions import (
    contributions,
    exact_contributions,
    importance,
    tables_or_none,
)
from churnlight.models.explain.figures import figures
from churnlight.models.explain.reasons import top_reasons_fast
from churnlight.models.segment import risk_tiers

_METHODS = {
    "LGBMClassifier": "LightGBM pred_contrib",
    "DecisionTreeClassifier": "shap.TreeExplainer",
    "LogisticRegression": "linear attribution",
}


@dataclass
class CustomerReasons:
    """What `customer_reasons` found, and how."""

    reasons: pd.DataFrame  # the `top_reasons` table, indexed like the rows explained
    contributions: pd.DataFrame  # per row and feature, log-odds of the uncalibrated model
    base: float  # the base value the contributions add to
    method: str  # how the contributions were computed
    wall_s: dict[str, float] = field(default_factory=dict)  # tables, contributions, sentences
    cpu_s: dict[str, float] = field(default_factory=dict)  # the same in CPU seconds


def customer_reasons(
    pipe: Pipeline,
    x: pd.DataFrame,
    registry: pd.DataFrame,
    k: int,
    num_threads: int | None = None,
    background: pd.DataFrame | None = None,
    tables: bool = True,
) -> CustomerReasons:
    """Top-k reasons per row (in English and Chinese), with the contributions and base value
    behind them, for the explain stage and bench/score.py.

    Exact contributions whatever the model: LightGBM through per-leaf TreeSHAP tables
    (`num_threads` threads; `pred_contrib` for boosters the tables do not cover, or with
    `tables=False`), the others as `contributions` does, logistic regression centred on
    `background` (the population, not the at-risk rows). `wall_s` / `cpu_s` time the steps:
    `tables` (building them), `contributions` (including the tables) and `sentences`."""
    model = pipe.named_steps["model"]
    kind = type(model).__name__
    wall0, cpu0 = time.perf_counter(), time.process_time()
    built = tables_or_none(model) if tables and kind == "LGBMClassifier" else None
    wall1, cpu1 = time.perf_counter(), time.process_time()
    if built is not None:
        contrib, base = exact_contributions(pipe, x, num_threads=num_threads, tables=built)
        method = "exact TreeSHAP tables"
    else:
        contrib, base = contributions(pipe, x, background)
        method = _METHODS.get(kind, kind)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    reasons = top_reasons_fast(contrib, x, registry, k=k)
    wall3, cpu3 = time.perf_counter(), time.process_time()
    return CustomerReasons(
        reasons,
        contrib,
        base,
        method,
        {"tables": wall1 - wall0, "contributions": wall2 - wall0, "sentences": wall3 - wall2},
        {"tables": cpu1 - cpu0, "contributions": cpu2 - cpu0, "sentences": cpu3 - cpu2},
    )


@dataclass
class GlobalDrivers:
    """What drives churn over a sample of customers, for the champion and every candidate."""

    importance: pd.DataFrame  # the champion's mean |contribution| per feature (with family)
    by_family: pd.DataFrame  # the champion's per family, with each family's share
    by_model: pd.DataFrame  # every candidate's per feature, a `model` column naming it
    contributions: pd.DataFrame  # the champion's contributions on the sample (for the figures)


def global_drivers(
    candidates: Iterable[tuple[str, Pipeline]],
    champion: str,
    sample: pd.DataFrame,
    registry: pd.DataFrame,
) -> GlobalDrivers:
    """Contributions of each (name, pipeline) candidate on `sample` (each centred on the sample
    itself), turned into importance per feature and family. `candidates` may be a generator, so
    that only one model is loaded at a time; it must include the champion."""
    per_model, champ = [], None
    for kind, pipe in candidates:
        contrib, _ = contributions(pipe, sample)
        feat, fam = importance(contrib, registry)
        per_model.append(feat.assign(model=kind))
        if kind == champion:
            champ = (feat, fam, contrib)
    if champ is None:
        raise ValueError(f"the champion {champion!r} is not among the candidates explained")
    feat, fam, contrib = champ
    return GlobalDrivers(feat, fam, pd.concat(per_model), contrib)


def driver_figures(
    drivers: GlobalDrivers,
    sample: pd.DataFrame,
    registry: pd.DataFrame,
    languages: Sequence[str],
    n_dependence: int,
    seed: int,
) -> dict[str, dict]:
    """The champion's SHAP figures ({language: {file stem: Figure}}, see `figures.figures`)
    from the contributions `global_drivers` computed on `sample`; `seed` draws the beeswarm's
    jitter."""
    return figures(
        drivers.contributions,
        sample,
        drivers.importance,
        drivers.by_family,
        registry,
        languages,
        n_dependence=n_dependence,
        seed=seed,
    )


def reasons_for_tiers(
    pipe: Pipeline,
    x: pd.DataFrame,
    customer_ids: Sequence,
    tiers: Sequence[str],
    reason_tiers: Sequence[str],
    registry: pd.DataFrame,
    k: int,
    num_threads: int | None = None,
    background: pd.DataFrame | None = None,
) -> CustomerReasons:
    """`customer_reasons` for the rows of `x` whose risk tier (`tiers`, one per row) is in
    `reason_tiers`: the customers someone will act on. The reasons table starts with a
    `customer_id` column (from `customer_ids`, one per row of `x`); no such rows give an empty
    table with every column."""
    act = pd.Series(tiers, index=x.index).isin(list(reason_tiers)).to_numpy()
    found = customer_reasons(pipe, x[act], registry, k, num_threads, background=background)
    found.reasons.insert(0, "customer_id", pd.Series(customer_ids).to_numpy()[act])
    return found


# --- the acted-on tiers' reasons: the explain stage's and `churnlight score`'s one call ---


def background_sample(x: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The seeded sample of the scoring snapshot that centres linear attributions (and that
    the explain stage's global drivers use)."""
    return x.sample(n=min(n, len(x)), random_state=seed)


def acted_reasons(
    model,
    x: pd.DataFrame,
    customer_ids: pd.Series,
    p: np.ndarray,
    registry: pd.DataFrame,
    sp: SegmentParams,
    reason_tiers: list[str],
    k: int,
    threads: int | None,
    background: pd.DataFrame,
) -> CustomerReasons:
    """The top `k` reasons of the customers whose risk tier (by `p` and the segment policy)
    is one of `reason_tiers`: what the explain stage writes and the segment table reads."""
    tiers = risk_tiers(p, sp.policy, **sp.tier_policy())
    pipe = model.pipeline
    return reasons_for_tiers(
        pipe, x, customer_ids, tiers, reason_tiers, registry, k, threads, background=background
    )
