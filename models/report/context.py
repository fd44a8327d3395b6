"""The model card's context: plain numbers, words and lists for the template, built from what
the pipeline wrote (`CardInputs`, already read by the report stage), in the card's language.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnlight.features.params import Params
from churnlight.features.registry import FAMILY_NAMES, PROFILE_WORDS_ZH
from churnlight.models.report.campaigns import campaign_context, chart_rows
from churnlight.models.report.charts import (
    calibration_chart,
    campaign_chart,
    chart_language,
    gains_chart,
)
from churnlight.models.report.format import data_uri, descriptions
from churnlight.models.report.tree_rules import tree_rules_summary
from churnlight.models.report.winback import winback_context
from churnlight.models.segment import TIERS
from churnlight.models.train import RANDOM_HOLD_OUT

# the card's messages share one logger, whichever module writes them
log = logging.getLogger("churnlight.report")

# the charts the card draws itself; every other figure comes from reports/figures/shap
CHARTS = ("calibration", "gains", "campaigns")


@dataclass
class CardInputs:
    """Everything the card is built from, already read by the stage (no paths in here)."""

    params: Params
    contract: dict  # data/interim/contract_report.json
    features_report: dict  # data/processed/features_report.json
    metrics: dict  # reports/metrics.json
    registry: pd.DataFrame  # data/processed/feature_registry.csv
    importance: pd.DataFrame  # reports/importance.csv
    importance_by_family: pd.DataFrame  # reports/importance_by_family.csv
    summary: pd.DataFrame  # reports/segments/summary.csv
    scored: pd.DataFrame  # reports/segments/scored_customers.parquet
    slices: pd.DataFrame  # reports/metrics_by_slice.csv
    drift: pd.DataFrame  # reports/drift.csv
    calibration: pd.DataFrame  # reports/plots/calibration.csv
    gains: pd.DataFrame  # reports/plots/gains.csv
    campaigns: dict = field(default_factory=dict)  # reports/campaigns.json
    campaign_table: pd.DataFrame | None = None  # reports/campaigns.csv
    winback_list: pd.DataFrame | None = None  # data/artifacts/winback/list.parquet, if any
    train_report: dict = field(default_factory=dict)  # data/artifacts/models/train_report.json
    tree_rules: str | None = None  # data/artifacts/models/tree_rules.txt
    figures: dict[str, bytes] = field(default_factory=dict)  # reports/figures/shap/<name>.png
    version: dict = field(default_factory=dict)  # commit, params_hash, data_hash
    generated: str = ""  # the date the card is written
    synthetic: bool = False  # the data is the generate stage's synthetic world
    source: str = ""  # data.source: the folder the data came from
    # each figure's file as seen from the Markdown card (default figures/shap/<name>.png; a
    # Chinese card may point at figures/shap/zh/<name>.png)
    figure_files: dict[str, str] = field(default_factory=dict)


# --- pieces of the context ---------------------------------------------------------------------


def translate_reasons(reasons: list[str], registry: pd.DataFrame, lang: str) -> list[str]:
    """Reasons named by their English description (summary.csv) in the card's language."""
    if lang == "en":
        return list(reasons)
    en_to = dict(zip(registry["description_en"], registry["description_zh"], strict=True))
    return [en_to.get(r, r) for r in reasons]


def weighted_reasons(summary: pd.DataFrame, tier: str, top: int = 3) -> list[str]:
    """The most common reasons in a risk tier, each value-tier row weighted by its customers."""
    rows = summary[summary["risk_tier"] == tier]
    weights: dict[str, float] = {}
    for reasons, n in zip(rows["top_reasons"].fillna(""), rows["customers"], strict=True):
        for i, reason in enumerate(filter(None, str(reasons).split("; "))):
            # the first reason of a row counts a little more than the third
            weights[reason] = weights.get(reason, 0.0) + float(n) * (1.0 - 0.1 * i)
    order = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
    return [r for r, _ in order[:top]]


