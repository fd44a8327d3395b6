"""The explain stage's fast path for reasons: table-based exact TreeSHAP and `top_reasons_fast`.

Both replace slower code whose output marketing already sees, so they are held to its exact
output: the tables to LightGBM's own `pred_contrib` (atol 1e-8), the sentence builder to
`top_reasons`, cell for cell. Models are fitted on seeded numpy tables through the train
stage's `fit_candidate` (numbers with gaps, string categoricals ordinal-encoded for LightGBM).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from churnlight.features.registry import FAMILIES, build_registry, registry_frame
from churnlight.models.explain.contributions import (
    contributions,
    exact_contributions,
    raw_score,
)
from churnlight.models.explain.reasons import top_reasons, top_reasons_fast
from churnlight.models.explain.treeshap import treeshap_tables, treeshap_values
from churnlight.models.explain.workflow import customer_reasons
from churnlight.models.train import fit_candidate

FEATURES = ["spend_90d", "tenure_days", "nps_last", "complaints_open", "plan", "region"]
ATOL = 1e-8
# the ends of train.search_space.lgbm (num_leaves [7, 63], max_depth [3, 8]) and a middle
# model with row and column sampling
# build_pipeline takes every hyperparameter explicitly: neutral values for those a config omits
LGBM_BASE = {
    "learning_rate": 0.05,
    "max_depth": -1,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "reg_lambda": 0.0,
    "n_jobs": 1,
}
LGBM_CONFIGS = {
    "small": {"n_estimators": 30, "num_leaves": 7, "max_depth": 3, "min_child_samples": 20},
    "large": {"n_estimators": 25, "num_leaves": 63, "max_depth": 8, "min_child_samples": 5},
    "sampled": {
        "n_estimators": 30,
        "num_leaves": 31,
        "max_depth": 5,
        "min_child_samples": 10,
        "subsample": 0.7,
        "colsample_bytree": 0.6,
        "reg_lambda": 1.0,
    },
}


def _table(n: int, seed: int) -> pd.DataFrame:
    """Label from numbers and categories; gaps in every column but `tenure_days`, which is
    complete in training (LightGBM then has no missing direction for it)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "spend_90d": rng.gamma(2.0, 500.0, n),
            "tenure_days": rng.integers(30, 2000, n).astype(float),
            "nps_last": rng.integers(0, 11, n).astype(float),
            "complaints_open": rng.poisson(0.4, n).astype(float),  # mostly zeros
            "plan": pd.Series(rng.choice(["basic", "standard", "premium"], n), dtype="str"),
            "region": pd.Series(rng.choice(["north", "south", "east", "west"], n), dtype="str"),
        }
    )
    logit = (
        -0.8
        - 0.0008 * (df["spend_90d"] - 1000)
        - 0.25 * (df["nps_last"] - 5)
        + 0.6 * df["complaints_open"]
        - 0.0005 * (df["tenure_days"] - 1000)
        + 1.2 * (df["plan"] == "basic")
        + 0.5 * (df["region"] == "east")
    )
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    for col, share in (("spend_90d", 0.05), ("nps_last", 0.2), ("plan", 0.1), ("region", 0.05)):
        df.loc[rng.random(n) < share, col] = np.nan
    df.loc[rng.random(n) < 0.05, "complaints_open"] = np.nan
    return df


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _table(3000, seed=0)


def _thresholds(booster: lgb.Booster) -> list[tuple[int, float]]:
    out = []

    def walk(node: dict) -> None:
        if "split_index" in node:
            out.append((int(node["split_feature"]), float(node["threshold"])))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return out


def _depths(booster: lgb.Booster) -> list[int]:
    def depth(node: dict) -> int:
        if "split_index" not in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    return [depth(t["tree_structure"]) for t in booster.dump_model()["tree_info"]]


def _rows(pipe: Pipeline, seed: int = 1) -> pd.DataFrame:
    """Unseen rows plus the hard cases: every feature missing, a missing value where training
    had none, an unknown category, zeros, and numbers exactly on the model's split thresholds."""
    x = _table(300, seed)[FEATURES]
    x.loc[x.index[:3], FEATURES] = np.nan
    x.loc[x.index[3:6], "tenure_days"] = np.nan
    x.loc[x.index[6], "plan"] = "enterprise"
    x.loc[x.index[7:10], ["spend_90d", "complaints_open", "nps_last"]] = 0.0
    names = list(pipe.named_steps["pre"].get_feature_names_out())
    numeric = [n for n in names if n in ("spend_90d", "tenure_days", "nps_last", "complaints_open")]
    splits = [(names[f], thr) for f, thr in _thresholds(pipe.named_steps["model"].booster_)]
    splits = [(n, thr) for n, thr in splits if n in numeric]
    assert splits
    for i, (name, thr) in enumerate(splits[:100]):
        x.loc[x.index[20 + i], name] = thr
    x.index = x.index + 5000  # contributions keep the caller's index
    return x


