"""The model card: one Jinja2 template rendered to Markdown, and that Markdown as one HTML page.

Everything here is pure: the stage (`churnlight.pipelines.report`) reads the pipeline's files and
passes their contents in (`CardInputs`); these functions build the template context, draw the two
charts the card owns (calibration, cumulative gains) into PNG bytes, render the template and turn
the Markdown into a self-contained HTML page (figures as base64 data URIs, inline CSS, a strict
Content-Security-Policy, no scripts, nothing fetched).

The template (`templates/model_card.md.j2`) writes Markdown only, in English or Chinese
(`report.language`); images go through `figure(name, caption)`, which points at the figure file
next to the Markdown card and at a data URI in the HTML card. The Markdown-to-HTML converter
covers exactly the subset the template emits: headings, paragraphs, ordered and bullet lists,
pipe tables, block quotes, fenced code, images on lines of their own, bold, italics, code spans.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources

import jinja2
import numpy as np
import pandas as pd

from churnlight.features.registry import FAMILY_NAMES, PROFILE_WORDS_ZH
from churnlight.models import fonts

log = logging.getLogger("churnlight.report")

LANGUAGES = ("en", "zh")
TEMPLATE = "model_card.md.j2"
TIERS = ("high", "medium", "low")
# the two charts the card draws itself; every other figure comes from reports/figures/shap
CHARTS = ("calibration", "gains")


# --- formatting helpers (template globals) -----------------------------------------------------


def pct(x: float | None, digits: int = 1) -> str:
    """0.1234 -> '12.3%'; None or NaN -> 'n/a'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * float(x):.{digits}f}%"


def num(x: float | None, digits: int = 0) -> str:
    """Thousands separators: 1234567.8 -> '1,234,568'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{float(x):,.{digits}f}"


def dec(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{float(x):.{digits}f}"


def lcfirst(text: object) -> str:
    """'Number of logins' -> 'number of logins' mid-sentence; 'NPS ...' stays as it is."""
    s = str(text)
    return s[:1].lower() + s[1:] if s[1:2].islower() else s


def cell(text: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _short(v: float) -> str:
    """A rule threshold as a person writes it: 920.0234 -> '920.02', 3.0 -> '3'."""
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def content_hash(blobs: Iterable[bytes], length: int = 12) -> str:
    """A short SHA-256 over byte strings (the data hash of the Version section)."""
    h = hashlib.sha256()
    for b in blobs:
        h.update(hashlib.sha256(b).digest())
    return h.hexdigest()[:length]


# --- inputs ------------------------------------------------------------------------------------


@dataclass
class CardInputs:
    """Everything the card is built from, already read by the stage (no paths in here)."""

    params: dict
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


def _descriptions(registry: pd.DataFrame, lang: str) -> dict[str, str]:
    col = "description_zh" if lang == "zh" else "description_en"
    return dict(zip(registry["name"], registry[col], strict=True))


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
    desc = _descriptions(registry, lang)
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
        plans = []
        if {"owner", "due_within_hours", "value_tier"} <= set(part.columns) and len(part):
            g = part.groupby(["owner", "due_within_hours"], observed=True)
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
                "plans": plans,
            }
        )
    return stories


def weak_slices(
    slices: pd.DataFrame, overall_auc: float, auc_margin: float = 0.03
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
    desc = _descriptions(registry, lang)
    fam = dict(zip(registry["name"], registry["family"], strict=True))
    d = drift[drift["psi"] > threshold].sort_values("psi", ascending=False)
    return [
        {"name": n, "description": desc.get(n, n), "family": fam.get(n, ""), "psi": float(v)}
        for n, v in zip(d["name"], d["psi"], strict=True)
    ]


# --- the decision tree's rules -----------------------------------------------------------------


_SPLIT = re.compile(r"^(?P<feat>.+?)\s+(?P<op><=|>)\s+(?P<thr>-?[0-9.eE+-]+)$")
_POSITIVE = {"1", "1.0", "True", "true"}


def _parse_export_text(text: str) -> dict:
    """sklearn's `export_text` as a nested tree of {'text', 'children'}."""
    root: dict = {"text": "", "children": []}
    stack = [root]
    for line in text.splitlines():
        if "|--- " not in line:
            continue
        head, content = line.split("|--- ", 1)
        depth = head.count("|")
        node = {"text": content.strip(), "children": []}
        del stack[depth + 1 :]
        if len(stack) <= depth:  # malformed indentation: attach to the deepest node
            depth = len(stack) - 1
        stack[depth]["children"].append(node)
        stack.append(node)
    return root


