"""Why a customer is at risk: additive contributions per feature, in log-odds of the
uncalibrated model, turned into plain sentences from the feature registry.

LightGBM uses its native TreeSHAP (`pred_contrib`), the decision tree `shap.TreeExplainer`, and
logistic regression its exact linear attribution (coefficient x centred value). Contributions of
encoded columns (one-hot levels, missing indicators) are summed back onto the raw feature, so the
base value plus the contributions still equals the model's raw score.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from churnlight.features.registry import PROFILE_PREFIX, family_name
from churnlight.models import fonts

log = logging.getLogger(__name__)

# one cap for probabilities of 0 or 1 (pure tree leaves), shared by contributions and raw scores
PROB_EPS = 1e-6


def _source_feature(out_name: str, inputs: list[str]) -> str:
    if out_name in inputs:
        return out_name
    if out_name.startswith("missingindicator_"):
        return out_name[len("missingindicator_") :]
    matches = [f for f in inputs if out_name.startswith(f + "_")]
    if not matches:
        raise KeyError(f"cannot trace encoded column {out_name!r} back to a feature")
    return max(matches, key=len)


def _encode(pre, x: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The encoded columns' names and values for `x`; no rows gives an empty (0, columns) array
    (scikit-learn refuses to transform no rows, but an empty tier is still a valid input)."""
    if len(x):
        z = pre.transform(x)
        return list(z.columns), z.to_numpy(dtype=float)
    names = list(pre.get_feature_names_out())
    return names, np.zeros((0, len(names)))


def contributions(
    pipe: Pipeline, x: pd.DataFrame, background: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, float]:
    """Per-row, per-feature contributions (log-odds) and the base value.

    `background` only matters for logistic regression: its attribution is centred on the mean
    of these rows (default: `x` itself). Pass the population (a sample of it) when `x` is a
    subset such as the high-risk tier, or what every at-risk customer shares counts for nothing.
    No rows give an empty frame with `x`'s columns and the same base value as any rows would
    (for logistic regression without rows or background: the intercept)."""
    pre, model = pipe.named_steps["pre"], pipe.named_steps["model"]
    names, zz = _encode(pre, x)
    kind = type(model).__name__
    if kind == "LGBMClassifier":
        # the base value is the same for every row: without rows, read it off a row of gaps
        rows = zz if len(zz) else np.full((1, len(names)), np.nan)
        raw = model.booster_.predict(rows, pred_contrib=True)
        phi, base = raw[: len(zz), :-1], float(raw[0, -1])
    elif kind == "DecisionTreeClassifier":
        import shap

        explainer = shap.TreeExplainer(model, model_output="raw")
        if len(zz):
            sv = explainer.shap_values(zz, check_additivity=False)
            phi_p = sv[..., 1] if np.ndim(sv) == 3 else sv[1]
        else:
            phi_p = np.zeros((0, len(names)))
        # a scikit-learn tree explains probabilities; convert both to log-odds additively
        ev = explainer.expected_value
        base_p = float(ev[1] if np.ndim(ev) else ev)
        p = np.clip(base_p + phi_p.sum(axis=1), PROB_EPS, 1 - PROB_EPS)
        b = np.clip(base_p, PROB_EPS, 1 - PROB_EPS)
        base = float(np.log(b / (1 - b)))
        total = np.log(p / (1 - p)) - base
        scale = np.divide(
            total,
            phi_p.sum(axis=1),
            out=np.zeros_like(total),
            where=np.abs(phi_p.sum(axis=1)) > 1e-12,
        )
        phi = phi_p * scale[:, None]
    elif kind == "LogisticRegression":
        coef = model.coef_.ravel()
        ref = zz if background is None else _encode(pre, background)[1]
        mean = ref.mean(axis=0) if len(ref) else 0
        phi = (zz - mean) * coef
        base = float(model.intercept_[0] + (mean * coef).sum())
    else:
        raise TypeError(f"no explainer for {kind}")
    inputs = list(x.columns)
    phi = _to_raw_features(np.asarray(phi, dtype=float), names, inputs)
    return pd.DataFrame(phi, columns=inputs, index=x.index), base


def raw_score(pipe: Pipeline, x: pd.DataFrame) -> np.ndarray:
    """The model's log-odds before calibration: what the contributions add up to."""
    p = np.clip(pipe.predict_proba(x)[:, 1], PROB_EPS, 1 - PROB_EPS)
    return np.log(p / (1 - p))