def actions_due(scored: pd.DataFrame) -> list[dict]:
    """Customers to contact per owner and deadline (tier by tier), soonest deadline first."""
    if scored.empty or "owner" not in scored:
        return []
    todo = scored[scored["owner"].astype(str) != "none"]
    g = (
        todo.groupby(["owner", "due_within_hours", "risk_tier"], observed=True)
        .size()
        .rename("count")
        .reset_index()
    )
    g["tier_order"] = g["risk_tier"].map({t: i for i, t in enumerate(TIERS)})
    g = g.sort_values(["tier_order", "due_within_hours", "owner"])
    return [
        {
            "owner": str(r.owner),
            "hours": int(r.due_within_hours),
            "tier": r.risk_tier,
            "count": int(r.count),
        }
        for r in g.itertuples()
    ]


def probability_trust(m: dict, champion: str, trusted: float, rough: float, shift: float) -> dict:
    """Section 5's answer, from the numbers: `yes` when the calibrated error is at most
    `trusted` and the test churn rate is within `shift` of training's; `no` above `rough`;
    `roughly` between, or when the base rate moved (calibration learnt the old rate)."""
    c = m[champion]
    moved = m.get("base_rate_shift")
    shifted = moved is not None and abs(moved) > shift
    if c["ece"] > rough:
        verdict = "no"
    elif c["ece"] > trusted or shifted:
        verdict = "roughly"
    else:
        verdict = "yes"
    return {
        "verdict": verdict,
        "ece": c["ece"],
        "ece_before": c["ece_uncalibrated"],
        "method": (m.get("calibration") or {}).get(champion, "unknown"),
        "shifted": shifted,
        "shift": moved,
        "train_rate": m.get("train_churn_rate"),
        "test_rate": m.get("test_churn_rate"),
        "trusted": trusted,
        "rough": rough,
        "max_shift": shift,
    }


def no_contact(scored: pd.DataFrame, action: str) -> dict:
    """How many scored customers are not worth an action: it costs more than it is expected
    to keep."""
    if scored.empty or "action" not in scored:
        return {"count": 0}
    return {"count": int((scored["action"].astype(str) == action).sum())}


def control_group(scored: pd.DataFrame, share: float) -> dict:
    """How many customers flagged for action are held out as the campaign's control group
    (`group` == "control"), of how many in the campaign, and the campaign's id."""
    if scored.empty or "group" not in scored:
        return {"count": 0, "campaign": "", "candidates": 0, "share": share}
    group = scored["group"].astype(str)
    members = scored[group.isin(["treatment", "control"])]
    campaign = str(members["campaign_id"].iloc[0]) if len(members) else ""
    return {
        "count": int((group == "control").sum()),
        "candidates": len(members),
        "campaign": campaign,
        "share": share,
    }


def registry_words(lang: str) -> dict[str, str]:
    """The card's words that the feature registry defines: the family names, and in Chinese the
    slice dimensions that are customer attributes (region, industry)."""
    words = dict(FAMILY_NAMES.get(lang, FAMILY_NAMES["en"]))
    if lang == "zh":
        words.update({k: PROFILE_WORDS_ZH[k] for k in ("region", "industry")})
    return words


def family_drivers(
    importance: pd.DataFrame, registry: pd.DataFrame, lang: str, per_family: int = 3
) -> dict[str, list[str]]:
    desc = descriptions(registry, lang)
    out: dict[str, list[str]] = {}
    for fam, g in importance.groupby("family", sort=False):
        top = g.sort_values("mean_abs_shap", ascending=False).head(per_family)
        out[str(fam)] = [desc.get(n, n) for n in top["name"]]
    return out