def _leaf_class(node: dict) -> str | None:
    """The class every path below `node` ends in, or None when they differ or are truncated."""
    kids = node["children"]
    if len(kids) == 1 and kids[0]["text"].startswith("class:"):
        return kids[0]["text"].split(":", 1)[1].strip()
    if not kids or any(not _SPLIT.match(k["text"]) for k in kids):
        return None
    classes = {_leaf_class(k) for k in kids}
    return classes.pop() if len(classes) == 1 and None not in classes else None


def _condition(feat: str, op: str, thr: float, registry: pd.DataFrame, lang: str) -> str:
    desc = _descriptions(registry, lang)
    units = dict(zip(registry["name"], registry["unit"], strict=True))
    if feat not in desc:  # a one-hot column: <categorical feature>_<level>
        base = max((n for n in desc if feat.startswith(n + "_")), key=len, default=None)
        if base is not None and units.get(base) == "category" and 0 < thr < 1:
            level = feat[len(base) + 1 :]
            return f"{desc[base]} {'=' if op == '>' else '≠'} {level}"
    words = desc.get(feat, feat)
    if units.get(feat) == "flag" and 0 < thr < 1:
        yes, no = ("是", "否") if lang == "zh" else ("yes", "no")
        return f"{words}: {yes if op == '>' else no}"
    if thr - math.floor(thr) == 0.5:  # a split between whole numbers
        if thr == 0.5 and op == "<=":
            return f"{words} = 0"
        return f"{words} {'≥' if op == '>' else '≤'} {_short(math.floor(thr) + (op == '>'))}"
    return f"{words} {'>' if op == '>' else '≤'} {_short(thr)}"


def tree_rules_summary(
    text: str | None, registry: pd.DataFrame, lang: str, top: int = 5
) -> list[list[str]]:
    """The decision tree's paths that end in 'churn', simplest first, as lists of conditions in
    the card's language. Subtrees whose leaves all agree are one rule; on a feature split twice
    along a path only the tighter bound is kept."""
    if not text or not text.strip():
        return []
    root = _parse_export_text(text)
    rules: list[list[tuple[str, str, float]]] = []

    def walk(node: dict, path: list[tuple[str, str, float]]) -> None:
        for kid in node["children"]:
            m = _SPLIT.match(kid["text"])
            if not m:
                continue
            here = [*path, (m["feat"], m["op"], float(m["thr"]))]
            cls = _leaf_class(kid)
            if cls in _POSITIVE:
                rules.append(here)
            elif cls is None:
                walk(kid, here)

    walk(root, [])
    out = []
    for path in sorted(rules, key=len)[:top]:
        bounds: dict[tuple[str, str], float] = {}
        for feat, op, thr in path:
            key = (feat, op)
            if key in bounds:
                thr = min(bounds[key], thr) if op == "<=" else max(bounds[key], thr)
            bounds[key] = thr
        out.append([_condition(f, op, t, registry, lang) for (f, op), t in bounds.items()])
    return out


# --- the two charts the card draws -------------------------------------------------------------


def chart_language(lang: str) -> str:
    """The language the card's charts can be drawn in: Chinese needs a CJK font in matplotlib,
    otherwise the labels would be empty boxes, so they fall back to English with a warning."""
    if lang == "zh" and fonts.cjk_font() is None:
        log.warning(
            "no CJK font found for matplotlib: the card's charts keep English labels "
            "(install one, e.g. Debian's fonts-noto-cjk)"
        )
        return "en"
    return lang


