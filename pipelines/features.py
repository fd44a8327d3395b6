"""Stage `features`: point-in-time snapshots with labels, the feature registry and the rules.

Writes data/processed/features.parquet (labelled snapshots), scoring.parquet (the newest
cutoff, no label), feature_registry.csv and features_report.json; from event tables both
Parquet files are in (customer_id, cutoff) order. The work is `churnlight.features.build`'s.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from churnlight.features.build import build_snapshots
from churnlight.pipelines.common import (
    atomic_dir,
    load_params,
    peak_rss_gb,
    setup_logging,
    write_json,
)

log = logging.getLogger("churnlight.features")


def run(interim: Path, out: Path, params: dict) -> dict:
    report = json.loads((interim / "contract_report.json").read_text())
    label_column = params["data"].get("label_column", "churn")
    with atomic_dir(out) as tmp:
        summary, registry = build_snapshots(interim, tmp, report, params["features"], label_column)
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--interim", default="data/interim")
    ap.add_argument("--out", default="data/processed")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(Path(args.interim), Path(args.out), params)


if __name__ == "__main__":
    main()