def tier_stories(
    summary: pd.DataFrame, scored: pd.DataFrame, registry: pd.DataFrame, lang: str
) -> list[dict]:
    """The numbers behind a short business narrative per risk tier (the template words it)."""
    total = max(len(scored), int(summary["customers"].sum()) if len(summary) else 0, 1)
    stories = []
    for tier in TIERS:
        rows = summary[summary["risk_tier"] == tier]
        if rows.empty:
            continue
        n = int(rows["customers"].sum())
        top_value = rows.sort_values("value_at_risk", ascending=False).iloc[0]
        reasons = weighted_reasons(summary, tier)
        part = scored[scored["risk_tier"] == tier] if "risk_tier" in scored else scored.iloc[:0]
        kind, kind_share = None, None
        if reasons and "churn_kind" in part and len(part):
            kinds = part["churn_kind"].value_counts(normalize=True)
            kind, kind_share = str(kinds.index[0]), float(kinds.iloc[0])
        plans, skipped = [], 0
        if {"owner", "due_within_hours", "value_tier"} <= set(part.columns) and len(part):
            acted = part["owner"].astype(str) != "none"
            held = (
                part["group"].astype(str).eq("control")
                if "group" in part
                else pd.Series(False, index=part.index)
            )
            # in a tier someone acts on, owner "none" means: not worth contacting (or held out)
            skipped = int((~acted & ~held).sum()) if acted.any() else 0
            g = part[acted].groupby(["owner", "due_within_hours"], observed=True)
            for (owner, hours), grp in sorted(g, key=lambda kv: (-len(kv[1]), str(kv[0][0]))):
                tiers = [
                    t
                    for t in ("platinum", "gold", "silver", "regular")
                    if t in set(grp["value_tier"])
                ]
                plans.append(
                    {
                        "owner": str(owner),
                        "hours": int(hours),
                        "count": len(grp),
                        "value_tiers": tiers,
                    }
                )
        stories.append(
            {
                "tier": tier,
                "customers": n,
                "share": n / total,
                "mean_probability": float(
                    (rows["mean_probability"] * rows["customers"]).sum() / max(n, 1)
                ),
                "expected_churners": float(rows["expected_churners"].sum()),
                "value_at_risk": float(rows["value_at_risk"].sum()),
                "top_value_tier": str(top_value["value_tier"]),
                "top_value_tier_customers": int(top_value["customers"]),
                "top_value_tier_value": float(top_value["value_at_risk"]),
                "reasons": translate_reasons(reasons, registry, lang),
                "kind": kind,
                "kind_share": kind_share,
                "skipped": skipped,
                "plans": plans,
            }
        )
    return stories


def weak_slices(
    slices: pd.DataFrame, overall_auc: float, auc_margin: float
) -> tuple[list[dict], list[dict]]:
    """All slices, and those clearly worse than average: ROC-AUC at least `auc_margin` below the
    champion's overall ROC-AUC on the same test cutoff (ranking quality does not depend on how
    common churn is in the slice, unlike recall at a fixed capacity)."""
    if slices is None or slices.empty:
        return [], []
    rows = []
    for r in slices.itertuples():
        gap = float(overall_auc) - float(r.roc_auc)
        rows.append(
            {
                "slice": str(r.slice),
                "value": str(r.value),
                "rows": int(r.rows),
                "churn_rate": float(r.churn_rate),
                "roc_auc": float(r.roc_auc),
                "pr_auc": float(r.pr_auc),
                "recall": float(r.recall_at_capacity),
                "weak": gap >= auc_margin,
                "gap": gap,
            }
        )
    weak = sorted((r for r in rows if r["weak"]), key=lambda r: -r["gap"])
    return rows, weak


def drifted_features(
    drift: pd.DataFrame, registry: pd.DataFrame, threshold: float, lang: str
) -> list[dict]:
    if drift is None or drift.empty:
        return []
    desc = descriptions(registry, lang)
    fam = dict(zip(registry["name"], registry["family"], strict=True))
    d = drift[drift["psi"] > threshold].sort_values("psi", ascending=False)
    return [
        {"name": n, "description": desc.get(n, n), "family": fam.get(n, ""), "psi": float(v)}
        for n, v in zip(d["name"], d["psi"], strict=True)
    ]


def figure_groups(names: Iterable[str]) -> list[list[str]]:
    """Figures in reading order, grouped: the wide SHAP figures alone (full width), then the
    family and dependence figures side by side; unknown figures last."""
    names = list(names)
    alone = [[n] for n in ("shap_bar", "shap_beeswarm") if n in names]
    small = [n for n in ("shap_families",) if n in names]
    small += sorted(n for n in names if n.startswith("shap_dependence_"))
    rest = sorted(n for n in names if not any(n in g for g in [*alone, small]))
    return [g for g in [*alone, small, rest] if g]