def _chart_words(lang: str) -> tuple[str, dict[str, str]]:
    """Chart labels in the card's language when matplotlib has a font for it, else English."""
    en = {
        "cal_title": "Calibration: predicted vs observed churn",
        "cal_x": "predicted probability of churn",
        "cal_y": "observed churn rate",
        "perfect": "perfect calibration",
        "model": "champion (calibrated)",
        "contacted": "contacted: top {cap}",
        "gains_title": "Cumulative gains: churners reached by contacting the top share",
        "gains_x": "share of customers contacted (highest risk first)",
        "gains_y": "share of churners reached",
        "random": "random order",
        "capacity": "capacity {cap}",
        "rules": "three-colour rules at capacity",
        "reach": "{cap} contacted → {rec} of churners",
    }
    zh = {
        "cal_title": "校准：预测概率与实际流失率",
        "cal_x": "预测流失概率",
        "cal_y": "实际流失率",
        "perfect": "完美校准",
        "model": "冠军模型（已校准）",
        "contacted": "联系范围：前 {cap}",
        "gains_title": "累计增益：联系高风险客户能覆盖多少流失者",
        "gains_x": "联系客户占比（按风险从高到低）",
        "gains_y": "覆盖的流失者占比",
        "random": "随机顺序",
        "capacity": "容量 {cap}",
        "rules": "三色规则（同等容量）",
        "reach": "联系 {cap} → 覆盖 {rec} 的流失者",
    }
    if chart_language(lang) == "zh":
        return str(fonts.cjk_font()), zh
    return "DejaVu Sans", en


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # no creation time or software version in the file: the same inputs give the same bytes
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def calibration_chart(
    calibration: pd.DataFrame, capacity: float, cutoff_probability: float | None, lang: str = "en"
) -> bytes:
    """Reliability curve of the champion on the test cutoff, the diagonal, and the band of
    probabilities the team contacts at capacity (scores at or above `cutoff_probability`)."""
    import matplotlib
    from matplotlib.figure import Figure

    font, w = _chart_words(lang)
    with matplotlib.rc_context(
        {"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"]}
    ):
        fig = Figure(figsize=(6.4, 4.4))
        ax = fig.subplots()
        top = max(float(calibration[["predicted", "observed"]].max().max()), 0.05) * 1.08
        top = min(1.0, top)
        if cutoff_probability is not None and cutoff_probability < top:
            ax.axvspan(cutoff_probability, top, color="#fde68a", alpha=0.45, lw=0)
            ax.axvline(cutoff_probability, color="#b45309", lw=1.2, ls="--")
            ax.text(
                cutoff_probability - top * 0.01,
                top * 0.97,
                w["contacted"].format(cap=pct(capacity, 0)) + " →",
                color="#92400e",
                fontsize=9,
                va="top",
                ha="right",
            )
        ax.plot([0, top], [0, top], color="#9ca3af", ls=":", lw=1.2, label=w["perfect"])
        ax.plot(
            calibration["predicted"],
            calibration["observed"],
            marker="o",
            color="#1d4ed8",
            lw=1.8,
            ms=5,
            label=w["model"],
        )
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel(w["cal_x"])
        ax.set_ylabel(w["cal_y"])
        ax.set_title(w["cal_title"], fontsize=11)
        ax.grid(alpha=0.25)
        ax.legend(loc="lower right", fontsize=9, frameon=False)
        fig.tight_layout()
        return _png(fig)


def gains_chart(
    gains: pd.DataFrame, capacity: float, rules_recall: float | None = None, lang: str = "en"
) -> bytes:
    """Cumulative gains of the champion, random order for reference, the capacity marked with
    the share of churners reached there (and the three-colour rules' share at the same volume)."""
    import matplotlib
    from matplotlib.figure import Figure

    font, w = _chart_words(lang)
    x = gains["share_contacted"].to_numpy(dtype=float)
    y = gains["share_of_churners"].to_numpy(dtype=float)
    reach = float(np.interp(capacity, x, y))
    with matplotlib.rc_context(
        {"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"]}
    ):
        fig = Figure(figsize=(6.4, 4.4))
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], color="#9ca3af", ls=":", lw=1.2, label=w["random"])
        ax.plot(x, y, color="#1d4ed8", lw=1.8, label=w["model"].split(" (")[0].split("（")[0])
        ax.axvline(
            capacity,
            color="#b45309",
            lw=1.2,
            ls="--",
            label=w["capacity"].format(cap=pct(capacity, 0)),
        )
        ax.plot([capacity], [reach], "o", color="#b45309", ms=7)
        ax.annotate(
            w["reach"].format(cap=pct(capacity, 0), rec=pct(reach, 0)),
            (capacity, reach),
            xytext=(capacity + 0.06, max(reach - 0.12, 0.05)),
            fontsize=9,
            color="#92400e",
            arrowprops={"arrowstyle": "-", "color": "#b45309", "lw": 0.8},
        )
        if rules_recall is not None:
            ax.plot([capacity], [rules_recall], "s", color="#6b7280", ms=6, label=w["rules"])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(w["gains_x"])
        ax.set_ylabel(w["gains_y"])
        ax.set_title(w["gains_title"], fontsize=11)
        ax.grid(alpha=0.25)
        ax.legend(loc="lower right", fontsize=9, frameon=False)
        fig.tight_layout()
        return _png(fig)


