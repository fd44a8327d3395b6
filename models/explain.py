"""Why a customer is at risk: additive contributions per feature, in log-odds of the
uncalibrated model, turned into plain sentences from the feature registry.

LightGBM uses its native TreeSHAP (`pred_contrib`), the decision tree `shap.TreeExplainer`, and
logistic regression its exact linear attribution (coefficient x centred value). Contributions of
encoded columns (one-hot levels, missing indicators) are summed back onto the raw feature, so the
base value plus the contributions still equals the model's raw score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

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


def contributions(pipe: Pipeline, x: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per-row, per-feature contributions (log-odds) and the base value."""
    pre, model = pipe.named_steps["pre"], pipe.named_steps["model"]
    z = pre.transform(x)
    names = list(z.columns)
    kind = type(model).__name__
    if kind == "LGBMClassifier":
        raw = model.booster_.predict(z.to_numpy(dtype=float), pred_contrib=True)
        phi, base = raw[:, :-1], float(raw[0, -1])
    elif kind == "DecisionTreeClassifier":
        import shap

        explainer = shap.TreeExplainer(model, model_output="raw")
        sv = explainer.shap_values(z.to_numpy(dtype=float), check_additivity=False)
        # a scikit-learn tree explains probabilities; convert both to log-odds additively
        phi_p = sv[..., 1] if np.ndim(sv) == 3 else sv[1]
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
        mean = pre.transform(x).to_numpy(dtype=float).mean(axis=0) if len(x) else 0
        zz = z.to_numpy(dtype=float)
        phi = (zz - mean) * coef
        base = float(model.intercept_[0] + (mean * coef).sum())
    else:
        raise TypeError(f"no explainer for {kind}")
    inputs = list(x.columns)
    src = [_source_feature(n, inputs) for n in names]
    contrib = pd.DataFrame(phi, columns=names, index=x.index).T.groupby(src, sort=False).sum().T
    return contrib.reindex(columns=inputs, fill_value=0.0), base


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
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
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


def reason_sentence(name: str, value, registry: pd.DataFrame, lang: str, row=None) -> str:
    """One plain sentence for a feature and the customer's own values; never the raw name.

    `registry` may be indexed by name already (the fast path for many rows); `row` holds the
    customer's other feature values for sentences that compare two of them."""
    row = {name: value} if row is None else row
    template = TEMPLATES.get(name)
    missing = value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
    if template is not None and not missing:
        try:
            return template[0 if lang == "en" else 1](row)
        except (KeyError, TypeError, ValueError):
            pass  # a value the template cannot phrase: fall back to the description
    reg = registry if registry.index.name == "name" else registry.set_index("name")
    spec = reg.loc[name]
    desc = spec["description_en"] if lang == "en" else spec["description_zh"]
    val = _fmt(value, spec["unit"], lang)
    return f"{desc}: {val}" if lang == "en" else f"{desc}：{val}"


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


def figures(
    contrib: pd.DataFrame,
    x: pd.DataFrame,
    feat_imp: pd.DataFrame,
    fam_imp: pd.DataFrame,
    registry: pd.DataFrame,
    out_dir,
    n_dependence: int = 4,
    top: int = 15,
) -> list[str]:
    """Bar, beeswarm, family and dependence figures (PNG); returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    desc = registry.set_index("name")["description_en"]
    names = feat_imp["name"].head(top).tolist()
    written = []
    fig, ax = plt.subplots(figsize=(9, 6))
    d = feat_imp.head(top).iloc[::-1]
    colours = {
        "behaviour": "#4C72B0",
        "attitude": "#DD8452",
        "external": "#55A868",
        "profile": "#8172B3",
    }
    ax.barh(
        [desc[n] for n in d["name"]],
        d["mean_abs_shap"],
        color=[colours.get(f, "grey") for f in d["family"]],
    )
    ax.set_xlabel("mean |SHAP| (log-odds of the uncalibrated model)")
    ax.set_title("Top drivers of churn risk")
    fig.tight_layout()
    fig.savefig(out_dir / "shap_bar.png", dpi=110)
    plt.close(fig)
    written.append("shap_bar.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(
        fam_imp["family"],
        fam_imp["share"],
        color=[colours.get(f, "grey") for f in fam_imp["family"]],
    )
    ax.set_ylabel("share of mean |SHAP|")
    ax.set_title("Drivers by family")
    fig.tight_layout()
    fig.savefig(out_dir / "shap_families.png", dpi=110)
    plt.close(fig)
    written.append("shap_families.png")

    fig, ax = plt.subplots(figsize=(9, 6))
    rng = np.random.default_rng(0)
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
    ax.set_xlabel("SHAP value (log-odds); colour: feature value low (blue) to high (red)")
    ax.set_title("How each driver moves risk")
    fig.tight_layout()
    fig.savefig(out_dir / "shap_beeswarm.png", dpi=110)
    plt.close(fig)
    written.append("shap_beeswarm.png")

    numeric = [n for n in names if pd.api.types.is_numeric_dtype(x[n])][:n_dependence]
    for n in numeric:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter(x[n].astype(float), contrib[n], s=6, alpha=0.5)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xlabel(desc[n], fontsize=8)
        ax.set_ylabel("SHAP (log-odds)")
        fig.tight_layout()
        fig.savefig(out_dir / f"shap_dependence_{n}.png", dpi=110)
        plt.close(fig)
        written.append(f"shap_dependence_{n}.png")
    return written