@pytest.fixture(scope="module", params=list(LGBM_CONFIGS))
def fitted(request, table) -> tuple[str, Pipeline, pd.DataFrame]:
    pipe = fit_candidate("lgbm", table, FEATURES, {**LGBM_BASE, **LGBM_CONFIGS[request.param]}, 3)
    return request.param, pipe, _rows(pipe)


# --- 1. the tables are LightGBM's own TreeSHAP ---------------------------------------------------


def test_configs_reach_the_ends_of_the_search_space(fitted):
    """The models really are as small / large / deep as the search space allows."""
    name, pipe, _ = fitted
    booster = pipe.named_steps["model"].booster_
    leaves = [int(t["num_leaves"]) for t in booster.dump_model()["tree_info"]]
    depths = _depths(booster)
    cfg = LGBM_CONFIGS[name]
    assert max(leaves) <= cfg["num_leaves"] and max(depths) <= cfg["max_depth"]
    if name == "small":
        assert max(depths) == 3
    if name == "large":
        assert max(leaves) == 63 and max(depths) == 8  # features repeat along the paths


def test_exact_contributions_equal_pred_contrib(fitted):
    _, pipe, x = fitted
    fast, fast_base = exact_contributions(pipe, x, num_threads=1)
    ref, ref_base = contributions(pipe, x)  # LightGBM pred_contrib, summed back per feature
    assert list(fast.columns) == FEATURES
    assert fast.index.equals(x.index)
    assert abs(fast_base - ref_base) < ATOL
    np.testing.assert_allclose(fast.to_numpy(), ref.to_numpy(), rtol=0, atol=ATOL)
    assert (np.abs(ref.to_numpy()) > 1e-3).mean() > 0.3  # not a vacuous comparison
    assert ref["plan"].abs().sum() > 0  # the ordinal-encoded categorical is explained too


