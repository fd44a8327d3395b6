"""Stage `explain`: SHAP contributions, in log-odds of the uncalibrated model.

Globally, on a sample of the scoring snapshot, for every candidate, with figures for the
champion; per customer, the champion's top reasons in English and Chinese for the risk tiers
someone will act on (`explain.reason_tiers`). The library (`churnlight.models.explain`) computes;
this stage reads the snapshot and models, writes the tables and figures, and logs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from churnlight.models.explain.figures import check_figure_languages, save_figures
from churnlight.models.explain.workflow import driver_figures, global_drivers, reasons_for_tiers
from churnlight.models.segment import risk_tiers
from churnlight.pipelines.common import (
    atomic_dir,
    load_champion,
    load_model,
    load_params,
    load_train_report,
    setup_logging,
    write_csv,
    write_parquet,
)

log = logging.getLogger("churnlight.explain")


def run(processed: Path, models: Path, reports: Path, out: Path, params: dict) -> pd.DataFrame:
    seed, ep, sp = params["base"]["seed"], params["explain"], params["segment"]
    languages = ep["figure_languages"]
    check_figure_languages(languages)
    champion, model, features = load_champion(models)
    registry = pd.read_csv(processed / "feature_registry.csv")
    scoring = pd.read_parquet(processed / "scoring.parquet")
    x = scoring[features]
    sample = x.sample(n=min(int(ep.get("global_sample", 2000)), len(x)), random_state=seed)
    kinds = load_train_report(models)["models"]
    candidates = ((kind, load_model(models, kind).pipeline) for kind in kinds)
    drivers = global_drivers(candidates, champion, sample, registry)
    write_csv(drivers.importance, reports / "importance.csv")
    write_csv(drivers.by_family, reports / "importance_by_family.csv")
    write_csv(drivers.by_model, reports / "importance_by_model.csv")
    n_dependence = int(ep.get("dependence_plots", 4))
    figs = driver_figures(drivers, sample, registry, languages, n_dependence, seed)
    with atomic_dir(reports / "figures" / "shap") as tmp:
        save_figures(figs, tmp)

    tiers = risk_tiers(model.predict_proba(x)[:, 1], sp["policy"], sp)
    threads = None if ep.get("threads") is None else int(ep["threads"])
    ids, k = scoring["customer_id"], int(ep["top_reasons"])
    found = reasons_for_tiers(
        model.pipeline, x, ids, tiers, ep["reason_tiers"], registry, k, threads, background=sample
    )
    write_parquet(found.reasons, out)
    shares = ", ".join(f"{r.family} {r.share:.0%}" for r in drivers.by_family.itertuples())
    seconds = found.wall_s["contributions"] + found.wall_s["sentences"]
    who = f"{len(found.reasons)} customers ({'+'.join(ep['reason_tiers']) or 'no tier'})"
    log.info(
        "reasons for %s in %.1f s with %s (%s); base value %.3f log-odds; family shares: %s",
        who,
        seconds,
        champion,
        found.method,
        found.base,
        shares,
    )
    return found.reasons


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
