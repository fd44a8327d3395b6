"""Scoring and reasons for the scoring snapshot on Spark (issue 18), as the single machine does.

The champion is shipped once and applied per partition (`mapInPandas`): a row's probability
depends on that row only, so the numbers are those of `model.predict_proba` on the whole table.
Risk tiers are cut on the *global* ranking (probability down, then customer id, the order of
scoring.parquet and so the single machine's stable tie-break): the capacity top-K is exactly the
single-machine path's customers. Reasons are computed per partition for the tiers someone acts
on, with the existing exact method (`models/explain`: TreeSHAP tables built once on the driver
and shipped; other models as `contributions`). Shipped: broadcast on a classic session; on Spark
Connect, which has no broadcast, pickled into the function's closure and sent with each plan
that uses it (gRPC's message limit, 128 MiB by default, bounds the model's size there).

pyspark is imported lazily (the `churnlight[spark]` extra).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnlight.features.spark_session import arrow_ready, is_connect
from churnlight.models.explain.contributions import (
    contributions,
    exact_contributions,
    tables_or_none,
)
from churnlight.models.explain.reasons import top_reasons_fast
from churnlight.models.segment import share_count

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def _typed(batch: pd.DataFrame, dtypes: dict[str, Any]) -> pd.DataFrame:
    """A batch as the snapshot file's pandas dtypes (Arrow batches lose pandas' metadata)."""
    return batch.astype({c: t for c, t in dtypes.items() if c in batch.columns})


class _Held:
    """A value with a broadcast's `.value`: what a Spark Connect function carries itself."""

    def __init__(self, value: Any) -> None:
        self.value = value


def shipped(spark: SparkSession, value: Any) -> Any:
    """`value` for the Python workers, read there as `.value`: broadcast once per executor on a
    classic session; on Spark Connect (no broadcast) in the closure of the function that reads
    it, pickled into each plan that runs the function and read by each task."""
    return _Held(value) if is_connect(spark) else spark.sparkContext.broadcast(value)


def probabilities(
    spark: SparkSession,
    scoring: DataFrame,
    model: Any,
    features: Sequence[str],
    dtypes: dict[str, Any],
) -> DataFrame:
    """(customer_id, p) of every row of `scoring`: the calibrated probability of the champion
    `model` on `features` (typed as `dtypes`, the snapshot file's), the model shipped once
    and applied per partition."""
    model_b = shipped(spark, model)
    feats = list(features)

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        m = model_b.value
        for b in batches:
            x = _typed(b[feats], dtypes)
            p = m.predict_proba(x)[:, 1] if len(x) else []
            yield pd.DataFrame({"customer_id": b["customer_id"].astype(object), "p": p})

    return scoring.select("customer_id", *feats).mapInPandas(
        predict, "customer_id string, p double"
    )


def probabilities_of_file(
    spark: SparkSession, uri: str, model: Any, features: Sequence[str], frame: pd.DataFrame
) -> np.ndarray:
    """`probabilities` of the snapshot file at `uri` (any URI Spark reads), in the row order
    of `frame` (that file on the driver: its customer ids and dtypes), for the segment stage."""
    dtypes = frame.dtypes.to_dict()
    scored = probabilities(spark, spark.read.parquet(uri), model, features, dtypes).toPandas()
    p = scored.set_index(scored["customer_id"].astype(str))["p"]
    out = p.reindex(frame["customer_id"].astype(str))
    if len(scored) != len(frame) or out.isna().any():
        raise ValueError(f"Spark scored {len(scored)} rows of {uri}, the driver read {len(frame)}")
    return out.to_numpy(dtype="float64")