# --- the context -------------------------------------------------------------------------------


def figure_groups(names: Iterable[str]) -> list[list[str]]:
    """Figures in reading order, grouped: the wide SHAP figures alone (full width), then the
    family and dependence figures side by side; unknown figures last."""
    names = list(names)
    alone = [[n] for n in ("shap_bar", "shap_beeswarm") if n in names]
    small = [n for n in ("shap_families",) if n in names]
    small += sorted(n for n in names if n.startswith("shap_dependence_"))
    rest = sorted(n for n in names if not any(n in g for g in [*alone, small]))
    return [g for g in [*alone, small, rest] if g]


def build_context(inp: CardInputs) -> dict:
    """The template's context: plain numbers, words and lists (no DataFrames)."""
    params = inp.params
    report_params = params.get("report") or {}
    lang = str(report_params.get("language", "en"))
    if lang not in LANGUAGES:
        raise ValueError(f"report.language must be one of {LANGUAGES}, not {lang!r}")
    m = inp.metrics
    champion = m["champion"]
    capacity = float(m["capacity"])
    summary = inp.summary.copy()
    scored = inp.scored
    registry = inp.registry
    tiers = {t: int((scored["risk_tier"] == t).sum()) for t in TIERS} if len(scored) else {}
    tiers["total"] = len(scored)
    high = summary[summary["risk_tier"] == "high"]

    cutoff_p = None
    if len(scored) and "churn_probability" in scored:
        cutoff_p = float(np.quantile(scored["churn_probability"].to_numpy(float), 1 - capacity))
    chart_lang = chart_language(lang)  # once: one warning, not one per chart
    charts = {
        "calibration": calibration_chart(inp.calibration, capacity, cutoff_p, chart_lang)
        if len(inp.calibration)
        else None,
        "gains": gains_chart(
            inp.gains, capacity, m.get("rules", {}).get("recall_at_capacity"), chart_lang
        )
        if len(inp.gains)
        else None,
    }
    images_html = {n: data_uri(b) for n, b in charts.items() if b is not None}
    images_html.update({n: data_uri(b) for n, b in inp.figures.items()})
    images_md = {n: inp.figure_files.get(n, f"figures/shap/{n}.png") for n in inp.figures}

    slices_all, slices_weak = weak_slices(
        inp.slices,
        m[champion]["roc_auc"],
        float(report_params.get("weak_slice_auc_margin", 0.03)),
    )
    psi_threshold = float(params["segment"]["psi_threshold"])
    models = [n for n in params["train"]["models"] if n in m]
    models += [n for n in ("rules", "oracle") if n in m]
    run = (inp.train_report.get("models") or {}).get(champion, {})
    registered = inp.train_report.get("registered_model") or {}
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
        "tiers": tiers,
        "value_at_risk": float(high["value_at_risk"].sum()),
        "expected_churners_high": float(high["expected_churners"].sum()),
        "top_reasons": translate_reasons(weighted_reasons(summary, "high"), registry, lang),
        "owners": actions_due(scored),
        "family_shares": inp.importance_by_family.sort_values("share", ascending=False).to_dict(
            "records"
        ),
        "top_features": [
            {"description": d, "family": f}
            for d, f in zip(
                [_descriptions(registry, lang).get(n, n) for n in inp.importance["name"].head(8)],
                inp.importance["family"].head(8),
                strict=True,
            )
        ],
        "family_drivers": family_drivers(inp.importance, registry, lang),
        "stories": tier_stories(summary, scored, registry, lang),
        "rules": tree_rules_summary(inp.tree_rules, registry, lang),
        "has_tree": inp.tree_rules is not None,
        "slices": slices_all,
        "weak_slices": slices_weak,
        "weak_margin": float(report_params.get("weak_slice_auc_margin", 0.03)),
        "ece_max": float(report_params.get("max_trusted_ece", 0.05)),
        "drifted": drifted_features(inp.drift, registry, psi_threshold, lang),
        "drift_checked": 0 if inp.drift is None else len(inp.drift),
        "psi_threshold": psi_threshold,
        "label_window": params["features"]["label_window_days"],
        "churn_definition": params["features"]["churn_definition"],
        "label_column": params["data"].get("label_column", "churn"),
        "inactivity_days": params["features"].get("inactivity_days"),
        "cutoff_probability": cutoff_p,
        "chart_names": [n for n in CHARTS if n in images_html],
        "figure_groups": figure_groups(inp.figures),
        "feature_words": _descriptions(registry, lang),
        "registry_words": registry_words(lang),
        "images_html": images_html,
        "images_md": images_md,
        "version": {
            **inp.version,
            "run_id": run.get("run_id", "n/a"),
            "model_uri": run.get("model_uri", ""),
            "registered_name": registered.get("name", ""),
            "registered_version": registered.get("version", ""),
            "registered_alias": registered.get("alias", ""),
        },
    }