def importance(contrib: pd.DataFrame, registry: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean |contribution| per feature and per family, with each family's share of the total."""
    feat = contrib.abs().mean().rename_axis("name").rename("mean_abs_shap").reset_index()
    feat = feat.merge(registry[["name", "family"]], on="name", how="left")
    feat = feat.sort_values("mean_abs_shap", ascending=False, ignore_index=True)
    fam = feat.groupby("family", as_index=False)["mean_abs_shap"].sum()
    fam["share"] = fam["mean_abs_shap"] / fam["mean_abs_shap"].sum()
    return feat, fam.sort_values("share", ascending=False, ignore_index=True)


def _fmt(value, unit: str, lang: str) -> str:
    if _is_missing(value):
        return "missing" if lang == "en" else "缺失"
    if isinstance(value, str):
        return value
    v = float(value)
    if unit in ("share", "ratio"):
        return f"{v:.0%}" if unit == "share" else f"{v:.2f}x"
    if unit == "flag":
        return ("yes" if v else "no") if lang == "en" else ("是" if v else "否")
    if unit == "currency":
        return f"{v:,.0f}"
    if unit == "days":
        return f"{v:.0f} days" if lang == "en" else f"{v:.0f}天"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _pct(x: float) -> str:
    return f"{abs(x) * 100:.0f}%"


def _change_en(what: str, ratio: float, against: str) -> str:
    return f"{what} {'down' if ratio < 1 else 'up'} {_pct(1 - ratio)} against {against}"


def _change_zh(what: str, ratio: float) -> str:
    return f"{what}{'下降' if ratio < 1 else '上升'}{_pct(1 - ratio)}"


def _n(v) -> str:
    return f"{float(v):,.0f}"


# Plain sentences for the signals people act on; every other feature falls back to its
# registry description and the customer's value. Each entry: (English, Chinese), functions of the
# customer's own feature values.
TEMPLATES: dict[str, tuple] = {
    "activity_30d_vs_baseline": (
        lambda r: _change_en(
            "Logins and visits in the last 30 days",
            r["activity_30d_vs_baseline"],
            "the prior 90 days",
        ),
        lambda r: _change_zh("近30天登录和到访次数较前90天", r["activity_30d_vs_baseline"]),
    ),
    "spend_90d_vs_baseline": (
        lambda r: _change_en(
            "Spend in the last 90 days", r["spend_90d_vs_baseline"], "the earlier quarterly average"
        ),
        lambda r: _change_zh("近90天消费较此前季度均值", r["spend_90d_vs_baseline"]),
    ),
    "gap_ratio": (
        lambda r: f"Time since the last purchase is {r['gap_ratio']:.1f}x the customer's usual gap",
        lambda r: f"距上次购买的间隔是平时的{r['gap_ratio']:.1f}倍",
    ),
    "reply_rate_change": (
        lambda r: (
            f"Replies to outreach {'fell' if r['reply_rate_change'] < 0 else 'rose'} from "
            f"{r.get('reply_rate_before', 0):.0%} to "
            f"{r.get('reply_rate_90d', 0):.0%}"
        ),
        lambda r: (
            f"回访回复率从{r.get('reply_rate_before', 0):.0%}"
            f"{'降至' if r['reply_rate_change'] < 0 else '升至'}{r.get('reply_rate_90d', 0):.0%}"
        ),
    ),
    "vague_replies_90d": (
        lambda r: f"{_n(r['vague_replies_90d'])} vague, non-committal replies in the last 90 days",
        lambda r: f"近90天有{_n(r['vague_replies_90d'])}次含糊推脱的回复",
    ),
    "competitor_mentions_90d": (
        lambda r: f"Mentioned a competitor {_n(r['competitor_mentions_90d'])} time(s) in 90 days",
        lambda r: f"近90天提及竞争对手{_n(r['competitor_mentions_90d'])}次",
    ),
    "complaints_open": (
        lambda r: f"{_n(r['complaints_open'])} complaint(s) still unresolved",
        lambda r: f"{_n(r['complaints_open'])}个投诉尚未解决",
    ),
    "nps_last": (
        lambda r: f"Latest NPS answer {_n(r['nps_last'])} out of 10",
        lambda r: f"最近一次NPS评分为{_n(r['nps_last'])}分（满分10分）",
    ),
    "csat_last": (
        lambda r: f"Latest satisfaction score {_n(r['csat_last'])} out of 5",
        lambda r: f"最近一次满意度评分为{_n(r['csat_last'])}分（满分5分）",
    ),
    "recency_days": (
        lambda r: f"No purchase for {_n(r['recency_days'])} days",
        lambda r: f"已{_n(r['recency_days'])}天未购买",
    ),
    "activity_recency_days": (
        lambda r: f"No login, visit or booking for {_n(r['activity_recency_days'])} days",
        lambda r: f"已{_n(r['activity_recency_days'])}天没有登录、到访或预约",
    ),
    "months_without_purchase": (
        lambda r: f"{_n(r['months_without_purchase'])} months in a row without a purchase",
        lambda r: f"连续{_n(r['months_without_purchase'])}个月未购买",
    ),
    "silent_days_after_complaint": (
        lambda r: (
            f"Silent for {_n(r['silent_days_after_complaint'])} days since a complaint was resolved"
        ),
        lambda r: f"投诉解决后已沉默{_n(r['silent_days_after_complaint'])}天",
    ),
    "competitor_launch_90d": (
        lambda r: "A competitor launched an offer in the customer's region in the last 90 days",
        lambda r: "近90天客户所在地区有竞争对手推出新品或优惠",
    ),
    "policy_shock_180d": (
        lambda r: "A policy change hit the customer's industry in the last 180 days",
        lambda r: "近180天客户所在行业受到政策变化影响",
    ),
    "service_overdue_days": (
        lambda r: f"Periodic service overdue by {_n(r['service_overdue_days'])} days",
        lambda r: f"定期保养已逾期{_n(r['service_overdue_days'])}天",
    ),
}


_YES_NO = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


def _yes_no(value, label_zh: str) -> bool | None:
    """True / False when a profile value answers yes or no (Yes/No, True/False and 1/0 as text;
    booleans; numbers 1/0 only for an attribute named as a question, 是否...), else None."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        return _YES_NO.get(value.strip().lower())
    if label_zh.startswith("是否") and isinstance(value, int | float | np.number):
        return {1.0: True, 0.0: False}.get(float(value))
    return None


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _fallback_sentence(spec: tuple[str, str, str, str], value, lang: str) -> str:
    """The sentence for a feature without a template, from its registry entry `spec`
    (description_en, description_zh, unit, family) and the customer's value.

    A profile attribute reads as a statement about the customer ("Plan is basic", "套餐为 basic",
    "是否有伴侣：否", "Tenure is missing"), without the registry's "Customer attribute:" prefix."""
    desc_en, desc_zh, unit, family = spec
    desc = desc_en if lang == "en" else desc_zh
    if family != "profile":
        val = _fmt(value, unit, lang)
        return f"{desc}: {val}" if lang == "en" else f"{desc}：{val}"
    label = desc.removeprefix(PROFILE_PREFIX[lang])
    if lang == "en":
        label = label[:1].upper() + label[1:]
    if _is_missing(value):
        return f"{label} is missing" if lang == "en" else f"{label}缺失"
    answer = _yes_no(value, desc_zh.removeprefix(PROFILE_PREFIX["zh"]))
    if answer is not None:
        if lang == "en":
            return f"{label}: {'yes' if answer else 'no'}"
        return f"{label}：{'是' if answer else '否'}"
    val = _fmt(value, unit, lang)
    if lang == "en":
        return f"{label} is {val}"
    return f"{label}为 {val}" if val[:1].isascii() else f"{label}为{val}"


def _spec(reg: pd.DataFrame, name: str) -> tuple[str, str, str, str]:
    """What `_fallback_sentence` needs of a feature, from a registry indexed by name."""
    return (
        reg.at[name, "description_en"],
        reg.at[name, "description_zh"],
        reg.at[name, "unit"],
        reg.at[name, "family"],
    )


def reason_sentence(name: str, value, registry: pd.DataFrame, lang: str, row=None) -> str:
    """One plain sentence for a feature and the customer's own values; never the raw name.

    `registry` may be indexed by name already (the fast path for many rows); `row` holds the
    customer's other feature values for sentences that compare two of them."""
    row = {name: value} if row is None else row
    template = TEMPLATES.get(name)
    if template is not None and not _is_missing(value):
        try:
            return template[0 if lang == "en" else 1](row)
        except (KeyError, TypeError, ValueError):
            pass  # a value the template cannot phrase: fall back to the description
    reg = registry if registry.index.name == "name" else registry.set_index("name")
    return _fallback_sentence(_spec(reg, name), value, lang)


def top_reasons(
    contrib: pd.DataFrame, x: pd.DataFrame, registry: pd.DataFrame, k: int = 3
) -> pd.DataFrame:
    """The k features pushing each customer's risk up the most, as sentences in both languages."""
    values = contrib.to_numpy()
    order = np.argsort(-values, axis=1)[:, :k]
    cols = np.array(contrib.columns)
    reg = registry.set_index("name")
    records = x.to_dict("records")
    out: dict[str, list] = {}
    for j in range(k):
        names = cols[order[:, j]]
        pos = values[np.arange(len(values)), order[:, j]] > 0
        out[f"reason_{j + 1}_feature"] = np.where(pos, names, None)
        out[f"reason_{j + 1}_family"] = np.where(pos, reg.loc[names, "family"].to_numpy(), None)
        for lang in ("en", "zh"):
            out[f"reason_{j + 1}_{lang}"] = [
                reason_sentence(n, rec[n], reg, lang, rec) if ok else ""
                for n, rec, ok in zip(names, records, pos, strict=True)
            ]
    return pd.DataFrame(out, index=x.index)


# --- SHAP figures (English, and Chinese when matplotlib has a CJK font) ---

# the languages figures can be drawn in (which ones a run draws: explain.figure_languages)
FIGURE_LANGUAGES = ("en", "zh")
FAMILY_COLOURS = {
    "behaviour": "#4C72B0",
    "attitude": "#DD8452",
    "external": "#55A868",
    "profile": "#8172B3",
}
FIGURE_WORDS = {
    "en": {
        # x labels on two lines: one is wider than the axes once the long feature labels on the
        # left push the axes right, and its end was cut off
        "bar_x": "mean |SHAP|\n(log-odds of the uncalibrated model)",
        "bar_title": "Top drivers of churn risk",
        "family_y": "share of mean |SHAP|",
        "family_title": "Drivers by family",
        "swarm_x": "SHAP value (log-odds)\ncolour: feature value low (blue) to high (red)",
        "swarm_title": "How each driver moves risk",
        "dependence_y": "SHAP (log-odds)",
    },
    "zh": {
        "bar_x": "平均 |SHAP|\n（未校准模型的对数几率）",
        "bar_title": "流失风险的主要驱动因素",
        "family_y": "占平均 |SHAP| 的比例",
        "family_title": "各类驱动因素占比",
        "swarm_x": "SHAP 值（对数几率）\n颜色：特征值由低（蓝）到高（红）",
        "swarm_title": "各驱动因素如何影响风险",
        "dependence_y": "SHAP（对数几率）",
    },
}


def figure_font(lang: str) -> str | None:
    """The font family to draw `lang` with; None for Chinese without a CJK font in matplotlib."""
    if lang not in FIGURE_LANGUAGES:
        raise ValueError(f"no SHAP figures in {lang!r}: choose from {', '.join(FIGURE_LANGUAGES)}")
    if lang == "en":
        return "DejaVu Sans"
    return fonts.cjk_font()


def figure_rc(font: str) -> dict:
    """Matplotlib settings for a figure drawn (and saved) in `font`."""
    return {"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"]}


