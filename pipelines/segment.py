"""Stage `segment`: score the newest snapshot, cut risk tiers, attach reasons and the playbook
action, rank by expected retained value, check drift, and write the files marketing opens.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import pandas as pd

from churnlight.models.artifacts import load_champion, load_train_report
from churnlight.models.export import write_segment_files
from churnlight.models.segment import TIERS, feature_drift, pseudonymise, segment_customers
from churnlight.pipelines.common import atomic_dir, load_params, setup_logging, write_csv

log = logging.getLogger("churnlight.segment")


def run(
    processed: Path, models: Path, explanations: Path, out: Path, reports: Path, params: dict
) -> pd.DataFrame:
    sp = params["segment"]
    _, model, features = load_champion(models)
    scoring = pd.read_parquet(processed / "scoring.parquet")
    reasons = pd.read_parquet(explanations)
    p = model.predict_proba(scoring[features])[:, 1]  # calibrated
    registry = pd.read_csv(processed / "feature_registry.csv").set_index("name")
    seg, summary = segment_customers(scoring, p, reasons, registry["description_en"], sp)
    secret = _id_secret(params["export"])
    if secret is not None:
        seg = pseudonymise(seg, secret)
    with atomic_dir(out) as tmp:
        write_segment_files(seg, summary, tmp)

    # drift: the training window against the scoring snapshot
    train_cutoffs = load_train_report(models)["train_cutoffs"]
    snapshots = pd.read_parquet(processed / "features.parquet", columns=["cutoff", *features])
    bins, threshold = int(sp["psi_bins"]), float(sp["psi_threshold"])
    psi = feature_drift(snapshots, train_cutoffs, scoring, features, bins, threshold)
    write_csv(psi, reports / "drift.csv")
    counts = seg["risk_tier"].value_counts().reindex(list(TIERS), fill_value=0).to_dict()
    log.info(
        "segments %s; expected retained value %.0f; %d feature(s) drifted (PSI > %.2f)",
        counts,
        seg["expected_retained_value"].clip(lower=0).sum(),
        int(psi["drifted"].sum()),
        threshold,
    )
    return seg


def _id_secret(export: dict) -> str | None:
    """The key for pseudonymous ids when export.hash_ids is on: from the environment only."""
    if not export["hash_ids"]:
        return None
    env = export["hash_secret_env"]
    secret = os.environ.get(env)
    if not secret:
        raise SystemExit(f"export.hash_ids is on but the environment variable {env} is not set")
    return secret


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--models", default="data/artifacts/models")
    ap.add_argument("--explanations", default="data/artifacts/explanations.parquet")
    ap.add_argument("--out", default="reports/segments")
    ap.add_argument("--reports", default="reports")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(
        Path(args.processed),
        Path(args.models),
        Path(args.explanations),
        Path(args.out),
        Path(args.reports),
        params,
    )


if __name__ == "__main__":
    main()
