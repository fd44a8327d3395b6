"""Scoring a snapshot with the champion: the one path the explain and segment stages and
`churnlight score` share.

`score_snapshot` turns a scoring snapshot, the champion and the reasons into the segment table
and its summary (probabilities, risk tiers, value tiers, the playbook, the campaign's control
group, pseudonymous ids); the reasons come from `churnlight.models.explain.workflow.acted_reasons`,
the explain stage's call. `check_features` says, before anything is scored, whether a snapshot built
from new data has the features the model was trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnlight.features.params import SegmentParams
from churnlight.models.control import campaign_id
from churnlight.models.segment import pseudonymise, segment_customers
from churnlight.models.value import customer_value, value_tiers

log = logging.getLogger(__name__)

NUMERIC, CATEGORICAL = "numeric", "categorical"


class FeatureMismatchError(ValueError):
    """The snapshot's features are not those the model was trained on."""


@dataclass(frozen=True)
class ScoringPolicy:
    """What scoring reads of params.yaml, resolved by the caller: the segment section, the
    customer value (`data.value_column` x `data.value_multiplier`), the RFM scoring rule
    (`segment.rfm_scoring`, `auto` resolved) and tiers, the seed (`base.seed`) and the key of
    pseudonymous ids (None: ids as they are)."""

    segment: SegmentParams
    value_column: str | None
    value_multiplier: float
    rfm_rule: str
    rfm_tiers: dict
    seed: int
    id_secret: str | None = None


@dataclass(frozen=True)
class Scored:
    """The segment table and its summary, with what the logs and the summary page report."""

    probability: np.ndarray  # calibrated, in the scoring snapshot's row order
    segments: pd.DataFrame
    summary: pd.DataFrame
    campaign: str
    has_value: bool


def trained_features(model) -> dict[str, str]:
    """Feature name -> numeric or categorical, in the model's order, from the fitted
    preprocessing of a CalibratedModel (`.pipeline`) or a bare pipeline."""
    pipe = getattr(model, "pipeline", model)
    pre = pipe.named_steps["pre"]
    kinds: dict[str, str] = {}
    for name, _, columns in pre.transformers_:
        if name in ("num", "cat") and not isinstance(columns, str):
            for c in columns:
                kinds[str(c)] = NUMERIC if name == "num" else CATEGORICAL
    order = [str(c) for c in getattr(pre, "feature_names_in_", list(kinds))]
    return {c: kinds[c] for c in order if c in kinds}


def feature_kinds(scoring: pd.DataFrame, names: list[str]) -> dict[str, str]:
    """Numeric or categorical by dtype, as training splits them (`models.train.feature_columns`)."""
    return {
        c: NUMERIC if pd.api.types.is_numeric_dtype(scoring[c]) else CATEGORICAL
        for c in names
        if c in scoring.columns
    }


def feature_mismatch(built: dict[str, str], trained: dict[str, str]) -> dict[str, list[str]]:
    """Missing (trained, not built), extra (built, not trained) and retyped features."""
    return {
        "missing": [c for c in trained if c not in built],
        "extra": [c for c in built if c not in trained],
        "retyped": [
            f"{c} (trained {trained[c]}, now {built[c]})"
            for c in trained
            if c in built and built[c] != trained[c]
        ],
    }


def check_features(built: dict[str, str], trained: dict[str, str]) -> None:
    """Raise FeatureMismatchError naming every missing, extra or retyped feature: a model scores
    only the features it was fitted on, with the types it was fitted on."""
    found = feature_mismatch(built, trained)
    if not any(found.values()):
        return
    lines = [
        f"the new data's features do not match the model's ({len(trained)} features trained, "
        f"{len(built)} built from the data):"
    ]
    what = {
        "missing": "missing (the model needs them; a table or column is absent or empty)",
        "extra": "extra (built from the data, unknown to the model)",
        "retyped": "retyped",
    }
    for key, names in found.items():
        if names:
            lines.append(f"  {what[key]}: {', '.join(names)}")
    lines.append("  give the data the tables and columns the model was trained on, or retrain")
    raise FeatureMismatchError("\n".join(lines))


def campaign_for(scoring: pd.DataFrame, configured: str | None) -> str:
    """segment.campaign_id, else from the scoring snapshot's month; a flat table (no dates)
    gets one fixed id, so the same customers would be held out every time: warn."""
    cutoff = scoring["cutoff"].max() if "cutoff" in scoring and len(scoring) else None
    campaign = campaign_id(configured, cutoff)
    if configured is None and (cutoff is None or pd.isna(cutoff)):
        log.warning(
            "no scoring date: the campaign id is %r; set segment.campaign_id for each campaign, "
            "or the same customers are held out as the control group every time",
            campaign,
        )
    return campaign


def value_and_tiers(
    scoring: pd.DataFrame, policy: ScoringPolicy
) -> tuple[np.ndarray | None, np.ndarray]:
    """The yearly customer value (None: the data has none) and the value tiers. Raises
    `ValueColumnError` when data.value_column is not in the snapshot."""
    value = customer_value(scoring, policy.value_column, policy.value_multiplier)
    if value is None:
        log.warning("no customer value (no transactions): set data.value_column to rank by value")
    tiers = value_tiers(scoring, value, policy.rfm_rule, dict(policy.rfm_tiers))
    log.info(
        "value tiers by %s scoring: %s", policy.rfm_rule, pd.Series(tiers).value_counts().to_dict()
    )
    return value, tiers


def score_snapshot(
    model,
    scoring: pd.DataFrame,
    features: list[str],
    reasons: pd.DataFrame,
    descriptions: pd.Series,
    policy: ScoringPolicy,
    p: np.ndarray | None = None,
) -> Scored:
    """Score `scoring` with the calibrated `model` (or take its probabilities `p`), cut the
    risk and value tiers, attach `reasons` (by customer_id) and the playbook, hold out the
    campaign's control group and, with an id secret, pseudonymise the ids."""
    if p is None:
        p = model.predict_proba(scoring[features])[:, 1]
    value, tiers = value_and_tiers(scoring, policy)
    campaign = campaign_for(scoring, policy.segment.campaign_id)
    seg, summary = segment_customers(
        scoring,
        p,
        reasons,
        descriptions,
        policy.segment,
        value,
        tiers,
        campaign=campaign,
        seed=policy.seed,
    )
    if policy.id_secret is not None:
        seg = pseudonymise(seg, policy.id_secret)
    return Scored(np.asarray(p), seg, summary, campaign, value is not None)