def _bar(fig, labels: list[str], values, families, horizontal: bool, axis_label: str, title: str):
    """A bar per label, coloured by its feature family (the driver and family charts)."""
    ax = fig.subplots()
    colours = [FAMILY_COLOURS.get(f, "grey") for f in families]
    (ax.barh if horizontal else ax.bar)(labels, values, color=colours)
    (ax.set_xlabel if horizontal else ax.set_ylabel)(axis_label)
    ax.set_title(title)
    return ax


def figure_set(
    contrib: pd.DataFrame,
    x: pd.DataFrame,
    feat_imp: pd.DataFrame,
    fam_imp: pd.DataFrame,
    registry: pd.DataFrame,
    lang: str = "en",
    n_dependence: int = 4,
    top: int = 15,
    seed: int = 0,
) -> dict:
    """Bar, family, beeswarm and dependence figures by file stem, labelled in `lang` (features by
    their registry description, never the raw name); `seed` draws the beeswarm's jitter. Draw and
    save them inside `matplotlib.rc_context(figure_rc(font))` so the text is set in a font for
    the language."""
    from matplotlib.figure import Figure

    words = FIGURE_WORDS[lang]
    desc = registry.set_index("name")[f"description_{lang}"]
    names = feat_imp["name"].head(top).tolist()
    figs = {}

    fig = Figure(figsize=(9, 6))
    d = feat_imp.head(top).iloc[::-1]
    _bar(
        fig,
        [desc[n] for n in d["name"]],
        d["mean_abs_shap"],
        d["family"],
        True,
        words["bar_x"],
        words["bar_title"],
    )
    figs["shap_bar"] = fig

    fig = Figure(figsize=(6, 3.5))
    _bar(
        fig,
        [family_name(f, lang) for f in fam_imp["family"]],
        fam_imp["share"],
        fam_imp["family"],
        False,
        words["family_y"],
        words["family_title"],
    )
    figs["shap_families"] = fig

    fig = Figure(figsize=(9, 6))
    ax = fig.subplots()
    rng = np.random.default_rng(seed)
    for i, n in enumerate(names[::-1]):
        phi = contrib[n].to_numpy()
        v = (
            pd.to_numeric(x[n], errors="coerce").to_numpy(dtype=float)
            if pd.api.types.is_numeric_dtype(x[n])
            else pd.factorize(x[n])[0].astype(float)
        )
        lo, hi = np.nanpercentile(v, [5, 95]) if np.isfinite(v).any() else (0, 1)
        c = np.clip((v - lo) / (hi - lo + 1e-12), 0, 1)
        ax.scatter(
            phi,
            i + rng.uniform(-0.3, 0.3, len(phi)),
            c=np.nan_to_num(c, nan=0.5),
            cmap="coolwarm",
            s=6,
            alpha=0.6,
        )
    ax.set_yticks(range(len(names)), [desc[n] for n in names[::-1]], fontsize=8)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel(words["swarm_x"])
    ax.set_title(words["swarm_title"])
    figs["shap_beeswarm"] = fig

    numeric = [n for n in names if pd.api.types.is_numeric_dtype(x[n])][:n_dependence]
    for n in numeric:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        ax.scatter(x[n].astype(float), contrib[n], s=6, alpha=0.5)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xlabel(desc[n], fontsize=8)
        ax.set_ylabel(words["dependence_y"])
        figs[f"shap_dependence_{n}"] = fig
    for fig in figs.values():
        fig.tight_layout()
    return figs


