"""Stage `explain`: SHAP contributions, in log-odds of the uncalibrated model.

Globally, on a sample of the scoring snapshot, for every candidate (LightGBM through its native
TreeSHAP, the tree through shap.TreeExplainer, logistic regression through its exact linear
attribution) with figures for the champion; per customer, the champion's top reasons in English
and Chinese for the risk tiers someone will act on (`explain.reason_tiers`). Those can be a
third of a large base, so a LightGBM champion is explained there with the table-based exact
TreeSHAP (`customer_reasons`: the same values as `pred_contrib`, several times faster).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from churnlight.models.explain import (
    FIGURE_LANGUAGES,
    contributions,
    customer_reasons,
    figure_font,
    figure_rc,
    figures,
    importance,
)
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


def check_params(ep: dict) -> None:
    """Refuse a bad `explain` section before anything is computed or written."""
    languages = ep["figure_languages"]
    unknown = [lang for lang in languages if lang not in FIGURE_LANGUAGES]
    if unknown:
        raise ValueError(
            f"explain.figure_languages: no SHAP figures in {', '.join(map(str, unknown))}: "
            f"choose from {', '.join(FIGURE_LANGUAGES)}"
        )
    if "en" not in languages:
        raise ValueError(
            f"explain.figure_languages {languages} must include en: the model card looks the "
            "figures up by the English files (a zh/ figure only replaces its English one)"
        )


def save_figures(figs: dict[str, dict], folder: Path) -> list[str]:
    """Each language's figures as PNG: English in `folder`, the others under the same file
    names in `folder/<lang>`. Returns the files written, relative to `folder`."""
    import matplotlib

    written = []
    for lang, named in figs.items():
        sub = folder if lang == "en" else folder / lang
        sub.mkdir(parents=True, exist_ok=True)
        # saved in the font they were drawn in: tick labels are laid out again on saving
        with matplotlib.rc_context(figure_rc(figure_font(lang))):
            for name, fig in named.items():
                # tight: nothing cut at the edges; no software version: same inputs, same bytes
                fig.savefig(
                    sub / f"{name}.png", dpi=110, bbox_inches="tight", metadata={"Software": None}
                )
                written.append((sub / f"{name}.png").relative_to(folder).as_posix())
    return written


def run(processed: Path, models: Path, reports: Path, out: Path, params: dict) -> pd.DataFrame:
    seed = params["base"]["seed"]
    ep = params["explain"]
    check_params(ep)
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
    write_csv(feat_imp, reports / "importance.csv")
    write_csv(fam_imp, reports / "importance_by_family.csv")
    write_csv(pd.concat(per_model), reports / "importance_by_model.csv")
    figs = figures(
        champ_contrib,
        sample,
        feat_imp,
        fam_imp,
        registry,
        ep["figure_languages"],
        int(ep.get("dependence_plots", 4)),
        seed=seed,
    )
    with atomic_dir(reports / "figures" / "shap") as tmp:
        save_figures(figs, tmp)

    # reasons for the customers someone will act on
    p = model.predict_proba(x)[:, 1]
    tiers = risk_tiers(p, params["segment"]["policy"], params["segment"])
    act = pd.Series(tiers, index=x.index).isin(ep["reason_tiers"])
    threads = ep.get("threads")
    found = customer_reasons(
        model.pipeline,
        x[act],
        registry,
        int(ep["top_reasons"]),
        None if threads is None else int(threads),
        background=sample,
    )
    reasons = found.reasons
    reasons.insert(0, "customer_id", scoring.loc[act, "customer_id"].to_numpy())
    write_parquet(reasons, out)
    log.info(
        "reasons for %d customers (%s) in %.1f s with %s (%s); base value %.3f log-odds; "
        "family shares: %s",
        len(reasons),
        "+".join(ep["reason_tiers"]) or "no tier",
        found.wall_s["contributions"] + found.wall_s["sentences"],
        champion,
        found.method,
        found.base,
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
