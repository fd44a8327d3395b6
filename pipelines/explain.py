"""Stage `explain`: SHAP contributions, in log-odds of the uncalibrated model.

Globally, on a sample of the scoring snapshot, for every candidate (LightGBM through its native
TreeSHAP, the tree through shap.TreeExplainer, logistic regression through its exact linear
attribution) with figures for the champion; per customer, the champion's top reasons in English
and Chinese for the risk tiers someone will act on (`explain.reason_tiers`). Those can be a
third of a large base, so a LightGBM champion is explained there with the table-based exact
TreeSHAP (`exact_contributions`: the same values as `pred_contrib`, several times faster).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
from sklearn.pipeline import Pipeline

from churnlight.models.explain import (
    contributions,
    exact_contributions,
    figures,
    importance,
    top_reasons_fast,
)
from churnlight.models.segment import risk_tiers
from churnlight.pipelines.common import (
    atomic_dir,
    load_champion,
    load_model,
    load_params,
    load_train_report,
    setup_logging,
    write_parquet,
)

log = logging.getLogger("churnlight.explain")


def customer_reasons(
    pipe: Pipeline,
    x: pd.DataFrame,
    registry: pd.DataFrame,
    k: int,
    num_threads: int | None = None,
    background: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, float]:
    """Top-k reasons per row and the base value (log-odds of the uncalibrated model).

    Exact contributions whatever the model: LightGBM through per-leaf TreeSHAP tables (falling
    back to `pred_contrib` for boosters they do not cover), the others as `contributions` does,
    logistic regression centred on `background` (the population, not the at-risk rows)."""
    contrib, base = exact_contributions(pipe, x, num_threads=num_threads, background=background)
    return top_reasons_fast(contrib, x, registry, k=k), base


def run(processed: Path, models: Path, reports: Path, out: Path, params: dict) -> pd.DataFrame:
    seed = params["base"]["seed"]
    ep = params["explain"]
    champion, model, features = load_champion(models)
    registry = pd.read_csv(processed / "feature_registry.csv")
    scoring = pd.read_parquet(processed / "scoring.parquet")
    x = scoring[features]
    sample = x.sample(n=min(int(ep.get("global_sample", 2000)), len(x)), random_state=seed)

    per_model = []
    for kind in load_train_report(models)["models"]:
        contrib, _ = contributions(load_model(models, kind).pipeline, sample)
        feat, _ = importance(contrib, registry)
        per_model.append(feat.assign(model=kind))
        if kind == champion:
            champ_contrib = contrib
    feat_imp, fam_imp = importance(champ_contrib, registry)
    reports.mkdir(parents=True, exist_ok=True)
    feat_imp.to_csv(reports / "importance.csv", index=False)
    fam_imp.to_csv(reports / "importance_by_family.csv", index=False)
    pd.concat(per_model).to_csv(reports / "importance_by_model.csv", index=False)
    languages = list(ep.get("figure_languages", ["en", "zh"]))
    if "en" not in languages:
        raise ValueError(
            f"explain.figure_languages {languages} must include en: the model card looks the "
            "figures up by the English files (a zh/ figure only replaces its English one)"
        )
    with atomic_dir(reports / "figures" / "shap") as tmp:
        figures(
            champ_contrib,
            sample,
            feat_imp,
            fam_imp,
            registry,
            tmp,
            int(ep.get("dependence_plots", 4)),
            languages=languages,
        )

    # reasons for the customers someone will act on
    p = model.predict_proba(x)[:, 1]
    tiers = risk_tiers(p, params["segment"]["policy"], params["segment"])
    act = pd.Series(tiers, index=x.index).isin(ep.get("reason_tiers", ["high", "medium"]))
    t0 = time.perf_counter()
    threads = ep.get("threads")
    reasons, base = customer_reasons(
        model.pipeline,
        x[act],
        registry,
        int(ep["top_reasons"]),
        None if threads is None else int(threads),
        background=sample,
    )
    reasons.insert(0, "customer_id", scoring.loc[act, "customer_id"].to_numpy())
    write_parquet(reasons, out)
    log.info(
        "reasons for %d customers (%s) in %.1f s with %s; base value %.3f log-odds; "
        "family shares: %s",
        len(reasons),
        "+".join(ep.get("reason_tiers", [])),
        time.perf_counter() - t0,
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
