"""Stage `segment`: score the newest snapshot, cut risk tiers, attach reasons and the playbook
action, rank by expected retained value, hold out the campaign's control group, check drift,
and write the files marketing opens.

The scoring is `churnlight.models.scoring.score_snapshot`, the same call `churnlight score`
makes on new data.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from churnlight.features.params import ExportParams, Params
from churnlight.models.artifacts import load_champion, load_train_report
from churnlight.models.control import CONTROL
from churnlight.models.export import SEGMENT_FILES, write_segment_files
from churnlight.models.scoring import Scored, ScoringPolicy, score_snapshot
from churnlight.models.segment import TIERS, pseudonymise
from churnlight.models.value import ValueColumnError
from churnlight.models.winback import hold_out_leavers, winback_campaign_id, winback_summary
from churnlight.pipelines.common import InputError, Layout, atomic_dir, rfm_scoring, write_csv
from churnlight.pipelines.drift import window_drift
from churnlight.pipelines.progress import progress

log = logging.getLogger("churnlight.segment")
WRITING = "writing the segment files"


def run(paths: Layout, params: Params) -> pd.DataFrame:
    sp, processed, models = params.segment, paths.processed, paths.models
    _, model, features = load_champion(models)
    scoring = pd.read_parquet(processed / "scoring.parquet")
    reasons = pd.read_parquet(paths.explanations)
    p = _probabilities(scoring, model, features, paths, params)  # calibrated
    registry = pd.read_csv(processed / "feature_registry.csv").set_index("name")
    scored = score(model, scoring, features, reasons, registry["description_en"], params, p)
    winback = _winback(paths, params, scoring, _id_secret(params.export))
    with atomic_dir(paths.segments) as tmp, progress(WRITING, SEGMENT_FILES) as advance:
        lake = params.export.lake_partitions
        write_segment_files(scored.segments, scored.summary, tmp, winback, advance, lake)

    # drift: the training window against the scoring snapshot
    train_cutoffs = load_train_report(models)["train_cutoffs"]
    psi = window_drift(processed / "features.parquet", train_cutoffs, scoring, features, sp)
    write_csv(psi, paths.reports / "drift.csv")
    log_segments(scored, params, int(psi["drifted"].sum()))
    return scored.segments


def policy(params: Params) -> ScoringPolicy:
    """What scoring reads of params.yaml (the segment stage's and `churnlight score`'s)."""
    dp = params.data
    return ScoringPolicy(
        segment=params.segment,
        value_column=dp.value_column,
        value_multiplier=dp.value_multiplier,
        rfm_rule=rfm_scoring(params),
        rfm_tiers=dict(params.features.rfm.tiers),
        seed=params.base.seed,
        id_secret=_id_secret(params.export),
    )


def score(model, scoring, features, reasons, descriptions, params: Params, p=None) -> Scored:
    """`score_snapshot` under the project's params (`p`: the probabilities, when already
    computed); a missing value column is bad input."""
    prm = policy(params)
    try:
        return score_snapshot(model, scoring, features, reasons, descriptions, prm, p)
    except ValueColumnError as e:
        raise InputError(str(e)) from e


def log_segments(scored: Scored, params: Params, drifted: int) -> None:
    sp, seg = params.segment, scored.segments
    counts = seg["risk_tier"].value_counts().reindex(list(TIERS), fill_value=0).to_dict()
    log.info(
        "segments %s (%d not worth contacting, %d held out as campaign %s's control group); "
        "expected retained value %.0f; %d feature(s) drifted (PSI > %.2f)",
        counts,
        int(seg["action"].eq(sp.no_contact_action).sum()),
        int(seg["group"].eq(CONTROL).sum()),
        scored.campaign,
        seg["expected_retained_value"].clip(lower=0).sum(),  # NaN (no value) counts as 0
        drifted,
        sp.psi_threshold,
    )


def _probabilities(scoring, model, features, paths: Layout, params: Params) -> np.ndarray:
    """The champion's probabilities; with features.engine spark, computed on Spark per
    partition (issue 18; the same numbers bit for bit, tests/pipeline/test_spark_score.py)."""
    if params.features.engine != "spark":
        return model.predict_proba(scoring[features])[:, 1]
    from churnlight.features.spark_session import spark_session
    from churnlight.models.spark_score import probabilities_of_file

    uri = (paths.processed / "scoring.parquet").resolve().as_uri()
    with spark_session(params.spark.master, params.spark.conf) as spark:
        return probabilities_of_file(spark, uri, model, features, scoring)


def _winback(
    paths: Layout, params: Params, scoring: pd.DataFrame, secret: str | None
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The win-back list (stage winback) with its own control group held out, and its summary."""
    path = paths.winback / "list.parquet"
    if not path.exists():
        log.warning("no win-back list (%s): run stage winback first", path)
        return None
    wp = params.winback
    cutoff = scoring["cutoff"].max() if "cutoff" in scoring and len(scoring) else None
    campaign = winback_campaign_id(wp.campaign_id, cutoff)
    wb = pd.read_parquet(path)
    wb = hold_out_leavers(wb, wp.control_share, campaign, params.base.seed, wp.no_offer_action)
    summary = winback_summary(wb, wp.no_offer_action)
    log.info(
        "win-back campaign %s: %d leavers, %d to offer, %d held out as its control group",
        campaign,
        len(wb),
        int(summary["offered"].sum()),
        int(summary["control"].sum()),
    )
    return (wb if secret is None else pseudonymise(wb, secret)), summary


def _id_secret(export: ExportParams) -> str | None:
    """The key for pseudonymous ids when export.hash_ids is on: from the environment only."""
    if not export.hash_ids:
        return None
    env = export.hash_secret_env
    secret = os.environ.get(env)
    if not secret:
        raise InputError(f"export.hash_ids is on but the environment variable {env} is not set")
    return secret
