"""Stage `features`: point-in-time snapshots with labels, the feature registry and the rules.

Writes data/processed/features.parquet (labelled snapshots), scoring.parquet (the newest
cutoff, no label), feature_registry.csv and features_report.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd
from churnlight.features.build import (
    FeatureConfig,
    add_profile,
    compute_aggregates,
    derive_features,
    make_cutoffs,
    profile_columns,
    three_colour,
)
from churnlight.features.contract import parse_label
from churnlight.features.registry import build_registry, registry_frame
from churnlight.pipelines.common import atomic_dir, load_params, setup_logging, write_json

log = logging.getLogger("churnlight.features")
KEYS = ["customer_id", "cutoff"]


def load_lexicon(path: str | Path | None = None) -> pd.DataFrame:
    """The bilingual phrase list: edit features/lexicon.csv, or point features.lexicon at yours."""
    if path:
        return pd.read_csv(path, dtype=str)
    with (
        resources.files("churnlight.features").joinpath("lexicon.csv").open(encoding="utf-8") as fh
    ):
        return pd.read_csv(fh, dtype=str)


def build_event_features(
    interim: Path, report: dict, params: dict, threads: int | None = None
) -> tuple[pd.DataFrame, list]:
    cfg = FeatureConfig.from_params(params)
    as_of = pd.Timestamp(report["as_of"])
    cutoffs = make_cutoffs(
        as_of, params.get("first_cutoff"), params.get("last_cutoff"), int(params["step_months"])
    )
    data_end = as_of + pd.Timedelta(days=1)
    present = {p.stem for p in interim.glob("*.parquet")}
    con = duckdb.connect()
    if params.get("duckdb_memory_limit"):
        con.execute(f"SET memory_limit = '{params['duckdb_memory_limit']}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    for name in present:
        path = (interim / f"{name}.parquet").as_posix()
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    t0 = time.perf_counter()
    agg = compute_aggregates(
        con, present, cutoffs, data_end, cfg, load_lexicon(params.get("lexicon"))
    )
    log.info(
        "aggregated %d snapshot rows over %d cutoffs in %.1f s",
        len(agg),
        len(cutoffs),
        time.perf_counter() - t0,
    )
    tables = {t: t in present for t in ("activity", "transactions", "feedback", "market")}
    feats = derive_features(agg, cfg, tables)
    customers = con.execute("SELECT * FROM customers").df()
    prof = profile_columns(customers)
    feats = add_profile(feats, customers, prof)
    families = dict(report["families"])
    specs = build_registry(list(cfg.windows_days), families, prof, present)
    feats = pd.concat([feats, three_colour(feats, cfg.signals)], axis=1)
    return feats, specs


def build_flat_features(
    interim: Path, report: dict, data_params: dict
) -> tuple[pd.DataFrame, list]:
    """Flat labelled table: profile features only, one snapshot at the data end."""
    label = data_params.get("label_column", "churn")
    customers = pd.read_parquet(interim / "customers.parquet")
    prof = profile_columns(customers, label)
    base = pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "cutoff": pd.Timestamp(report["as_of"]) + pd.Timedelta(days=1),
            "label": parse_label(customers[label]).astype("Int8"),
        }
    )
    feats = add_profile(base, customers, prof)
    feats["rule_colour"], feats["rule_families"], feats["rule_score"] = "green", 0, 0.0
    specs = build_registry([], {"profile": True}, prof)
    return feats, specs


def run(interim: Path, out: Path, params: dict) -> dict:
    report = json.loads((interim / "contract_report.json").read_text())
    fparams = params["features"]
    if report["mode"] == "flat":
        feats, specs = build_flat_features(interim, report, params["data"])
        labelled = feats
        scoring = feats[feats["label"] == 0].drop(columns="label")
    else:
        feats, specs = build_event_features(interim, report, fparams)
        last = feats["cutoff"].max()
        labelled = feats[feats["label"].notna()]
        scoring = feats[feats["cutoff"] == last].drop(columns="label")
    reg = registry_frame(specs)
    missing = [n for n in reg["name"] if n not in feats.columns]
    if missing:
        raise RuntimeError(f"registered features not computed: {missing}")
    per_family = reg["family"].value_counts().to_dict()
    summary = {
        "mode": report["mode"],
        "families": report["families"],
        "features_per_family": per_family,
        "n_features": len(reg),
        "labelled_rows": len(labelled),
        "scoring_rows": len(scoring),
        "cutoffs": sorted(str(c.date()) for c in labelled["cutoff"].unique()),
        "scoring_cutoff": str(scoring["cutoff"].max().date()) if len(scoring) else None,
        "churn_rate": float(labelled["label"].mean()) if len(labelled) else None,
        "rule_colours": scoring["rule_colour"].value_counts(normalize=True).round(4).to_dict(),
    }
    with atomic_dir(out) as tmp:
        labelled.to_parquet(tmp / "features.parquet", index=False)
        scoring.to_parquet(tmp / "scoring.parquet", index=False)
        reg.to_csv(tmp / "feature_registry.csv", index=False, encoding="utf-8")
        write_json(summary, tmp / "features_report.json")
    log.info(
        "features: %d labelled rows, %d scoring rows, %d features %s (churn rate %.3f)",
        len(labelled),
        len(scoring),
        len(reg),
        per_family,
        summary["churn_rate"] or 0,
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
