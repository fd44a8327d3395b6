"""The SHAP figures (driver bars, families, beeswarm, dependence), in English, and in Chinese when
matplotlib has a CJK font; labels are the registry's descriptions, never raw feature names.

Drawing returns matplotlib figures; `save_figures` writes them into a folder it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from churnlight.features.registry import family_name
from churnlight.models import fonts

log = logging.getLogger(__name__)

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
        # x labels on two lines: on one line they are wider than the axes once the long feature
        # labels on the left push the axes right
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


def check_figure_languages(languages: Sequence[str]) -> None:
    """Refuse a bad `explain.figure_languages` before anything is computed or written: every
    language must be one figures can be drawn in, and English must be among them."""
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


def _beeswarm(fig, contrib: pd.DataFrame, x: pd.DataFrame, names: list[str], labels, rng):
    """One row of dots per feature (largest on top): contribution against jitter, coloured by
    the feature's value from low (blue) to high (red); categories by their order of appearance."""
    ax = fig.subplots()
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
    ax.set_yticks(range(len(names)), labels[::-1], fontsize=8)
    ax.axvline(0, color="black", lw=0.5)
    return ax


def figure_set(
    contrib: pd.DataFrame,
    x: pd.DataFrame,
    feat_imp: pd.DataFrame,
    fam_imp: pd.DataFrame,
    registry: pd.DataFrame,
    lang: str = "en",
    *,
    n_dependence: int,
    top: int = 15,
    seed: int,
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

    d = feat_imp.head(top).iloc[::-1]
    figs["shap_bar"] = fig = Figure(figsize=(9, 6))
    labels = [desc[n] for n in d["name"]]
    _bar(fig, labels, d["mean_abs_shap"], d["family"], True, words["bar_x"], words["bar_title"])

    figs["shap_families"] = fig = Figure(figsize=(6, 3.5))
    labels = [family_name(f, lang) for f in fam_imp["family"]]
    shares, families = fam_imp["share"], fam_imp["family"]
    _bar(fig, labels, shares, families, False, words["family_y"], words["family_title"])

    figs["shap_beeswarm"] = fig = Figure(figsize=(9, 6))
    rng = np.random.default_rng(seed)
    ax = _beeswarm(fig, contrib, x, names, [desc[n] for n in names], rng)
    ax.set_xlabel(words["swarm_x"])
    ax.set_title(words["swarm_title"])

    numeric = [n for n in names if pd.api.types.is_numeric_dtype(x[n])][:n_dependence]
    for n in numeric:
        figs[f"shap_dependence_{n}"] = fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        ax.scatter(x[n].astype(float), contrib[n], s=6, alpha=0.5)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xlabel(desc[n], fontsize=8)
        ax.set_ylabel(words["dependence_y"])
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
    *,
    n_dependence: int,
    top: int = 15,
    seed: int,
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
                contrib,
                x,
                feat_imp,
                fam_imp,
                registry,
                lang,
                n_dependence=n_dependence,
                top=top,
                seed=seed,
            )
    return out


def save_figures(figs: dict[str, dict], folder: Path) -> list[str]:
    """Each language's figures (from `figures`) as PNG: English in `folder`, the others under
    the same file names in `folder/<lang>`. Returns the files written, relative to `folder`."""
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