# --- rendering ---------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown out; the HTML converter escapes every text run
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(pct=pct, num=num, dec=dec)
    env.filters["cell"] = cell
    env.filters["lcfirst"] = lcfirst
    return env


def _template_text(template: str) -> str:
    return resources.files("churnlight.models").joinpath("templates", template).read_text("utf-8")


def _figure_macro(images: dict[str, str], missing: str) -> Callable[[str, str], str]:
    def figure(name: str, caption: str) -> str:
        src = images.get(name)
        if src is None:
            return f"*{caption}: {missing.format(name=name)}*" if missing else ""
        return f"![{caption}]({src})"

    return figure


def render_card(context: dict, fmt: str = "md", template: str = TEMPLATE) -> str:
    """The card as Markdown (`fmt='md'`) or as a self-contained HTML page (`fmt='html'`).

    Both come from the same template: the HTML is the Markdown rendered with images as data URIs
    and converted by `markdown_to_html`."""
    if fmt not in ("md", "html"):
        raise ValueError(f"fmt must be 'md' or 'html', not {fmt!r}")
    env = _environment()
    zh = context.get("lang") == "zh"
    if fmt == "md":
        missing = (
            "图见 model_card.html（数据：plots/{name}.csv）。"
            if zh
            else "see model_card.html (data: plots/{name}.csv)."
        )
        images = context["images_md"]
    else:
        missing, images = "", context["images_html"]
    env.globals["figure"] = _figure_macro(images, missing)
    env.globals["fmt"] = fmt
    markdown = env.from_string(_template_text(template)).render(**context)
    markdown = re.sub(r"\n{3,}", "\n\n", markdown).strip() + "\n"
    if fmt == "md":
        return markdown
    title = next((ln[2:].strip() for ln in markdown.splitlines() if ln.startswith("# ")), "")
    return html_page(markdown_to_html(markdown), title=title, lang=context.get("lang", "en"))


# --- Markdown (the subset the template emits) to HTML ------------------------------------------


_IMAGE_LINE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_ORDERED = re.compile(r"^\d+\.\s+")
_NUMBER = re.compile(r"^[\s\-+−]*[0-9][0-9,.\s]*(%|x|×)?(\s*\[.*\])?$")


def inline(text: str) -> str:
    """Escape, then code spans, bold and italics (which may contain code spans)."""
    spans: list[str] = []

    def hold(m: re.Match) -> str:
        spans.append(f"<code>{html.escape(m.group(1), quote=False)}</code>")
        return f"\x00{len(spans) - 1}\x00"

    s = html.escape(_CODE.sub(hold, text).replace("\\|", "|"), quote=False)
    s = _BOLD.sub(r"<strong>\1</strong>", s)
    s = _EM.sub(r"<em>\1</em>", s)
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], s)


def _table_cells(line: str) -> list[str]:
    row = line.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)]


