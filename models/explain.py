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
        p = np.clip(base_p + phi_p.sum(axis=1), 1e-6, 1 - 1e-6)
        b = np.clip(base_p, 1e-6, 1 - 1e-6)
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
    p = np.clip(pipe.predict_proba(x)[:, 1], 1e-12, 1 - 1e-12)
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


def reason_sentence(name: str, value, registry: pd.DataFrame, lang: str) -> str:
    """One plain sentence for a feature and the customer's own value; never the raw name.

    `registry` may be indexed by name already (the fast path for many rows).
    """
    reg = registry if registry.index.name == "name" else registry.set_index("name")
    row = reg.loc[name]
    desc = row["description_en"] if lang == "en" else row["description_zh"]
    val = _fmt(value, row["unit"], lang)
    return f"{desc}: {val}" if lang == "en" else f"{desc}：{val}"


def top_reasons(
    contrib: pd.DataFrame, x: pd.DataFrame, registry: pd.DataFrame, k: int = 3
) -> pd.DataFrame:
    """The k features pushing each customer's risk up the most, as sentences in both languages."""
    values = contrib.to_numpy()
    order = np.argsort(-values, axis=1)[:, :k]
    cols = np.array(contrib.columns)
    reg = registry.set_index("name")
    xs = x.to_numpy(dtype=object)
    col_idx = {c: i for i, c in enumerate(x.columns)}
    out: dict[str, list] = {}
    for j in range(k):
        names = cols[order[:, j]]
        pos = values[np.arange(len(values)), order[:, j]] > 0
        vals = [xs[i, col_idx[n]] for i, n in enumerate(names)]
        out[f"reason_{j + 1}_feature"] = np.where(pos, names, None)
        out[f"reason_{j + 1}_family"] = np.where(pos, reg.loc[names, "family"].to_numpy(), None)
        for lang in ("en", "zh"):
            out[f"reason_{j + 1}_{lang}"] = [
                reason_sentence(n, v, reg, lang) if ok else ""
                for n, v, ok in zip(names, vals, pos, strict=True)
            ]
    return pd.DataFrame(out, index=x.index)