def figures(
    contrib: pd.DataFrame,
    x: pd.DataFrame,
    feat_imp: pd.DataFrame,
    fam_imp: pd.DataFrame,
    registry: pd.DataFrame,
    languages: Sequence[str],
    n_dependence: int = 4,
    top: int = 15,
    seed: int = 0,
) -> dict[str, dict]:
    """The SHAP figures in each of `languages` from the same contributions (and the same
    jitter, `seed`): {language: {file stem: matplotlib Figure}}. A language without a font
    (Chinese when matplotlib has no CJK font) is left out with a warning; an unsupported one
    raises before anything is drawn. Save each language's figures inside
    `matplotlib.rc_context(figure_rc(figure_font(lang)))`; nothing is written here."""
    import matplotlib

    font_of = {lang: figure_font(lang) for lang in dict.fromkeys(languages)}  # checks them first
    out: dict[str, dict] = {}
    for lang, font in font_of.items():
        if font is None:
            log.warning(
                "no CJK font found for matplotlib: SHAP figures in %s skipped, the Chinese card "
                "uses the English ones (install one, e.g. Debian's fonts-noto-cjk)",
                lang,
            )
            continue
        with matplotlib.rc_context(figure_rc(font)):
            out[lang] = figure_set(
                contrib, x, feat_imp, fam_imp, registry, lang, n_dependence, top, seed
            )
    return out