def _table(lines: list[str]) -> str:
    head = _table_cells(lines[0])
    body = [_table_cells(ln) for ln in lines[2:]]
    out = ["<table>", "<thead><tr>"]
    out += [f"<th>{inline(c)}</th>" for c in head]
    out.append("</tr></thead>")
    out.append("<tbody>")
    for row in body:
        cells = []
        for c in row:
            cls = ' class="num"' if _NUMBER.match(re.sub(r"<[^>]+>|\*", "", c)) else ""
            cells.append(f"<td{cls}>{inline(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _figures(lines: list[str]) -> str:
    figs = []
    for ln in lines:
        m = _IMAGE_LINE.match(ln.strip())
        if m is None:
            continue
        alt = html.escape(m["alt"])
        src = html.escape(m["src"])
        figs.append(
            f'<figure><img src="{src}" alt="{alt}"><figcaption>{inline(m["alt"])}</figcaption>'
            "</figure>"
        )
    cls = "figures one" if len(figs) == 1 else "figures"
    return f'<div class="{cls}">' + "".join(figs) + "</div>"


def _list(lines: list[str], ordered: bool) -> str:
    tag = "ol" if ordered else "ul"
    items: list[str] = []
    for ln in lines:
        s = ln.strip()
        if (ordered and _ORDERED.match(s)) or (not ordered and s.startswith("- ")):
            items.append(_ORDERED.sub("", s, count=1) if ordered else s[2:])
        elif items:  # a continuation line
            items[-1] += " " + s
    return f"<{tag}>" + "".join(f"<li>{inline(i)}</li>" for i in items) + f"</{tag}>"


def _slug(n: int) -> str:
    return f"s{n}"


def markdown_to_html(md: str) -> str:
    """Block structure: `#`/`##`/`###` headings (each `##` opens a <section>), paragraphs,
    `-` and `1.` lists, pipe tables, `>` quotes, fenced code, and paragraphs made only of
    image lines (a figure gallery)."""
    lines = md.splitlines()
    out: list[str] = []
    in_section = False
    sections = 0
    i = 0

    def block_end(j: int, pred: Callable[[str], bool]) -> int:
        while j < len(lines) and lines[j].strip() and pred(lines[j]):
            j += 1
        return j

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not s:
            i += 1
            continue
        if s.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            code = "\n".join(lines[i + 1 : j])
            out.append(f"<pre><code>{html.escape(code, quote=False)}</code></pre>")
            i = j + 1
            continue
        heading = re.match(r"^(#{1,4})\s+(.*)$", s)
        if heading:
            level = len(heading[1])
            if level == 2:
                if in_section:
                    out.append("</section>")
                sections += 1
                out.append(f'<section id="{_slug(sections)}">')
                in_section = True
            out.append(f"<h{level}>{inline(heading[2])}</h{level}>")
            i += 1
            continue
        if s.startswith("|"):
            j = block_end(i, lambda ln: ln.strip().startswith("|"))
            out.append(_table(lines[i:j]))
            i = j
            continue
        if _IMAGE_LINE.match(s):
            j = block_end(i, lambda ln: bool(_IMAGE_LINE.match(ln.strip())))
            out.append(_figures(lines[i:j]))
            i = j
            continue
        if s.startswith(">"):
            j = block_end(i, lambda ln: ln.strip().startswith(">"))
            text = " ".join(ln.strip()[1:].strip() for ln in lines[i:j])
            out.append(f"<blockquote><p>{inline(text)}</p></blockquote>")
            i = j
            continue
        if s.startswith("- ") or _ORDERED.match(s):
            ordered = not s.startswith("- ")
            j = block_end(
                i + 1,
                lambda ln: not ln.strip().startswith(("#", "|", ">", "```", "![")),
            )
            out.append(_list(lines[i:j], ordered))
            i = j
            continue
        j = block_end(
            i + 1,
            lambda ln: not ln.strip().startswith(("#", "|", ">", "```", "- ", "![")),
        )
        text = " ".join(ln.strip() for ln in lines[i:j])
        out.append(f"<p>{inline(text)}</p>")
        i = j
    if in_section:
        out.append("</section>")
    return "\n".join(out)


# nothing may be fetched: images are data URIs, styles inline, no scripts at all
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)
STYLE = "model_card.css"


def html_page(body: str, title: str, lang: str = "en") -> str:
    """A complete, self-contained HTML document around a converted Markdown body."""
    lang_attr = "zh-CN" if lang == "zh" else "en"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang_attr}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{_template_text(STYLE)}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
