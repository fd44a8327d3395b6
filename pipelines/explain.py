"""Stage `explain`: SHAP contributions, in log-odds of the uncalibrated model.

Globally, on a sample of the scoring snapshot, for every candidate, with figures for the
champion; per customer, the champion's top reasons in English and Chinese for the risk tiers
someone will act on (`explain.reason_tiers`). The library (`churnlight.models.explain`) computes;
this stage reads the snapshot and models, writes the tables and figures, and logs.
"""

from __future__ import annotations

import logging

import pandas as pd

from churnlight.features.params import Params
from churnlight.models.artifacts import load_champion, load_model, load_train_report
from churnlight.models.explain.figures import check_figure_languages, save_figures
from churnlight.models.explain.workflow import (
    acted_reasons,
    background_sample,
    driver_figures,
    global_drivers,
)
from churnlight.pipelines.common import (
    Layout,
    atomic_dir,
    write_csv,
    write_parquet,
)

log = logging.getLogger("churnlight.explain")


def run(paths: Layout, params: Params) -> pd.DataFrame:
    processed, models, reports = paths.processed, paths.models, paths.reports
    seed, ep, sp = params.base.seed, params.explain, params.segment
    languages = list(ep.figure_languages)
    check_figure_languages(languages)
    champion, model, features = load_champion(models)
    registry = pd.read_csv(processed / "feature_registry.csv")
    scoring = pd.read_parquet(processed / "scoring.parquet")
    x = scoring[features]
    sample = background_sample(x, ep.global_sample, seed)
    kinds = load_train_report(models)["models"]
    candidates = ((kind, load_model(models, kind).pipeline) for kind in kinds)
    drivers = global_drivers(candidates, champion, sample, registry)
    write_csv(drivers.importance, reports / "importance.csv")
    write_csv(drivers.by_family, reports / "importance_by_family.csv")
    write_csv(drivers.by_model, reports / "importance_by_model.csv")
    figs = driver_figures(drivers, sample, registry, languages, ep.dependence_plots, seed)
    with atomic_dir(reports / "figures" / "shap") as tmp:
        save_figures(figs, tmp)

    p, acted = model.predict_proba(x)[:, 1], list(ep.reason_tiers)
    found = acted_reasons(
        model, x, scoring["customer_id"], p, registry, sp, acted, ep.top_reasons, ep.threads, sample
    )
    write_parquet(found.reasons, paths.explanations)
    shares = ", ".join(f"{r.family} {r.share:.0%}" for r in drivers.by_family.itertuples())
    seconds = found.wall_s["contributions"] + found.wall_s["sentences"]
    who = f"{len(found.reasons)} customers ({'+'.join(acted) or 'no tier'})"
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
