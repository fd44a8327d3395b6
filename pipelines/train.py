"""Stage `train`: fit logistic regression, a decision tree and LightGBM on older snapshots.

The champion is picked on a validation cutoff inside the training period (never on the test
cutoff), then every candidate is refitted on the whole training period.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import joblib
import pandas as pd
from churnlight.models.evaluate import score_metrics
from churnlight.models.train import fit_candidate, time_split, tree_rules
from churnlight.pipelines.common import (
    atomic_dir,
    load_params,
    setup_logging,
    write_json,
    write_text,
)

log = logging.getLogger("churnlight.train")


def model_params(train_params: dict, kind: str) -> dict:
    if kind == "tree":
        return {"max_depth": train_params["tree_max_depth"], **train_params.get("tree", {})}
    return dict(train_params.get(kind, {}))


def run(processed: Path, out: Path, params: dict) -> dict:
    seed = params["base"]["seed"]
    tp, fp = params["train"], params["features"]
    window = int(fp["label_window_days"])
    df = pd.read_parquet(processed / "features.parquet")
    registry = pd.read_csv(processed / "feature_registry.csv")
    features = registry["name"].tolist()
    split = time_split(df, window, int(tp["test_months"]), seed=seed)
    inner = time_split(split.train, window, 1, seed=seed)
    capacity = float(params["evaluate"]["capacity"])
    primary = params["evaluate"]["primary_metric"]
    validation, fitted, timing = {}, {}, {}
    for kind in tp["models"]:
        mp = model_params(tp, kind)
        t0 = time.perf_counter()
        probe = fit_candidate(kind, inner.train, features, mp, seed)
        p = probe.predict_proba(inner.test[features])[:, 1]
        validation[kind] = score_metrics(inner.test["label"].to_numpy(int), p, capacity)
        fitted[kind] = fit_candidate(kind, split.train, features, mp, seed)
        timing[kind] = round(time.perf_counter() - t0, 2)
        log.info(
            "%s: validation %s=%.4f roc_auc=%.4f (%.1f s)",
            kind,
            primary,
            validation[kind][primary],
            validation[kind]["roc_auc"],
            timing[kind],
        )
    lower_is_better = primary in {"log_loss", "brier", "ece"}
    champion = sorted(
        validation, key=lambda k: validation[k][primary], reverse=not lower_is_better
    )[0]
    summary = {
        "champion": champion,
        "primary_metric": primary,
        "validation": validation,
        "validation_cutoff": str(inner.test_cutoffs[0].date()),
        "test_cutoffs": [str(c.date()) for c in split.test_cutoffs],
        "train_cutoffs": sorted(str(c.date()) for c in split.train["cutoff"].unique()),
        "train_rows": len(split.train),
        "test_rows": len(split.test),
        "features": features,
        "fit_seconds": timing,
    }
    with atomic_dir(out) as tmp:
        for kind, pipe in fitted.items():
            joblib.dump(pipe, tmp / f"{kind}.joblib")
        if "tree" in fitted:
            write_text(tree_rules(fitted["tree"]), tmp / "tree_rules.txt")
        write_json(summary, tmp / "train_report.json")
    log.info("champion: %s (validation %s %.4f)", champion, primary, validation[champion][primary])
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--out", default="data/artifacts/models")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(Path(args.processed), Path(args.out), params)


if __name__ == "__main__":
    main()