def score_snapshot(
    spark: SparkSession,
    scoring: DataFrame,
    model: Any,
    features: Sequence[str],
    dtypes: dict[str, Any],
    policy: str,
    tier_policy: dict[str, float | None],
) -> DataFrame:
    """(customer_id, p, risk_tier) of every row of `scoring`: `probabilities`, and the tier
    from `risk_tiers`' rules on the global ranking."""
    from pyspark.sql import functions as sf

    scored = probabilities(spark, scoring, model, features, dtypes).localCheckpoint(eager=True)
    if policy == "threshold":
        hi, med = tier_policy["high_threshold"], tier_policy["medium_threshold"]
        if hi is None or med is None or med > hi:
            raise ValueError("the threshold policy needs medium_threshold <= high_threshold")
        tier = sf.when(sf.col("p") >= hi, "high").when(sf.col("p") >= med, "medium")
        return scored.withColumn("risk_tier", tier.otherwise("low"))
    if policy != "capacity":
        raise ValueError(f"unknown segment.policy {policy!r}: use 'capacity' or 'threshold'")
    n = scored.count()
    n_high = share_count(float(tier_policy["high_share"]), n)
    n_med = share_count(float(tier_policy["medium_share"]), n)
    ranked = global_rank(scored.orderBy(sf.desc("p"), sf.asc("customer_id")))
    tier = sf.when(sf.col("rank") < n_high, "high").when(sf.col("rank") < n_high + n_med, "medium")
    return ranked.withColumn("risk_tier", tier.otherwise("low")).drop("rank")


def global_rank(ordered: DataFrame) -> DataFrame:
    """`ordered` (a sorted DataFrame) with `rank`, each row's 0-based index in the order,
    computed where the rows are: a sort leaves partition i holding the i-th range of rows in
    order, and `monotonically_increasing_id` is (partition << 33) + the row's index in it, so a
    row's rank is the rows of the partitions before its own plus its index there (one small
    count per partition to the driver). `RDD.zipWithIndex` does the same on a classic session
    only; this also runs on Spark Connect. Kept once (the id is not deterministic)."""
    from pyspark.sql import functions as sf

    low = (1 << 33) - 1
    held = ordered.withColumn("_id", sf.monotonically_increasing_id()).localCheckpoint(eager=True)
    held = held.withColumn("_part", sf.shiftright("_id", 33))
    counts = dict(held.groupBy("_part").count().collect())
    offset, before = {}, 0
    for part in sorted(counts):
        offset[part], before = before, before + counts[part]
    lookup = sf.create_map(*[sf.lit(x) for kv in offset.items() for x in kv])
    start = lookup[sf.col("_part")] if offset else sf.lit(0)  # no rows: no partition to look up
    rank = (start.cast("long") + sf.col("_id").bitwiseAND(sf.lit(low))).alias("rank")
    return held.select(*ordered.columns, rank)


def reasons_for_tiers(
    spark: SparkSession,
    scoring: DataFrame,
    tiers: DataFrame,
    model: Any,
    features: Sequence[str],
    dtypes: dict[str, Any],
    reason_tiers: Sequence[str],
    registry: pd.DataFrame,
    k: int,
    background: pd.DataFrame | None = None,
) -> DataFrame:
    """The top-k reasons (the explain stage's table, `customer_id` first) of the rows of
    `scoring` whose tier in `tiers` is in `reason_tiers`, computed per partition."""
    from pyspark.sql import functions as sf

    pipe = model.pipeline
    lgbm = type(pipe.named_steps["model"]).__name__ == "LGBMClassifier"
    tables = tables_or_none(pipe.named_steps["model"]) if lgbm else None
    shared = shipped(spark, (pipe, tables, background, registry))
    feats = list(features)

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        p, t, bg, reg = shared.value
        for b in batches:
            if len(b):
                yield _reasons(b, p, t, bg, reg, feats, dtypes, k)

    acted = tiers.filter(sf.col("risk_tier").isin(list(reason_tiers))).select("customer_id")
    rows = scoring.select("customer_id", *feats).join(acted, "customer_id", "left_semi")
    head = rows.limit(2).toPandas()  # the reasons table's columns and types, from two rows
    if head.empty:
        head = scoring.select("customer_id", *feats).limit(2).toPandas()
    example = _reasons(head, pipe, tables, background, registry, feats, dtypes, k)
    schema = spark.createDataFrame(arrow_ready(example)).schema
    return rows.mapInPandas(lambda it: (arrow_ready(r) for r in explain(it)), schema)


def _reasons(batch, pipe, tables, background, registry, feats, dtypes, k) -> pd.DataFrame:
    x = _typed(batch[feats], dtypes).reset_index(drop=True)
    if tables is not None:
        contrib, _ = exact_contributions(pipe, x, num_threads=1, tables=tables)
    else:
        contrib, _ = contributions(pipe, x, background)
    out = top_reasons_fast(contrib, x, registry, k=k)
    out.insert(0, "customer_id", batch["customer_id"].astype(object).to_numpy())
    return out
