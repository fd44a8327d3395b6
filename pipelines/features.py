"""Stage `features`: point-in-time snapshots with labels, the feature registry and the rules.

Writes data/processed/features.parquet (labelled snapshots), scoring.parquet (the newest
cutoff, no label), feature_registry.csv and features_report.json; from event tables both
Parquet files are in (customer_id, cutoff) order. The work is `churnlight.features.build`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable

from churnlight.features.build import build_snapshots
from churnlight.features.params import Params
from churnlight.pipelines.common import Layout, atomic_dir, peak_rss_gb, write_json
from churnlight.pipelines.progress import progress

log = logging.getLogger("churnlight.features")


def run(paths: Layout, params: Params) -> dict:
    report = json.loads((paths.interim / "contract_report.json").read_text())
    label_column = params.data.label_column
    with atomic_dir(paths.processed) as tmp, contextlib.ExitStack() as bars:
        if params.features.engine == "spark":  # issue 18: the same definitions on Spark
            from churnlight.features.spark import build_snapshots_spark
            from churnlight.features.spark_session import spark_session

            with spark_session(params.spark.master, params.spark.conf) as spark:
                summary, registry = build_snapshots_spark(
                    spark,
                    paths.interim.resolve().as_uri(),
                    tmp,
                    report,
                    params.features,
                    label_column,
                )
        else:
            summary, registry = build_snapshots(
                paths.interim, tmp, report, params.features, label_column, _range_bar(bars)
            )
        registry.to_csv(tmp / "feature_registry.csv", index=False, encoding="utf-8")
        write_json(summary, tmp / "features_report.json")
    log.info(
        "features: %d labelled rows, %d scoring rows, %d features %s (churn rate %.3f); "
        "peak RSS %.2f GiB",
        summary["labelled_rows"],
        summary["scoring_rows"],
        summary["n_features"],
        summary["features_per_family"],
        summary["churn_rate"] or 0,
        peak_rss_gb(),
    )
    return summary


def _range_bar(bars: contextlib.ExitStack) -> Callable[[int, int], None]:
    """The library's (done, total) per customer range as a progress bar, opened on the first
    range (when the total is known) and closed with `bars`."""
    advance: list[Callable[[int], None]] = []

    def on_range(done: int, total: int) -> None:
        if not advance:
            bar = progress("features: customer ranges", total, unit="ranges")
            advance.append(bars.enter_context(bar))
        advance[0](1)

    return on_range