# --- Reasons for many rows (the explain stage and bench/score.py) ---


def _to_raw_features(phi: np.ndarray, names: list[str], inputs: list[str]) -> np.ndarray:
    """Sum contributions of encoded columns back onto the raw features (columns in `inputs`
    order, zero for a feature without columns), as `contributions` does, without transposing."""
    src = [_source_feature(n, inputs) for n in names]
    if src == inputs:
        return phi
    out = np.zeros((phi.shape[0], len(inputs)))
    where = {f: i for i, f in enumerate(inputs)}
    for j, f in enumerate(src):
        out[:, where[f]] += phi[:, j]
    return out


class _Columns:
    """Column values as Python objects, converted on first use (missing values as to_dict gives
    them: None for pd.NA)."""

    def __init__(self, x: pd.DataFrame):
        self._x, self._cache = x, {}

    def __contains__(self, key) -> bool:
        return key in self._cache or key in self._x.columns

    def __getitem__(self, key) -> list:
        col = self._cache.get(key)
        if col is None:
            s = self._x[key]
            col = s.tolist()
            if isinstance(s.dtype, pd.api.extensions.ExtensionDtype) and s.isna().any():
                col = [None if v is pd.NA else v for v in col]
            self._cache[key] = col
        return col


class _Row:
    """One customer's values, read lazily from `_Columns` (what templates see as `r`)."""

    __slots__ = ("_cols", "_i")

    def __init__(self, cols: _Columns, i: int):
        self._cols, self._i = cols, i

    def __getitem__(self, key):
        return self._cols[key][self._i]

    def get(self, key, default=None):
        return self._cols[key][self._i] if key in self._cols else default


def top_reasons_fast(
    contrib: pd.DataFrame, x: pd.DataFrame, registry: pd.DataFrame, k: int = 3
) -> pd.DataFrame:
    """The same table as `top_reasons` (same features, families and sentences), built without a
    dict per row or a registry lookup per sentence: for hundreds of thousands of customers."""
    values = contrib.to_numpy()
    order = np.argsort(-values, axis=1)[:, :k]
    cols = np.array(contrib.columns)
    reg = registry.set_index("name")
    family = reg["family"].to_dict()
    specs = {n: _spec(reg, n) for n in reg.index}
    columns = _Columns(x)
    rows = [_Row(columns, i) for i in range(len(x))]
    out: dict[str, list] = {}
    for j in range(k):
        names = cols[order[:, j]]
        pos = values[np.arange(len(values)), order[:, j]] > 0
        out[f"reason_{j + 1}_feature"] = np.where(pos, names, None)
        out[f"reason_{j + 1}_family"] = np.where(pos, [family[n] for n in names], None)
        for lang in ("en", "zh"):
            which = 0 if lang == "en" else 1
            sentences = [""] * len(names)
            for i in np.flatnonzero(pos):
                name = names[i]
                value = columns[name][i]
                template = TEMPLATES.get(name)
                if template is not None and not _is_missing(value):
                    try:
                        sentences[i] = template[which](rows[i])
                        continue
                    except (KeyError, TypeError, ValueError):
                        pass
                sentences[i] = _fallback_sentence(specs[name], value, lang)
            out[f"reason_{j + 1}_{lang}"] = sentences
    return pd.DataFrame(out, index=x.index)


# --- Exact TreeSHAP for many rows (the explain stage's reasons and bench/score.py) ---
#
# For one leaf, path-dependent TreeSHAP depends on a row only through which of the distinct
# features on the leaf's path the row satisfies (every split on that feature sends it towards the
# leaf) or not: a pattern of d bits. Tabulating each leaf's SHAP values for all 2^d patterns once
# (the idea of FastTreeSHAP v2, Yang 2022) leaves one pass over the tree's edges and d additions
# per leaf for each row, instead of O(leaves x depth^2). The tables hold sum(2^d x d) numbers.
# train.search_space bounds max_depth by 8, so d <= 8: at most 2^8 x 8 = 2,048 numbers (16 KB)
# a leaf, under 600 MB even for 600 trees of 63 leaves (the largest the search allows); the
# reference champion (208 trees of 8 leaves, d <= 7) needs about 1 MB. The kernels are compiled
# with numba (installed with shap); the values are LightGBM's `pred_contrib` up to rounding.

_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float)
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
_SHAP_KERNELS = None


