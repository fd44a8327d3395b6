"""Stage `explain`: SHAP contributions of the champion, globally (on a sample) and per customer
(top reasons in English and Chinese, for every customer in the scoring snapshot).

Contributions are in log-odds of the uncalibrated model.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from churnlight.models.explain import contributions, importance, top_reasons
from churnlight.pipelines.common import load_champion, load_params, setup_logging, write_parquet

log = logging.getLogger("churnlight.explain")


def run(processed: Path, models: Path, reports: Path, out: Path, params: dict) -> pd.DataFrame:
    seed = params["base"]["seed"]
    ep = params["explain"]
    champion, model, features = load_champion(models)
    pipe = model.pipeline  # explanations are in log-odds of the uncalibrated model
    registry = pd.read_csv(processed / "feature_registry.csv")
    scoring = pd.read_parquet(processed / "scoring.parquet")
    x = scoring[features]
    sample = x.sample(n=min(int(ep.get("global_sample", 2000)), len(x)), random_state=seed)
    contrib_sample, _ = contributions(pipe, sample)
    feat_imp, fam_imp = importance(contrib_sample, registry)
    reports.mkdir(parents=True, exist_ok=True)
    feat_imp.to_csv(reports / "importance.csv", index=False)
    fam_imp.to_csv(reports / "importance_by_family.csv", index=False)
    contrib, base = contributions(pipe, x)
    reasons = top_reasons(contrib, x, registry, k=int(ep["top_reasons"]))
    reasons.insert(0, "customer_id", scoring["customer_id"].to_numpy())
    write_parquet(reasons, out)
    log.info(
        "explained %d customers with %s (log-odds, base %.3f); family shares: %s",
        len(reasons),
        champion,
        base,
        ", ".join(f"{r.family} {r.share:.0%}" for r in fam_imp.itertuples()),
    )
    return reasons


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--models", default="data/artifacts/models")
    ap.add_argument("--reports", default="reports")
    ap.add_argument("--out", default="data/artifacts/explanations.parquet")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(Path(args.processed), Path(args.models), Path(args.reports), Path(args.out), params)


if __name__ == "__main__":
    main()
