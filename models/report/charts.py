"""The two charts the card draws itself (calibration and cumulative gains), as PNG bytes, in the
card's language when matplotlib has a font for it.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pandas as pd

from churnlight.models import fonts
from churnlight.models.report.format import pct

# the card's messages share one logger, whichever module writes them
log = logging.getLogger("churnlight.report")


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


_TIER_WORDS = {
    "en": {"all": "overall", "high": "high risk", "medium": "medium risk", "low": "low risk"},
    "zh": {
        "all": "总体",
        "high": "高风险",
        "medium": "中风险",
        "low": "低风险",
        "platinum": "白金",
        "gold": "黄金",
        "silver": "白银",
        "regular": "普通",
    },
}


def campaign_chart(rows: pd.DataFrame, lang: str = "en") -> bytes:
    """Churn rate of the contacted (treatment) against the held-out (control) customers, overall
    and per tier, pooled over the evaluated campaigns; the uplift written above each pair."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    font, _ = _chart_words(lang)
    zh = chart_language(lang) == "zh"
    w = (
        {
            "t": "联系组",
            "c": "对照组（未联系）",
            "y": "窗口内流失率",
            "title": "联系组与对照组的流失率",
            "uplift": "挽回 {:+.1f} 个百分点",
        }
        if zh
        else {
            "t": "treatment (contacted)",
            "c": "control (held out)",
            "y": "churn rate in the window",
            "title": "Churn rate: contacted vs held out, per tier",
            "uplift": "uplift {:+.1f} pp",
        }
    )
    words = _TIER_WORDS["zh" if zh else "en"]
    labels = [words.get(t, t) for t in rows["tier"]]
    treat = rows["churn_rate_treatment"].to_numpy(dtype=float)
    control = rows["churn_rate_control"].to_numpy(dtype=float)
    x = np.arange(len(rows))
    with matplotlib.rc_context(
        {"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"]}
    ):
        fig = Figure(figsize=(6.4, 4.2))
        ax = fig.subplots()
        ax.bar(x - 0.2, control, 0.4, color="#9ca3af", label=w["c"])
        ax.bar(x + 0.2, treat, 0.4, color="#1d4ed8", label=w["t"])
        top = float(np.nanmax(np.r_[treat, control, 0.05]))
        for i, (c, t) in enumerate(zip(control, treat, strict=True)):
            ax.text(
                i,
                max(c, t) + top * 0.03,
                w["uplift"].format(100 * (c - t)),
                ha="center",
                fontsize=9,
            )
        ax.set_xticks(x, labels)
        ax.set_ylim(0, top * 1.25)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel(w["y"])
        ax.set_title(w["title"], fontsize=11)
        ax.grid(axis="y", alpha=0.25)
        ax.legend(loc="upper right", fontsize=9, frameon=False)
        fig.tight_layout()
        return _png(fig)
