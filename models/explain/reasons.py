"""Why a customer is at risk, in plain sentences: the features pushing the risk up the most,
phrased from the customer's own values and the feature registry, in English and Chinese.

The signals people act on have their own sentence (`TEMPLATES`); every other feature falls back
to its registry description and the value, a profile attribute as a statement about the customer.
`top_reasons_fast` gives the same table as `top_reasons` for hundreds of thousands of rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlight.features.registry import PROFILE_PREFIX


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
    contrib: pd.DataFrame, x: pd.DataFrame, registry: pd.DataFrame, k: int
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


# --- the same table for many rows: values read per column, sentences without a dict per row ---


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
    contrib: pd.DataFrame, x: pd.DataFrame, registry: pd.DataFrame, k: int
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
