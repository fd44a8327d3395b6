"""Scoring and reasons on Spark (issue 18) give the single machine's probabilities, tiers and
reasons for the scoring snapshot: the capacity top-K is exactly the same customers."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import spark_available

from churnlight.features.params import parse_params
from churnlight.models.artifacts import load_champion
from churnlight.models.explain.workflow import reasons_for_tiers
from churnlight.models.segment import risk_tiers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(spark_available() is not None, reason=str(spark_available())),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_pipeline_params, run_stages):
    root = tmp_path_factory.mktemp("spark-score")
    params = make_pipeline_params()
    paths = run_stages(root, params, ("generate", "validate", "features", "train"))
    return paths, parse_params(params)


def test_the_segment_stage_on_spark_writes_the_same_segments(
    tmp_path, make_pipeline_params, run_stages, spark
):
    """With features.engine spark the segment stage scores on Spark (model broadcast, per
    partition) and writes the same segment files as on one machine."""
    from conftest import SPARK_TEST_CONF, SPARK_TEST_MASTER

    params = make_pipeline_params()
    stages = ("generate", "validate", "features", "train", "explain", "segment")
    paths = run_stages(tmp_path, params, stages)
    one = {f.name: pd.read_csv(f) for f in paths["segments"].glob("*.csv")}
    params["features"]["engine"] = "spark"
    params["spark"] = {"master": SPARK_TEST_MASTER, "conf": dict(SPARK_TEST_CONF)}
    run_stages(tmp_path, params, ("segment",))
    got = {f.name: pd.read_csv(f) for f in paths["segments"].glob("*.csv")}
    assert sorted(got) == sorted(one) and "high.csv" in one
    for name, frame in one.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)


@pytest.mark.parametrize("policy", ["capacity", "threshold"])
def test_spark_scores_tiers_and_reasons_equal_the_single_machines(trained, spark, policy):
    from churnlight.models.spark_score import reasons_for_tiers as spark_reasons
    from churnlight.models.spark_score import score_snapshot

    paths, params = trained
    sp, ep = params.segment, params.explain
    sp = sp.model_copy(update={"policy": policy})
    _, model, features = load_champion(paths["models"])
    path = paths["processed"] / "scoring.parquet"
    scoring = pd.read_parquet(path)
    registry = pd.read_csv(paths["processed"] / "feature_registry.csv")
    x = scoring[features]
    p = model.predict_proba(x)[:, 1]
    tiers = risk_tiers(p, sp.policy, **sp.tier_policy())
    acted = list(ep.reason_tiers)
    one = reasons_for_tiers(
        model.pipeline, x, scoring["customer_id"], tiers, acted, registry, ep.top_reasons, 1
    ).reasons

    frame = spark.read.parquet(path.resolve().as_uri())
    dtypes = scoring.dtypes.to_dict()
    scored = score_snapshot(spark, frame, model, features, dtypes, sp.policy, sp.tier_policy())
    got = scored.toPandas().set_index("customer_id").loc[scoring["customer_id"]]
    assert (got["p"].to_numpy() == p).all()  # the same model on the same rows, bit for bit
    assert (got["risk_tier"].to_numpy() == tiers).all()
    assert (tiers == "high").sum() > 0
    reasons = spark_reasons(
        spark, frame, scored, model, features, dtypes, acted, registry, ep.top_reasons
    ).toPandas()
    reasons = reasons.sort_values("customer_id", ignore_index=True)
    expected = one.sort_values("customer_id", ignore_index=True)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(reasons, expected, check_dtype=False)


def test_the_global_rank_is_each_rows_index_in_the_sorted_order_across_partitions(spark):
    """`global_rank` (partition offsets + each row's index in its partition, no RDD: it also
    runs on Spark Connect) numbers the rows of a sort spread over several partitions 0..n-1 in
    order; ties in p are broken by the customer id, as on one machine."""
    import numpy as np
    from pyspark.sql import functions as sf

    from churnlight.models.spark_score import global_rank

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in rng.permutation(5000)],
            "p": rng.integers(0, 50, 5000) / 50,  # many ties
        }
    )
    coalesce = "spark.sql.adaptive.coalescePartitions.enabled"
    before = spark.conf.get(coalesce)
    spark.conf.set(coalesce, "false")  # keep the sort's four ranges apart, however small
    try:
        ordered = spark.createDataFrame(frame).orderBy(sf.desc("p"), sf.asc("customer_id"))
        assert ordered.select(sf.spark_partition_id()).distinct().count() > 1
        got = global_rank(ordered).toPandas()
    finally:
        spark.conf.set(coalesce, before)
    expected = frame.sort_values(["p", "customer_id"], ascending=[False, True], ignore_index=True)
    got = got.sort_values("rank", ignore_index=True)
    assert list(got.columns) == ["customer_id", "p", "rank"]
    assert got["rank"].tolist() == list(range(len(frame)))
    pd.testing.assert_frame_equal(got[["customer_id", "p"]], expected)