def test_treeshap_values_equal_pred_contrib_per_encoded_column(fitted):
    _, pipe, x = fitted
    z = pipe.named_steps["pre"].transform(x).to_numpy(dtype=float)
    booster = pipe.named_steps["model"].booster_
    tables = treeshap_tables(booster)
    ref = booster.predict(z, pred_contrib=True)
    np.testing.assert_allclose(treeshap_values(tables, z), ref[:, :-1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(tables["base"], ref[:, -1], rtol=0, atol=ATOL)


def test_exact_contributions_add_up_to_the_raw_score(fitted):
    """Additivity in log-odds of the uncalibrated model, for the new path."""
    _, pipe, x = fitted
    contrib, base = exact_contributions(pipe, x)
    z = pipe.named_steps["pre"].transform(x)
    raw = pipe.named_steps["model"].booster_.predict(z.to_numpy(dtype=float), raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy() + base, raw, rtol=0, atol=ATOL)
    np.testing.assert_allclose(
        contrib.sum(axis=1).to_numpy() + base, raw_score(pipe, x), rtol=0, atol=1e-6
    )


def test_threads_and_prebuilt_tables_change_nothing(fitted):
    _, pipe, x = fitted
    one, _ = exact_contributions(pipe, x, num_threads=1)
    tables = treeshap_tables(pipe.named_steps["model"].booster_)
    three, base = exact_contributions(pipe, x, num_threads=3, tables=tables)
    np.testing.assert_array_equal(one.to_numpy(), three.to_numpy())
    assert base == tables["base"]
    empty, _ = exact_contributions(pipe, x.iloc[:0], tables=tables)
    assert empty.shape == (0, len(FEATURES))


@pytest.mark.parametrize("zero_as_missing", [False, True], ids=["nan-missing", "zero-missing"])
def test_missing_directions_follow_lightgbm(zero_as_missing):
    """Both missing types LightGBM writes (NaN, Zero), with zeros and NaN in the rows."""
    rng = np.random.default_rng(5)
    n = 2000
    xs = rng.normal(size=(n, 4))
    xs[rng.random(n) < 0.3, 0] = 0.0
    y = (xs[:, 0] + 0.5 * xs[:, 1] - xs[:, 2] + rng.normal(size=n) > 0).astype(int)
    xs[rng.random(n) < 0.15, 1] = np.nan
    xs[rng.random(n) < 0.2, 3] = 0.0
    model = lgb.LGBMClassifier(
        n_estimators=20,
        num_leaves=15,
        max_depth=5,
        min_child_samples=10,
        zero_as_missing=zero_as_missing,
        n_jobs=1,
        verbose=-1,
    ).fit(xs, y)
    booster = model.booster_
    kinds = {
        node["missing_type"]
        for tree in booster.dump_model()["tree_info"]
        for node in _nodes(tree["tree_structure"])
    }
    assert ("Zero" if zero_as_missing else "NaN") in kinds
    rows = rng.normal(size=(300, 4))
    rows[:50, 0] = 0.0
    rows[50:100, 1] = np.nan
    rows[100:150, 2] = np.nan  # no missing in training: treated as zero
    rows[150:160] = np.nan
    rows[160:170, 3] = -0.0
    ref = booster.predict(rows, pred_contrib=True)
    tables = treeshap_tables(booster)
    np.testing.assert_allclose(treeshap_values(tables, rows), ref[:, :-1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(tables["base"], ref[:, -1], rtol=0, atol=ATOL)


def _nodes(node: dict):
    if "split_index" in node:
        yield node
        yield from _nodes(node["left_child"])
        yield from _nodes(node["right_child"])


def test_single_leaf_trees():
    """Boosting that finds no split (min_child_samples above the data) gives one-leaf trees."""
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(200, 3))
    y = (rng.random(200) < 0.3).astype(int)
    booster = (
        lgb.LGBMClassifier(n_estimators=5, min_child_samples=500, n_jobs=1, verbose=-1)
        .fit(xs, y)
        .booster_
    )
    ref = booster.predict(xs, pred_contrib=True)
    tables = treeshap_tables(booster)
    np.testing.assert_allclose(treeshap_values(tables, xs), ref[:, :-1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(tables["base"], ref[:, -1], rtol=0, atol=ATOL)


def _categorical_split_pipeline() -> tuple[pd.DataFrame, Pipeline]:
    """A small LightGBM pipeline with LightGBM's own categorical splits on column `c`."""
    rng = np.random.default_rng(3)
    n = 2000
    x = pd.DataFrame({"a": rng.normal(size=n), "c": rng.integers(0, 6, n).astype(float)})
    y = ((x["a"] + np.isin(x["c"], [1, 4]) * 1.5 + rng.normal(size=n)) > 0.7).astype(int)
    pre = ColumnTransformer([("all", "passthrough", ["a", "c"])], verbose_feature_names_out=False)
    pre.set_output(transform="pandas")
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, n_jobs=1, verbose=-1)
    pipe = Pipeline([("pre", pre), ("model", model)]).fit(x, y, model__categorical_feature=[1])
    return x, pipe


def test_categorical_splits_fall_back_to_pred_contrib():
    """LightGBM's own categorical splits are not in the tables: refused, then pred_contrib."""
    x, pipe = _categorical_split_pipeline()
    with pytest.raises(ValueError, match="categorical"):
        treeshap_tables(pipe.named_steps["model"].booster_)
    fast, fast_base = exact_contributions(pipe, x.iloc[:200])
    ref, ref_base = contributions(pipe, x.iloc[:200])
    pd.testing.assert_frame_equal(fast, ref)
    assert fast_base == ref_base


# --- 2. the fast sentence builder is top_reasons ------------------------------------------------

PROFILE = {"plan": False, "employee_count": True, "contract_type": False}


@pytest.fixture(scope="module")
def registry() -> pd.DataFrame:
    return registry_frame(
        build_registry([30, 90, 180, 365], dict.fromkeys(FAMILIES, True), PROFILE)
    )


def _registry_rows(registry: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Every registered feature, in the dtypes the features table uses (float64 with NaN,
    nullable Int64 / Float64 with pd.NA, `string` and `str` categoricals), gaps everywhere."""
    rng = np.random.default_rng(seed)
    cols = {}
    for i, r in enumerate(registry.itertuples()):
        gap = rng.random(n) < 0.15
        if r.unit == "category":
            levels = np.array(["basic", "gold", "monthly", "dormant", "core"], dtype=object)
            v = pd.Series(rng.choice(levels, n), dtype="string" if i % 2 else "str")
        elif r.unit in ("count", "flag", "months"):
            high = 2 if r.unit == "flag" else 12
            v = pd.Series(rng.integers(0, high, n), dtype="Int64")
        elif r.unit in ("share", "ratio"):
            v = pd.Series(rng.uniform(-0.5, 3.0, n), dtype="Float64" if i % 2 else "float64")
        else:
            v = pd.Series(rng.gamma(2.0, 50.0, n).round(rng.integers(0, 3)))
        cols[r.name] = v.mask(gap)
    return pd.DataFrame(cols, index=np.arange(n) * 7 + 3)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_reasons_fast_equals_top_reasons(registry, k):
    x = _registry_rows(registry, 400, seed=k)
    rng = np.random.default_rng(10 + k)
    contrib = pd.DataFrame(rng.normal(size=x.shape), columns=x.columns, index=x.index)
    contrib.iloc[:20] = -np.abs(contrib.iloc[:20])  # nothing pushes risk up
    contrib.iloc[20:40, 3:] = -1.0  # fewer positive reasons than k
    # every feature is somebody's first reason, so every template and fallback is rendered
    contrib.iloc[40 : 40 + x.shape[1]] += np.eye(x.shape[1]) * 10
    fast = top_reasons_fast(contrib, x, registry, k=k)
    slow = top_reasons(contrib, x, registry, k=k)
    pd.testing.assert_frame_equal(fast, slow)
    assert (slow["reason_1_en"] != "").sum() > 300
    assert slow["reason_1_zh"].str.contains("[\u4e00-\u9fff]").sum() > 300


# --- 3. the stage's reasons ----------------------------------------------------------------------


METHODS = {
    "logreg": "linear attribution",
    "tree": "shap.TreeExplainer",
    "lgbm": "exact TreeSHAP tables",
}


def _reasons_registry() -> pd.DataFrame:
    reg = registry_frame(build_registry([], {}, dict.fromkeys(FEATURES, False)))
    return reg.assign(unit=np.where(reg["name"].isin(["plan", "region"]), "category", "number"))


@pytest.mark.parametrize("kind", ["logreg", "tree", "lgbm"])
def test_customer_reasons_match_the_reference_path(kind, table):
    """The explain stage's reasons equal `top_reasons` on `contributions` for every kind, with
    logistic regression centred on the background, not on the rows explained."""
    reg = _reasons_registry()
    params = {
        "logreg": {"C": 1.0},
        "tree": {"max_depth": 4, "min_samples_leaf": 50},
        "lgbm": {**LGBM_BASE, **LGBM_CONFIGS["sampled"]},
    }[kind]
    pipe = fit_candidate(kind, table, FEATURES, params, seed=3)
    background = _table(500, seed=4)[FEATURES]
    x = _table(200, seed=5)[FEATURES]
    at_risk = x[pipe.predict_proba(x)[:, 1] > 0.5]
    assert len(at_risk) > 10
    got = customer_reasons(pipe, at_risk, reg, 3, num_threads=2, background=background)
    ref_contrib, ref_base = contributions(pipe, at_risk, background)
    pd.testing.assert_frame_equal(got.reasons, top_reasons(ref_contrib, at_risk, reg, k=3))
    np.testing.assert_allclose(got.contributions, ref_contrib, rtol=0, atol=ATOL)
    assert abs(got.base - ref_base) < ATOL
    assert got.method == METHODS[kind]
    assert set(got.wall_s) == set(got.cpu_s) == {"tables", "contributions", "sentences"}


@pytest.mark.parametrize("kind", ["logreg", "tree", "lgbm", "lgbm-pred_contrib"])
def test_customer_reasons_for_no_rows(kind, table):
    """Nobody in explain.reason_tiers: an empty table with every column, and the base value."""
    model, _, how = kind.partition("-")
    params = {
        "logreg": {"C": 1.0},
        "tree": {"max_depth": 4, "min_samples_leaf": 50},
        "lgbm": {**LGBM_BASE, **LGBM_CONFIGS["small"]},
    }[model]
    pipe = fit_candidate(model, table, FEATURES, params, seed=3)
    background = _table(500, seed=4)[FEATURES]
    x = _table(50, seed=5)[FEATURES]
    reg = _reasons_registry()
    tables = how != "pred_contrib"
    full = customer_reasons(pipe, x, reg, 3, background=background, tables=tables)
    none = customer_reasons(pipe, x.iloc[:0], reg, 3, background=background, tables=tables)
    assert none.reasons.empty and list(none.reasons.columns) == list(full.reasons.columns)
    assert none.contributions.empty and list(none.contributions.columns) == FEATURES
    assert abs(none.base - full.base) < ATOL
    assert none.method == full.method
    if how:
        assert none.method == "LightGBM pred_contrib"


def test_customer_reasons_fall_back_to_pred_contrib_for_categorical_splits(caplog):
    x, pipe = _categorical_split_pipeline()
    reg = registry_frame(build_registry([], {}, {"a": True, "c": True}))
    got = customer_reasons(pipe, x.iloc[:100], reg, 2)
    assert got.method == "LightGBM pred_contrib"
    assert "no TreeSHAP tables" in caplog.text
    ref, ref_base = contributions(pipe, x.iloc[:100])
    pd.testing.assert_frame_equal(got.contributions, ref)
    none = customer_reasons(pipe, x.iloc[:0], reg, 2)
    assert none.reasons.empty and none.base == ref_base