def card_language(params: Params) -> str:
    """`report.language`: the card is written in English or Chinese."""
    return params.report.language


def figure_sources(
    names: Iterable[str], chinese: Iterable[str], lang: str, folder: str = "figures/shap"
) -> dict[str, str]:
    """Each SHAP figure's file, as seen from the Markdown card: <folder>/<name>.png, or for a
    Chinese card <folder>/zh/<name>.png where explain drew one (`chinese`: the names it drew in
    Chinese), so the figures speak the card's language. Figures left in English on a Chinese
    card are named in one warning."""
    zh = set(chinese) if lang == "zh" else set()
    files = {n: f"{folder}/zh/{n}.png" if n in zh else f"{folder}/{n}.png" for n in names}
    english_only = [n for n in files if lang == "zh" and n not in zh]
    if english_only:
        log.warning(
            "model card (zh): no Chinese version of %d SHAP figure(s) in %s/zh (explain writes "
            "them when a CJK font such as fonts-noto-cjk is installed): using the English ones "
            "for %s",
            len(english_only),
            folder,
            ", ".join(english_only),
        )
    return files


def _images(inp: CardInputs, lang: str, cutoff_p: float | None) -> tuple[dict, dict]:
    """The images by name: data URIs for the HTML card (the charts, drawn here, and the SHAP
    figures), and the SHAP figures' files for the Markdown card."""
    capacity = float(inp.metrics["capacity"])
    rules_recall = inp.metrics.get("rules", {}).get("recall_at_capacity")
    chart_lang = chart_language(lang)  # once: one warning, not one per chart
    charts = {
        "calibration": calibration_chart(inp.calibration, capacity, cutoff_p, chart_lang)
        if len(inp.calibration)
        else None,
        "gains": gains_chart(inp.gains, capacity, rules_recall, chart_lang)
        if len(inp.gains)
        else None,
    }
    bars = chart_rows(inp.campaign_table)
    charts["campaigns"] = campaign_chart(bars, chart_lang) if len(bars) else None
    images_html = {n: data_uri(b) for n, b in charts.items() if b is not None}
    images_html.update({n: data_uri(b) for n, b in inp.figures.items()})
    images_md = {n: inp.figure_files.get(n, f"figures/shap/{n}.png") for n in inp.figures}
    return images_html, images_md


def _drivers(inp: CardInputs, lang: str) -> dict:
    """Section 6's lists: family shares, the top eight features, each family's top drivers."""
    desc = descriptions(inp.registry, lang)
    top = inp.importance.head(8)
    return {
        "family_shares": inp.importance_by_family.sort_values("share", ascending=False).to_dict(
            "records"
        ),
        "top_features": [
            {"description": desc.get(n, n), "family": f}
            for n, f in zip(top["name"], top["family"], strict=True)
        ],
        "family_drivers": family_drivers(inp.importance, inp.registry, lang),
        "feature_words": desc,
    }


def _version(inp: CardInputs, champion: str) -> dict:
    """Section 10: the run's hashes and commit, the champion's MLflow run and registered model."""
    run = (inp.train_report.get("models") or {}).get(champion, {})
    registered = inp.train_report.get("registered_model") or {}
    return {
        **inp.version,
        "run_id": run.get("run_id", "n/a"),
        "model_uri": run.get("model_uri", ""),
        "registered_name": registered.get("name", ""),
        "registered_version": registered.get("version", ""),
        "registered_alias": registered.get("alias", ""),
    }


def treated_excluded(metrics: dict) -> dict[str, int] | None:
    """Rows left out as treated by a contact (train, test), or None when there were none: the
    card then says nothing about contacts here."""
    counts = metrics.get("treated_rows_excluded") or {}
    if not sum(counts.values()):
        return None
    return {"train": int(counts.get("train", 0)), "test": int(counts.get("test", 0))}