def _shap_kernels():
    """(tables, explain): the numba kernels, compiled on first use."""
    global _SHAP_KERNELS
    if _SHAP_KERNELS is not None:
        return _SHAP_KERNELS
    import numba

    @numba.njit(nogil=True, cache=False)
    def tables(leaf_value, leaf_d, leaf_feat_start, zfrac, leaf_table_start, table):
        e = np.zeros(64)
        eq = np.zeros(64)
        w = np.zeros(64)
        for leaf in range(len(leaf_value)):
            d = leaf_d[leaf]
            if d == 0:
                continue
            v = leaf_value[leaf]
            fs = leaf_feat_start[leaf]
            w[0] = 1.0 / d  # w(s) = s! (d - s - 1)! / d!
            for s in range(1, d):
                w[s] = w[s - 1] * s / (d - s)
            for code in range(1 << d):
                e[0] = 1.0
                q = 0
                nprod = 1.0
                for k in range(d):
                    if (code >> k) & 1:
                        e[q + 1] = 0.0
                        for r in range(q + 1, 0, -1):
                            e[r] += zfrac[fs + k] * e[r - 1]
                        q += 1
                    else:
                        nprod *= zfrac[fs + k]
                out = leaf_table_start[leaf] + code * d
                for i in range(d):
                    zi = zfrac[fs + i]
                    if (code >> i) & 1:
                        eq[0] = 1.0
                        for r in range(1, q):
                            eq[r] = e[r] - zi * eq[r - 1]
                        acc = 0.0
                        for s in range(q):
                            acc += w[s] * eq[q - 1 - s]
                        table[out + i] = v * (1.0 - zi) * nprod * acc
                    else:
                        others = 1.0
                        for k in range(d):
                            if k != i and not (code >> k) & 1:
                                others *= zfrac[fs + k]
                        acc = 0.0
                        for s in range(q + 1):
                            acc += w[s] * e[q - s]
                        table[out + i] = -v * zi * others * acc

    @numba.njit(nogil=True, cache=False)
    def explain(
        x,
        lo,
        hi,
        tree_node_start,
        tree_edge_start,
        node_feat,
        node_thr,
        node_missing,
        node_default_left,
        edge_parent,
        edge_left,
        edge_bit,
        edge_first,
        edge_child,
        leaf_d,
        leaf_feat_start,
        leaf_feat,
        leaf_table_start,
        table,
        zero_threshold,
        out,
    ):
        n_trees = len(tree_node_start) - 1
        max_nodes = 1
        for t in range(n_trees):
            max_nodes = max(max_nodes, tree_node_start[t + 1] - tree_node_start[t])
        left = np.zeros(max_nodes, dtype=np.bool_)
        codes = np.zeros(max_nodes, dtype=np.int64)
        # rows in blocks, trees inside: a tree's tables stay in cache for the whole block
        for start in range(lo, hi, 256):
            stop = min(start + 256, hi)
            for t in range(n_trees):
                ns = tree_node_start[t]
                for row in range(start, stop):
                    for g in range(ns, tree_node_start[t + 1]):
                        val = x[row, node_feat[g]]
                        mt = node_missing[g]
                        if np.isnan(val) and mt != 2:
                            val = 0.0
                        if (mt == 1 and -zero_threshold <= val <= zero_threshold) or (
                            mt == 2 and np.isnan(val)
                        ):
                            left[g - ns] = node_default_left[g]
                        else:
                            left[g - ns] = val <= node_thr[g]
                    # the pattern code of every node, parents before children: bit b says
                    # whether the row follows every split so far on the path's b-th feature
                    codes[0] = 0
                    for e in range(tree_edge_start[t], tree_edge_start[t + 1]):
                        parent = edge_parent[e]
                        code = codes[parent]
                        if left[parent] == edge_left[e]:
                            if edge_first[e]:
                                code |= 1 << edge_bit[e]
                        elif not edge_first[e]:
                            code &= ~(1 << edge_bit[e])
                        child = edge_child[e]
                        if child >= 0:
                            codes[child] = code
                            continue
                        leaf = -child - 1
                        d = leaf_d[leaf]
                        base = leaf_table_start[leaf] + code * d
                        fs = leaf_feat_start[leaf]
                        for k in range(d):
                            out[row, leaf_feat[fs + k]] += table[base + k]

    _SHAP_KERNELS = (tables, explain)
    return _SHAP_KERNELS


