"""Additive contributions per feature, in log-odds of the uncalibrated model, and the global
importance built from them.

LightGBM uses its native TreeSHAP (`pred_contrib`, or the equal and faster per-leaf tables of
`treeshap` for many rows), the decision tree `shap.TreeExplainer`, and logistic regression its
exact linear attribution (coefficient x centred value). Contributions of encoded columns (one-hot
levels, missing indicators) are summed back onto the raw feature, so the base value plus the
contributions still equals the model's raw score.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from churnlight.models.explain.treeshap import treeshap_tables, treeshap_values

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


def tables_or_none(model) -> dict | None:
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
    LightGBM with numerical splits, faster for many rows (`treeshap_tables`, or `tables` built
    before; `num_threads` threads, None: one per core); anything else, and a booster the tables
    do not cover, goes to `contributions` (with `background`)."""
    pre, model = pipe.named_steps["pre"], pipe.named_steps["model"]
    if type(model).__name__ != "LGBMClassifier":
        return contributions(pipe, x, background)
    if tables is None:
        tables = tables_or_none(model)
        if tables is None:
            return contributions(pipe, x, background)
    inputs = list(x.columns)
    names, zz = _encode(pre, x)
    threads = num_threads if num_threads is not None else (os.cpu_count() or 1)
    phi = treeshap_values(tables, zz, threads)
    phi = _to_raw_features(phi, names, inputs)
    return pd.DataFrame(phi, columns=inputs, index=x.index), tables["base"]