def training_rows(metrics: dict) -> dict[str, int] | None:
    """Training rows, the rows the tuning saw (train.tune_rows) and the final fit's
    (train.max_rows), from metrics.json; None for metrics from before they were recorded."""
    rows = metrics.get("training_rows") or {}
    if not {"train", "tune", "refit"} <= set(rows):
        return None
    return {k: int(rows[k]) for k in ("train", "tune", "refit")}


def build_context(inp: CardInputs) -> dict:
    """The template's context: plain numbers, words and lists (no DataFrames)."""
    params = inp.params
    lang = card_language(params)
    m, registry, summary, scored = inp.metrics, inp.registry, inp.summary.copy(), inp.scored
    champion, capacity = m["champion"], float(m["capacity"])
    tiers = {t: int((scored["risk_tier"] == t).sum()) for t in TIERS} if len(scored) else {}
    tiers["total"] = len(scored)
    high = summary[summary["risk_tier"] == "high"]
    cutoff_p = None
    if len(scored) and "churn_probability" in scored:
        cutoff_p = float(np.quantile(scored["churn_probability"].to_numpy(float), 1 - capacity))
    images_html, images_md = _images(inp, lang, cutoff_p)
    weak_margin = params.report.weak_slice_auc_margin
    slices_all, slices_weak = weak_slices(inp.slices, m[champion]["roc_auc"], weak_margin)
    psi_threshold = params.segment.psi_threshold
    models = [n for n in params.train.models if n in m]
    models += [n for n in ("rules", "btyd", "oracle") if n in m]
    families_on = dict(inp.contract.get("families") or inp.features_report.get("families") or {})
    test_rows = int(m.get("test_rows", 0))
    return {
        "lang": lang,
        "zh": lang == "zh",
        "generated": inp.generated,
        "source": inp.source,
        "synthetic": inp.synthetic,
        "data": inp.contract,
        "features": inp.features_report,
        "families_on": families_on,
        "families_off": [f for f, on in families_on.items() if not on],
        "m": m,
        "models": models,
        "champion": champion,
        "capacity": capacity,
        "contacted": round(test_rows * capacity),
        "test_rows": test_rows,
        "treated_excluded": treated_excluded(m),
        "training_rows": training_rows(m),
        "tiers": tiers,
        "value_at_risk": float(high["value_at_risk"].sum()),
        "expected_churners_high": float(high["expected_churners"].sum()),
        "top_reasons": translate_reasons(weighted_reasons(summary, "high"), registry, lang),
        "owners": actions_due(scored),
        **_drivers(inp, lang),
        "stories": tier_stories(summary, scored, registry, lang),
        "rules": tree_rules_summary(inp.tree_rules, registry, lang),
        "has_tree": inp.tree_rules is not None,
        "slices": slices_all,
        "weak_slices": slices_weak,
        "weak_margin": weak_margin,
        "ece_max": params.report.max_trusted_ece,
        "trust": probability_trust(
            m,
            champion,
            params.report.max_trusted_ece,
            params.report.max_rough_ece,
            params.report.max_base_rate_shift,
        ),
        "no_contact": no_contact(scored, params.segment.no_contact_action),
        "control": control_group(scored, params.segment.control_share),
        "campaigns": campaign_context(inp.campaigns, inp.campaign_table),
        "winback": winback_context((inp.campaigns or {}).get("winback"), inp.winback_list),
        "has_rules": "rules" in m,
        "dated": bool(inp.contract.get("as_of")),
        "random_split": m.get("test_split") == RANDOM_HOLD_OUT,
        "drifted": drifted_features(inp.drift, registry, psi_threshold, lang),
        "drift_checked": 0 if inp.drift is None else len(inp.drift),
        "psi_threshold": psi_threshold,
        "label_window": params.features.label_window_days,
        "churn_definition": params.features.churn_definition,
        "label_column": params.data.label_column,
        "inactivity_days": params.features.inactivity_days,
        "cutoff_probability": cutoff_p,
        "chart_names": [n for n in CHARTS if n in images_html],
        "figure_groups": figure_groups(inp.figures),
        "registry_words": registry_words(lang),
        "images_html": images_html,
        "images_md": images_md,
        "version": _version(inp, champion),
    }