def treeshap_tables(booster, max_table_mb: float = 2048) -> dict:
    """Everything the exact kernel needs from a binary LightGBM booster with numerical splits:
    flattened split nodes, the tree edges in parent-before-child order and the per-leaf pattern
    tables. Raises ValueError for what it does not cover (categorical splits, linear trees,
    several models per round, tables above `max_table_mb`)."""
    if booster.num_model_per_iteration() != 1:
        raise ValueError("treeshap_tables covers binary and regression boosters only")
    dump = booster.dump_model()
    nodes: dict[str, list] = {"feat": [], "thr": [], "missing": [], "default_left": []}
    edges: dict[str, list] = {"parent": [], "left": [], "bit": [], "first": [], "child": []}
    leaf_value, leaf_d, leaf_feat_start, leaf_feat, zfrac = [], [], [], [], []
    tree_node_start, tree_edge_start, base = [0], [0], 0.0

    def count(node: dict) -> float:
        return float(node["internal_count"] if "split_index" in node else node["leaf_count"])

    def expected(node: dict) -> tuple[float, float]:
        if "split_index" not in node:
            return float(node["leaf_value"]), float(node.get("leaf_count", 0))
        el, cl = expected(node["left_child"])
        er, cr = expected(node["right_child"])
        c = cl + cr
        return ((el * cl + er * cr) / c if c > 0 else (el + er) / 2), c

    for tree in dump["tree_info"]:
        root = tree["tree_structure"]
        base += expected(root)[0]
        first_leaf = len(leaf_value)
        leaf_value.extend([0.0] * int(tree["num_leaves"]))
        leaf_d.extend([0] * int(tree["num_leaves"]))
        leaf_feat_start.extend([0] * int(tree["num_leaves"]))
        ns = len(nodes["feat"])
        # depth first, parents before children; a path is [(feature, cover ratio), ...] and its
        # distinct features are numbered in order of first appearance (the pattern's bits)
        stack: list[tuple[dict, int, bool, list]] = [(root, -1, False, [])]
        while stack:
            node, parent, goes_left, path = stack.pop()
            order: dict[int, int] = {}
            for f, _ in path:
                order.setdefault(f, len(order))
            if parent >= 0:
                f = path[-1][0]
                edges["parent"].append(parent)
                edges["left"].append(goes_left)
                edges["bit"].append(order[f])
                edges["first"].append(all(f != g for g, _ in path[:-1]))
            if "split_index" not in node:
                leaf = first_leaf + int(node.get("leaf_index", 0))
                if parent >= 0:
                    edges["child"].append(-leaf - 1)
                z = np.ones(len(order))
                for f, ratio in path:
                    z[order[f]] *= ratio
                leaf_value[leaf] = float(node["leaf_value"])
                leaf_d[leaf] = len(order)
                leaf_feat_start[leaf] = len(leaf_feat)
                leaf_feat.extend(order)
                zfrac.extend(z)
                continue
            if node.get("linear"):
                raise ValueError("linear trees are not covered")
            if node["decision_type"] != "<=":
                raise ValueError("categorical splits are not covered")
            g = len(nodes["feat"]) - ns
            if parent >= 0:
                edges["child"].append(g)
            f = int(node["split_feature"])
            nodes["feat"].append(f)
            nodes["thr"].append(float(node["threshold"]))
            nodes["missing"].append(_MISSING[node["missing_type"]])
            nodes["default_left"].append(bool(node["default_left"]))
            c = count(node)
            for child, left in ((node["right_child"], False), (node["left_child"], True)):
                ratio = count(child) / c if c > 0 else 0.5
                stack.append((child, g, left, [*path, (f, ratio)]))
        tree_node_start.append(len(nodes["feat"]))
        tree_edge_start.append(len(edges["parent"]))

    d = np.asarray(leaf_d, dtype=np.int64)
    if len(d) and d.max() > 40:
        raise ValueError("a leaf path has more than 40 distinct features")
    sizes = (np.left_shift(1, d) * d).astype(np.int64)
    if sizes.sum() * 8 > max_table_mb * 2**20:
        raise ValueError(
            f"TreeSHAP tables would take {sizes.sum() * 8 / 2**20:,.0f} MB (> {max_table_mb})"
        )
    t = {
        "tree_node_start": np.asarray(tree_node_start, dtype=np.int64),
        "tree_edge_start": np.asarray(tree_edge_start, dtype=np.int64),
        "node_feat": np.asarray(nodes["feat"], dtype=np.int64),
        "node_thr": np.asarray(nodes["thr"], dtype=np.float64),
        "node_missing": np.asarray(nodes["missing"], dtype=np.int8),
        "node_default_left": np.asarray(nodes["default_left"], dtype=np.bool_),
        "edge_parent": np.asarray(edges["parent"], dtype=np.int64),
        "edge_left": np.asarray(edges["left"], dtype=np.bool_),
        "edge_bit": np.asarray(edges["bit"], dtype=np.int64),
        "edge_first": np.asarray(edges["first"], dtype=np.bool_),
        "edge_child": np.asarray(edges["child"], dtype=np.int64),
        "leaf_d": d,
        "leaf_feat_start": np.asarray(leaf_feat_start, dtype=np.int64),
        "leaf_feat": np.asarray(leaf_feat, dtype=np.int64),
        "leaf_table_start": np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64),
        "table": np.zeros(int(sizes.sum())),
        "base": float(base),
        "n_features": booster.num_feature(),
    }
    tables, _ = _shap_kernels()
    tables(
        np.asarray(leaf_value, dtype=np.float64),
        d,
        t["leaf_feat_start"],
        np.asarray(zfrac, dtype=np.float64),
        t["leaf_table_start"],
        t["table"],
    )
    return t


_EXPLAIN_ARGS = (
    "tree_node_start",
    "tree_edge_start",
    "node_feat",
    "node_thr",
    "node_missing",
    "node_default_left",
    "edge_parent",
    "edge_left",
    "edge_bit",
    "edge_first",
    "edge_child",
    "leaf_d",
    "leaf_feat_start",
    "leaf_feat",
    "leaf_table_start",
    "table",
)


