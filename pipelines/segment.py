"""Stage `segment`: score the newest snapshot, cut risk tiers, attach reasons and the playbook
action, rank by expected retained value, hold out the campaign's control group, check drift,
and write the files marketing opens.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from churnlight.features.params import ExportParams, Params
from churnlight.models.artifacts import load_champion, load_train_report
from churnlight.models.control import CONTROL, campaign_id
from churnlight.models.export import write_segment_files
from churnlight.models.segment import TIERS, feature_drift, pseudonymise, segment_customers
from churnlight.models.value import ValueColumnError, customer_value, value_tiers
from churnlight.pipelines.common import InputError, Layout, atomic_dir, rfm_scoring, write_csv

log = logging.getLogger("churnlight.segment")


def run(paths: Layout, params: Params) -> pd.DataFrame:
    sp, processed, models = params.segment, paths.processed, paths.models
    _, model, features = load_champion(models)
    scoring = pd.read_parquet(processed / "scoring.parquet")
    reasons = pd.read_parquet(paths.explanations)
    p = _probabilities(scoring, model, features, paths, params)  # calibrated
    registry = pd.read_csv(processed / "feature_registry.csv").set_index("name")
    value, tiers = _value(scoring, params)
    campaign = _campaign(scoring, sp.campaign_id)
    seg, summary = segment_customers(
        scoring,
        p,
        reasons,
        registry["description_en"],
        sp,
        value,
        tiers,
        campaign=campaign,
        seed=params.base.seed,
    )
    secret = _id_secret(params.export)
    if secret is not None:
        seg = pseudonymise(seg, secret)
    with atomic_dir(paths.segments) as tmp:
        write_segment_files(seg, summary, tmp)

    # drift: the training window against the scoring snapshot
    train_cutoffs = load_train_report(models)["train_cutoffs"]
    snapshots = pd.read_parquet(processed / "features.parquet", columns=["cutoff", *features])
    bins, threshold = sp.psi_bins, sp.psi_threshold
    psi = feature_drift(snapshots, train_cutoffs, scoring, features, bins, threshold)
    write_csv(psi, paths.reports / "drift.csv")
    counts = seg["risk_tier"].value_counts().reindex(list(TIERS), fill_value=0).to_dict()
    log.info(
        "segments %s (%d not worth contacting, %d held out as campaign %s's control group); "
        "expected retained value %.0f; %d feature(s) drifted (PSI > %.2f)",
        counts,
        int(seg["action"].eq(sp.no_contact_action).sum()),
        int(seg["group"].eq(CONTROL).sum()),
        campaign,
        seg["expected_retained_value"].clip(lower=0).sum(),  # NaN (no value) counts as 0
        int(psi["drifted"].sum()),
        threshold,
    )
    return seg


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


def _campaign(scoring: pd.DataFrame, configured: str | None) -> str:
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


def _value(scoring: pd.DataFrame, params: Params) -> tuple[np.ndarray | None, np.ndarray]:
    """The yearly customer value and the value tiers (data.value_column, segment.rfm_scoring)."""
    dp = params.data
    try:
        value = customer_value(scoring, dp.value_column, dp.value_multiplier)
    except ValueColumnError as e:
        raise InputError(str(e)) from e
    if value is None:
        log.warning("no customer value (no transactions): set data.value_column to rank by value")
    scoring_rule = rfm_scoring(params)
    tiers = value_tiers(scoring, value, scoring_rule, dict(params.features.rfm.tiers))
    log.info(
        "value tiers by %s scoring: %s", scoring_rule, pd.Series(tiers).value_counts().to_dict()
    )
    return value, tiers


def _id_secret(export: ExportParams) -> str | None:
    """The key for pseudonymous ids when export.hash_ids is on: from the environment only."""
    if not export.hash_ids:
        return None
    env = export.hash_secret_env
    secret = os.environ.get(env)
    if not secret:
        raise InputError(f"export.hash_ids is on but the environment variable {env} is not set")
    return secret