def treeshap_values(tables: dict, zz: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Exact TreeSHAP values (rows x model features, without the base value) for encoded rows
    `zz`, from `treeshap_tables`; rows are split across `num_threads` threads."""
    import itertools
    from concurrent.futures import ThreadPoolExecutor

    _, explain = _shap_kernels()
    zz = np.ascontiguousarray(zz, dtype=np.float64)
    out = np.zeros((len(zz), tables["n_features"]))
    args = [tables[k] for k in _EXPLAIN_ARGS]
    threads = max(1, min(int(num_threads), len(zz)))
    bounds = np.linspace(0, len(zz), threads + 1).astype(int)
    if threads == 1:
        explain(zz, 0, len(zz), *args, _ZERO_THRESHOLD, out)
        return out
    with ThreadPoolExecutor(threads) as pool:
        jobs = [
            pool.submit(explain, zz, int(lo), int(hi), *args, _ZERO_THRESHOLD, out)
            for lo, hi in itertools.pairwise(bounds)
        ]
        for job in jobs:
            job.result()
    return out


def _tables_or_none(model) -> dict | None:
    """TreeSHAP tables for a LightGBM model, or None (with a warning) for a booster they do not
    cover: the one place the choice between the tables and `pred_contrib` is made."""
    try:
        return treeshap_tables(model.booster_)
    except (ValueError, ImportError) as exc:
        log.warning("no TreeSHAP tables (%s): LightGBM pred_contrib instead", exc)
        return None


def exact_contributions(
    pipe: Pipeline,
    x: pd.DataFrame,
    num_threads: int | None = None,
    tables: dict | None = None,
    background: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, float]:
    """The same values as `contributions` (exact TreeSHAP, log-odds, same base value) for
    LightGBM with numerical splits, several times faster for many rows (`treeshap_tables`, or
    `tables` built before; `num_threads` threads, None: one per core); anything else, and a
    booster the tables do not cover, goes to `contributions` (with `background`)."""
    import os

    pre, model = pipe.named_steps["pre"], pipe.named_steps["model"]
    if type(model).__name__ != "LGBMClassifier":
        return contributions(pipe, x, background)
    if tables is None:
        tables = _tables_or_none(model)
        if tables is None:
            return contributions(pipe, x, background)
    inputs = list(x.columns)
    names, zz = _encode(pre, x)
    threads = num_threads if num_threads is not None else (os.cpu_count() or 1)
    phi = treeshap_values(tables, zz, threads)
    phi = _to_raw_features(phi, names, inputs)
    return pd.DataFrame(phi, columns=inputs, index=x.index), tables["base"]


_METHODS = {
    "LGBMClassifier": "LightGBM pred_contrib",
    "DecisionTreeClassifier": "shap.TreeExplainer",
    "LogisticRegression": "linear attribution",
}


@dataclass
class CustomerReasons:
    """What `customer_reasons` found, and how."""

    reasons: pd.DataFrame  # the `top_reasons` table, indexed like the rows explained
    contributions: pd.DataFrame  # per row and feature, log-odds of the uncalibrated model
    base: float  # the base value the contributions add to
    method: str  # how the contributions were computed
    wall_s: dict[str, float] = field(default_factory=dict)  # tables, contributions, sentences
    cpu_s: dict[str, float] = field(default_factory=dict)  # the same in CPU seconds


def customer_reasons(
    pipe: Pipeline,
    x: pd.DataFrame,
    registry: pd.DataFrame,
    k: int,
    num_threads: int | None = None,
    background: pd.DataFrame | None = None,
    tables: bool = True,
) -> CustomerReasons:
    """Top-k reasons per row (in English and Chinese), with the contributions and base value
    behind them, for the explain stage and bench/score.py.

    Exact contributions whatever the model: LightGBM through per-leaf TreeSHAP tables
    (`num_threads` threads; `pred_contrib` for boosters the tables do not cover, or with
    `tables=False`), the others as `contributions` does, logistic regression centred on
    `background` (the population, not the at-risk rows). `wall_s` / `cpu_s` time the steps:
    `tables` (building them), `contributions` (including the tables) and `sentences`."""
    model = pipe.named_steps["model"]
    kind = type(model).__name__
    wall0, cpu0 = time.perf_counter(), time.process_time()
    built = _tables_or_none(model) if tables and kind == "LGBMClassifier" else None
    wall1, cpu1 = time.perf_counter(), time.process_time()
    if built is not None:
        contrib, base = exact_contributions(pipe, x, num_threads=num_threads, tables=built)
        method = "exact TreeSHAP tables"
    else:
        contrib, base = contributions(pipe, x, background)
        method = _METHODS.get(kind, kind)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    reasons = top_reasons_fast(contrib, x, registry, k=k)
    wall3, cpu3 = time.perf_counter(), time.process_time()
    return CustomerReasons(
        reasons,
        contrib,
        base,
        method,
        {"tables": wall1 - wall0, "contributions": wall2 - wall0, "sentences": wall3 - wall2},
        {"tables": cpu1 - cpu0, "contributions": cpu2 - cpu0, "sentences": cpu3 - cpu2},
    )
