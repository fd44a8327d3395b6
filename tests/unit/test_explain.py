"""Explanations: additive contributions in log-odds, and the plain sentences built from them.

Tiny models are fitted on a seeded synthetic feature table (numbers with missing values and a
string categorical with missing values) through the same `fit_candidate` the train stage uses.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import pytest

from churnlight.features.registry import FAMILIES, FAMILY_NAMES, build_registry, registry_frame
from churnlight.models import fonts
from churnlight.models.explain.contributions import (
    contributions,
    exact_contributions,
    importance,
    raw_score,
)
from churnlight.models.explain.figures import (
    figure_font,
    figure_rc,
    figure_set,
    figures,
    save_figures,
)
from churnlight.models.explain.reasons import TEMPLATES, reason_sentence, top_reasons
from churnlight.models.train import fit_candidate

WINDOWS = [30, 90, 180, 365]
FEATURES = ["spend_90d", "tenure_days", "nps_last", "plan", "region"]
# build_pipeline takes every hyperparameter explicitly: neutral values for those not under test
LGBM_BASE = {
    "learning_rate": 0.05,
    "max_depth": -1,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "reg_lambda": 0.0,
    "n_jobs": 1,
}
MODEL_PARAMS = {
    "logreg": {"C": 1.0},
    "tree": {"max_depth": 4, "min_samples_leaf": 50},  # no pure leaf: see the pure-leaf test
    "lgbm": {**LGBM_BASE, "n_estimators": 40, "num_leaves": 7, "min_child_samples": 10},
}
CJK = re.compile(r"[\u4e00-\u9fff]")
SNAKE = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")


def _table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A feature table whose label depends on numbers and a category, with gaps in both."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "spend_90d": rng.gamma(2.0, 500.0, n),
            "tenure_days": rng.integers(30, 2000, n).astype(float),
            "nps_last": rng.integers(0, 11, n).astype(float),
            "plan": pd.Series(rng.choice(["basic", "standard", "premium"], n), dtype="str"),
            "region": pd.Series(rng.choice(["north", "south", "east"], n), dtype="str"),
        }
    )
    logit = (
        -0.5
        - 0.0008 * (df["spend_90d"] - 1000)
        - 0.25 * (df["nps_last"] - 5)
        + 1.2 * (df["plan"] == "basic")
        + 0.5 * (df["region"] == "east")
    )
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    # missing values in numbers and in the categoricals, after the label is drawn
    df.loc[rng.random(n) < 0.15, "nps_last"] = np.nan
    df.loc[rng.random(n) < 0.05, "spend_90d"] = np.nan
    df.loc[rng.random(n) < 0.10, "plan"] = np.nan
    df.loc[rng.random(n) < 0.05, "region"] = np.nan
    return df


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _table()


@pytest.fixture(scope="module")
def scoring_rows(table) -> pd.DataFrame:
    """Rows to explain: some unseen rows, rows with every feature missing, an unknown level."""
    x = _table(n=120, seed=1)[FEATURES]
    x.loc[x.index[:3], ["spend_90d", "nps_last", "plan", "region"]] = np.nan
    x.loc[x.index[3], "plan"] = "enterprise"  # a level never seen in training
    x.index = x.index + 1000  # contributions keep the caller's index
    assert x[["spend_90d", "nps_last", "plan", "region"]].isna().any().all()
    return x


# --- 1. additivity ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["logreg", "tree", "lgbm"])
def test_contributions_add_up_to_the_raw_score(kind, table, scoring_rows):
    pipe = fit_candidate(kind, table, FEATURES, MODEL_PARAMS[kind], seed=3)
    if kind == "tree":  # the rescaling to log-odds is exercised: several leaves, none pure
        tree = pipe.named_steps["model"].tree_
        leaves = tree.value[tree.children_left == -1, 0, :]
        share = leaves[:, 1] / leaves.sum(axis=1)
        assert len(share) > 3
        assert ((share > 0) & (share < 1)).all()
    contrib, base = contributions(pipe, scoring_rows)
    # one column per raw feature (encoded columns summed back), one row per input row
    assert list(contrib.columns) == FEATURES
    assert contrib.index.equals(scoring_rows.index)
    assert np.isfinite(contrib.to_numpy()).all()
    assert isinstance(base, float)
    np.testing.assert_allclose(
        contrib.sum(axis=1).to_numpy() + base, raw_score(pipe, scoring_rows), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["logreg", "tree", "lgbm"])
def test_categorical_features_get_contributions(kind, table, scoring_rows):
    """The one-hot / ordinal columns of `plan` are traced back to `plan`, and it matters."""
    pipe = fit_candidate(kind, table, FEATURES, MODEL_PARAMS[kind], seed=3)
    contrib, _ = contributions(pipe, scoring_rows)
    assert contrib["plan"].abs().sum() > 0


def test_tree_additivity_holds_with_pure_leaves():
    """A leaf with no churner (p = 0) is ordinary for a tree on a low churn rate."""
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["label"] = ((df["a"] > 0.5) & (rng.random(n) < 0.6)).astype(int)  # a <= 0.5: never churns
    pipe = fit_candidate("tree", df, ["a", "b"], {"max_depth": 3, "min_samples_leaf": 20}, seed=0)
    leaf_p = pipe.predict_proba(df[["a", "b"]])[:, 1]
    assert (leaf_p == 0).any()  # the situation under test
    contrib, base = contributions(pipe, df[["a", "b"]])
    np.testing.assert_allclose(
        contrib.sum(axis=1).to_numpy() + base, raw_score(pipe, df[["a", "b"]]), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["logreg", "tree", "lgbm"])
@pytest.mark.parametrize("how", ["contributions", "exact_contributions"])
def test_no_rows_give_an_empty_frame_and_the_same_base_value(kind, how, table, scoring_rows):
    """An empty tier (nobody in explain.reason_tiers) is a valid input for every model: no
    transform of zero rows, the raw features as columns, the base value as for any rows."""
    pipe = fit_candidate(kind, table, FEATURES, MODEL_PARAMS[kind], seed=3)
    explain = contributions if how == "contributions" else exact_contributions
    _, base = explain(pipe, scoring_rows, background=scoring_rows)
    none, empty_base = explain(pipe, scoring_rows.iloc[:0], background=scoring_rows)
    assert list(none.columns) == FEATURES
    assert none.empty and none.index.equals(scoring_rows.index[:0])
    assert isinstance(empty_base, float)
    assert abs(empty_base - base) < 1e-9
    assert none.dtypes.eq("float64").all()


def test_logreg_base_value_without_rows_or_background_is_the_intercept(table, scoring_rows):
    pipe = fit_candidate("logreg", table, FEATURES, MODEL_PARAMS["logreg"], seed=3)
    none, base = contributions(pipe, scoring_rows.iloc[:0])
    assert none.empty
    assert base == float(pipe.named_steps["model"].intercept_[0])


# --- 2. every registered feature renders a reason -----------------------------------------------

PROFILE = {"plan": False, "employee_count": True, "contract_type": False}
TYPICAL_BY_UNIT = {
    "count": 3.0,
    "days": 45.0,
    "ratio": 0.6,
    "share": 0.4,
    "currency": 1234.5,
    "score": 4.0,
    "flag": 1.0,
    "months": 2.0,
    "number": 12.0,
}
TYPICAL_BY_NAME = {
    "activity_30d_vs_baseline": 0.38,
    "spend_90d_vs_baseline": 0.25,
    "gap_ratio": 2.5,
    "reply_rate_90d": 0.3,
    "reply_rate_before": 0.6,
    "reply_rate_change": -0.3,
    "nps_last": 3.0,
    "csat_last": 2.0,
    "nps_change": -3.0,
    "industry_index_change_3m": -0.04,
    "industry_index_change_6m": -0.08,
    "value_tier": "gold",
    "care_layer": "dormant",
    "plan": "basic",
    "contract_type": "monthly",
}


@pytest.fixture(scope="module")
def registry() -> pd.DataFrame:
    specs = build_registry(WINDOWS, dict.fromkeys(FAMILIES, True), PROFILE)
    reg = registry_frame(specs)
    assert reg["name"].is_unique
    assert set(reg["family"]) == set(FAMILIES)
    return reg


@pytest.fixture(scope="module")
def typical_row(registry) -> dict:
    return {
        r.name: TYPICAL_BY_NAME.get(r.name, TYPICAL_BY_UNIT.get(r.unit))
        for r in registry.itertuples()
    }


def _check_sentence(text: str, name: str, lang: str) -> None:
    assert isinstance(text, str)
    assert text.strip(), f"{name} ({lang}): empty sentence"
    assert name not in text or "_" not in name, f"{name} ({lang}) shows the raw name: {text!r}"
    assert not SNAKE.search(text), f"{name} ({lang}) shows a snake_case name: {text!r}"
    assert not re.search(r"\bnan\b", text, re.IGNORECASE), f"{name} ({lang}): {text!r}"
    if lang == "zh":
        assert CJK.search(text), f"{name} (zh) has no Chinese: {text!r}"


def test_typical_row_covers_every_feature(registry, typical_row):
    missing = [n for n, v in typical_row.items() if v is None]
    assert missing == []
    assert len(registry) > 60  # all four families, four windows, three profile columns


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_feature_renders_a_reason_for_a_typical_value(registry, typical_row, lang):
    for name in registry["name"]:
        _check_sentence(
            reason_sentence(name, typical_row[name], registry, lang, typical_row), name, lang
        )


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("missing", [np.nan, None, pd.NA], ids=["nan", "none", "pd.NA"])
def test_every_feature_renders_a_reason_for_a_missing_value(registry, typical_row, lang, missing):
    word = "missing" if lang == "en" else "缺失"
    for name in registry["name"]:
        row = {**typical_row, name: missing}
        text = reason_sentence(name, missing, registry, lang, row)
        _check_sentence(text, name, lang)
        assert word in text, f"{name} ({lang}): a missing value is not said so: {text!r}"


def test_reason_sentence_accepts_a_registry_indexed_by_name(registry, typical_row):
    indexed = registry.set_index("name")
    for name in ("spend_90d", "nps_detractor", "plan", "employee_count"):
        for lang in ("en", "zh"):
            assert reason_sentence(name, typical_row[name], indexed, lang, typical_row) == (
                reason_sentence(name, typical_row[name], registry, lang, typical_row)
            )


def test_reason_sentence_without_a_row_uses_the_value(registry):
    assert reason_sentence("activity_30d_vs_baseline", 0.38, registry, "en") == (
        "Logins and visits in the last 30 days down 62% against the prior 90 days"
    )
    assert reason_sentence("recency_days", 120, registry, "zh") == "已120天未购买"


def test_every_template_belongs_to_a_registered_feature(registry):
    assert set(TEMPLATES) <= set(registry["name"])


@pytest.mark.parametrize(
    ("name", "value", "en", "zh"),
    [
        ("activity_30d_vs_baseline", 0.38, "down 62%", "下降62%"),
        ("activity_30d_vs_baseline", 1.5, "up 50%", "上升50%"),
        ("spend_90d_vs_baseline", 0.25, "down 75%", "下降75%"),
        ("gap_ratio", 2.5, "2.5x", "2.5倍"),
        ("reply_rate_change", -0.3, "from 60% to 30%", "从60%降至30%"),
        ("vague_replies_90d", 2.0, "2 vague", "2次"),
        ("competitor_mentions_90d", 1.0, "competitor 1 time", "竞争对手1次"),
        ("complaints_open", 2.0, "2 complaint", "2个投诉"),
        ("nps_last", 3.0, "3 out of 10", "3分"),
        ("csat_last", 2.0, "2 out of 5", "2分"),
        ("recency_days", 120.0, "No purchase for 120 days", "已120天未购买"),
        ("activity_recency_days", 75.0, "for 75 days", "已75天"),
        ("months_without_purchase", 3.0, "3 months", "连续3个月"),
        ("silent_days_after_complaint", 40.0, "Silent for 40 days", "沉默40天"),
        ("service_overdue_days", 95.0, "overdue by 95 days", "逾期95天"),
        ("competitor_launch_90d", 1.0, "competitor launched", "竞争对手"),
        ("policy_shock_180d", 1.0, "policy change", "政策变化"),
    ],
)
def test_templates(registry, typical_row, name, value, en, zh):
    row = {**typical_row, name: value}
    assert en in reason_sentence(name, value, registry, "en", row)
    assert zh in reason_sentence(name, value, registry, "zh", row)


def test_reply_rate_template_follows_the_direction_of_the_change(registry, typical_row):
    row = {**typical_row, "reply_rate_before": 0.3, "reply_rate_90d": 0.6, "reply_rate_change": 0.3}
    en = reason_sentence("reply_rate_change", 0.3, registry, "en", row)
    zh = reason_sentence("reply_rate_change", 0.3, registry, "zh", row)
    assert "fell" not in en, en
    assert "降" not in zh, zh


def test_fallback_formats_follow_the_unit(registry, typical_row):
    assert (
        reason_sentence("spend_90d", 1234.5, registry, "en") == "Spend in the last 90 days: 1,234"
    )
    assert reason_sentence("nps_detractor", 1.0, registry, "en").endswith(": yes")
    assert reason_sentence("nps_detractor", 0.0, registry, "zh").endswith("：否")
    assert reason_sentence("promo_share_365d", 0.4, registry, "en").endswith(": 40%")
    assert reason_sentence("tenure_days", 400.0, registry, "zh").endswith("：400天")
    assert reason_sentence("plan", "basic", registry, "en") == "Plan is basic"


TELECOM = {
    "Partner": False,
    "SeniorCitizen": True,
    "tenure": True,
    "PaperlessBilling": False,
    "Contract": False,
    "employee_count": True,
    "loyalty_band": False,
}


@pytest.fixture(scope="module")
def telecom_registry() -> pd.DataFrame:
    return registry_frame(build_registry([], {}, TELECOM))


@pytest.mark.parametrize(
    ("name", "value", "en", "zh"),
    [
        ("Contract", "Month-to-month", "Contract is Month-to-month", "合同类型为 Month-to-month"),
        ("loyalty_band", "金卡", "Loyalty band is 金卡", "loyalty band为金卡"),
        ("Partner", "No", "Partner: no", "是否有伴侣：否"),
        ("Partner", "Yes", "Partner: yes", "是否有伴侣：是"),
        ("PaperlessBilling", "true", "PaperlessBilling: yes", "是否电子账单：是"),
        ("PaperlessBilling", False, "PaperlessBilling: no", "是否电子账单：否"),
        ("SeniorCitizen", 1.0, "SeniorCitizen: yes", "是否老年用户：是"),
        ("SeniorCitizen", 0, "SeniorCitizen: no", "是否老年用户：否"),
        ("tenure", 34.0, "Tenure is 34", "在网时长（月）为 34"),
        ("employee_count", 1.0, "Employee count is 1", "employee count为 1"),  # a count, not yes
        ("tenure", np.nan, "Tenure is missing", "在网时长（月）缺失"),
        ("Partner", None, "Partner is missing", "是否有伴侣缺失"),
    ],
)
def test_profile_reasons_read_as_statements_about_the_customer(
    telecom_registry, name, value, en, zh
):
    """No "Customer attribute:" prefix and one colon at most; yes/no answers in Chinese as 是/否
    (a yes/no attribute is named as a question, 是否...); tenure in months."""
    assert reason_sentence(name, value, telecom_registry, "en") == en
    assert reason_sentence(name, value, telecom_registry, "zh") == zh


def test_profile_reasons_of_the_fast_path_are_the_same(telecom_registry):
    from churnlight.models.explain.reasons import top_reasons_fast

    x = pd.DataFrame(
        {
            "Partner": pd.Series(["No", "Yes", None], dtype="str"),
            "SeniorCitizen": [1.0, 0.0, np.nan],
            "tenure": pd.Series([34, 2, None], dtype="Int64"),
            "PaperlessBilling": pd.Series(["Yes", "No", "No"], dtype="string"),
            "Contract": ["Two year", "One year", "Month-to-month"],
            "employee_count": [1.0, 0.0, 12.0],
            "loyalty_band": ["金卡", "银卡", None],
        }
    )
    contrib = pd.DataFrame(
        np.arange(1, 1 + x.size, dtype=float).reshape(x.shape), columns=x.columns
    )
    fast = top_reasons_fast(contrib, x, telecom_registry, k=7)
    pd.testing.assert_frame_equal(fast, top_reasons(contrib, x, telecom_registry, k=7))
    zh = fast.filter(like="_zh").to_numpy().ravel().tolist()
    assert "是否有伴侣：否" in zh and "在网时长（月）为 34" in zh
    assert not [t for t in zh if "客户属性" in t or t.count("：") > 1], zh


# --- 3. top reasons -----------------------------------------------------------------------------


def _cells(df: pd.DataFrame) -> list[list]:
    """Cell values with every kind of missing as None (the columns may be str-typed)."""
    return df.astype(object).where(df.notna(), None).to_numpy().tolist()


REASON_FEATURES = ["recency_days", "nps_last", "competitor_launch_90d", "plan"]


@pytest.fixture
def reasons_case(registry):
    x = pd.DataFrame(
        {
            "recency_days": [120.0, 30.0, 10.0, 200.0],
            "nps_last": [3.0, np.nan, 9.0, 2.0],
            "competitor_launch_90d": [0.0, 1.0, 0.0, 1.0],
            "plan": pd.Series(["basic", None, "premium", "basic"], dtype="str"),
        },
        index=[10, 11, 12, 13],
    )
    contrib = pd.DataFrame(
        [
            [0.5, 1.2, -0.3, 0.1],  # three positive: nps, recency, plan
            [-0.1, -0.2, 0.7, -0.5],  # one positive: competitor launch
            [-0.4, -0.1, -0.2, -0.3],  # nothing pushes risk up
            [0.2, 0.0, 0.9, 0.4],  # zero is not a reason
        ],
        columns=REASON_FEATURES,
        index=x.index,
    )
    return contrib, x, registry


def test_top_reasons_rank_positive_contributions(reasons_case):
    contrib, x, registry = reasons_case
    out = top_reasons(contrib, x, registry, k=3)
    assert out.index.equals(x.index)
    feats = _cells(out[[f"reason_{j}_feature" for j in (1, 2, 3)]])
    assert feats == [
        ["nps_last", "recency_days", "plan"],
        ["competitor_launch_90d", None, None],
        [None, None, None],
        ["competitor_launch_90d", "plan", "recency_days"],
    ]


def test_top_reasons_fill_families_and_sentences(reasons_case):
    contrib, x, registry = reasons_case
    out = top_reasons(contrib, x, registry, k=3)
    fams = _cells(out[[f"reason_{j}_family" for j in (1, 2, 3)]])
    assert fams == [
        ["attitude", "behaviour", "profile"],
        ["external", None, None],
        [None, None, None],
        ["external", "profile", "behaviour"],
    ]
    for j in (1, 2, 3):
        for lang in ("en", "zh"):
            col = out[f"reason_{j}_{lang}"]
            has = out[f"reason_{j}_feature"].notna()
            assert (col[has].str.len() > 0).all()
            assert (col[~has] == "").all()
    assert out.loc[10, "reason_1_en"] == "Latest NPS answer 3 out of 10"
    assert out.loc[10, "reason_2_zh"] == "已120天未购买"
    assert out.loc[11, "reason_1_zh"] == "近90天客户所在地区有竞争对手推出新品或优惠"


def test_top_reasons_k_limits_the_columns(reasons_case):
    contrib, x, registry = reasons_case
    out = top_reasons(contrib, x, registry, k=2)
    assert not any(c.startswith("reason_3") for c in out.columns)
    assert [r[0] for r in _cells(out[["reason_1_feature"]])] == [
        "nps_last",
        "competitor_launch_90d",
        None,
        "competitor_launch_90d",
    ]


def test_top_reasons_from_a_real_model(table, scoring_rows, registry):
    """End to end on a fitted model: reasons are the largest positive contributions."""
    reg = pd.concat(
        [
            registry,
            registry_frame(build_registry([], {}, {"region": False})),
        ],
        ignore_index=True,
    ).drop_duplicates("name")
    pipe = fit_candidate("lgbm", table, FEATURES, MODEL_PARAMS["lgbm"], seed=3)
    contrib, _ = contributions(pipe, scoring_rows)
    out = top_reasons(contrib, scoring_rows, reg, k=3)
    for idx, row in contrib.iterrows():
        positive = row[row > 0].sort_values(ascending=False)
        expected = positive.index[:3].tolist()
        got = _cells(out.loc[[idx], [f"reason_{j}_feature" for j in (1, 2, 3)]])[0]
        assert got[: len(expected)] == expected
        assert all(g is None for g in got[len(expected) :])


def test_logreg_contributions_do_not_depend_on_the_rows_explained_with_a_background(
    table, scoring_rows
):
    """The stage explains only the at-risk tiers: centred on their own mean, what they all share
    would count for nothing, so the population (`background`) is the reference."""
    pipe = fit_candidate("logreg", table, FEATURES, MODEL_PARAMS["logreg"], seed=3)
    full, full_base = contributions(pipe, scoring_rows)
    subset = scoring_rows.iloc[::4]
    alone, base = contributions(pipe, subset, background=scoring_rows)
    np.testing.assert_allclose(alone.to_numpy(), full.loc[subset.index].to_numpy(), atol=1e-12)
    assert abs(base - full_base) < 1e-12
    np.testing.assert_allclose(
        alone.sum(axis=1).to_numpy() + base, raw_score(pipe, subset), rtol=0, atol=1e-6
    )
    own, _ = contributions(pipe, subset)  # centred on the subset: a different attribution
    assert not np.allclose(own.to_numpy(), alone.to_numpy())


# --- 4. SHAP figures in English and Chinese -----------------------------------------------------

FIGURE_FEATURES = [
    "recency_days",
    "activity_30d_vs_baseline",
    "spend_90d",
    "nps_last",
    "complaints_open",
    "competitor_launch_90d",
    "policy_shock_180d",
    "plan",
]
CJK_SKIP = "no CJK font for matplotlib (apt-get install fonts-noto-cjk): no Chinese figures"


@pytest.fixture
def needs_cjk_font() -> None:
    """Skips a test without a CJK font; looked up when a test needs it, not at collection."""
    if figure_font("zh") is None:
        pytest.skip(CJK_SKIP)


@pytest.fixture(scope="module")
def figure_case(registry):
    """Contributions of a few features from every family (one categorical) on 300 rows."""
    rng = np.random.default_rng(5)
    n = 300
    x = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 400, n).astype(float),
            "activity_30d_vs_baseline": rng.gamma(2.0, 0.5, n),
            "spend_90d": rng.gamma(2.0, 800.0, n),
            "nps_last": rng.integers(0, 11, n).astype(float),
            "complaints_open": rng.poisson(0.4, n).astype(float),
            "competitor_launch_90d": (rng.random(n) < 0.2).astype(float),
            "policy_shock_180d": (rng.random(n) < 0.1).astype(float),
            "plan": pd.Series(rng.choice(["basic", "standard", "premium"], n), dtype="str"),
        }
    )
    x.loc[rng.random(n) < 0.1, "nps_last"] = np.nan
    scale = np.linspace(1.0, 0.2, len(FIGURE_FEATURES))
    contrib = pd.DataFrame(rng.normal(size=(n, len(FIGURE_FEATURES))) * scale, columns=x.columns)
    feat_imp, fam_imp = importance(contrib, registry)
    return contrib, x, feat_imp, fam_imp, registry


def _texts(fig) -> list[str]:
    """Every piece of text on a drawn figure (titles, axis labels, tick labels)."""
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text().strip()]


def _drawn(case, lang: str) -> dict:
    """The figures of `lang`, drawn in its font (as `figures` saves them)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    contrib, x, feat_imp, fam_imp, registry = case
    with matplotlib.rc_context(figure_rc(figure_font(lang))):
        figs = figure_set(contrib, x, feat_imp, fam_imp, registry, lang, n_dependence=2, seed=0)
        for fig in figs.values():
            FigureCanvasAgg(fig).draw()
    return figs


@pytest.mark.usefixtures("needs_cjk_font")
def test_figures_write_chinese_versions_under_the_english_names(figure_case, tmp_path):
    contrib, x, feat_imp, fam_imp, registry = figure_case
    figs = figures(contrib, x, feat_imp, fam_imp, registry, ["en", "zh"], n_dependence=2, seed=0)
    assert list(tmp_path.iterdir()) == []  # the library draws; the stage saves
    assert list(figs) == ["en", "zh"] and list(figs["en"]) == list(figs["zh"])
    written = save_figures(figs, tmp_path)
    en = sorted(p.name for p in tmp_path.glob("*.png"))
    zh = sorted(p.name for p in (tmp_path / "zh").glob("*.png"))
    assert en == zh
    assert {"shap_bar.png", "shap_families.png", "shap_beeswarm.png"} < set(en)
    assert len([n for n in en if n.startswith("shap_dependence_")]) == 2
    assert sorted(written) == sorted(en + [f"zh/{n}" for n in en])
    for name in en:
        # same data and jitter: only the words (and their font) make the pictures differ
        assert (tmp_path / name).read_bytes() != (tmp_path / "zh" / name).read_bytes(), name
        assert (tmp_path / "zh" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_matplotlib_figures_by_language_and_name(figure_case, tmp_path):
    from matplotlib.figure import Figure

    contrib, x, feat_imp, fam_imp, registry = figure_case
    figs = figures(contrib, x, feat_imp, fam_imp, registry, ["en"], n_dependence=1, seed=0)
    assert list(figs) == ["en"]
    assert all(isinstance(f, Figure) for f in figs["en"].values())
    assert {"shap_bar", "shap_families", "shap_beeswarm"} < set(figs["en"])


def _jitter(figs: dict) -> np.ndarray:
    ax = figs["shap_beeswarm"].axes[0]
    return np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])


def test_beeswarm_jitter_follows_the_seed(figure_case):
    contrib, x, feat_imp, fam_imp, registry = figure_case

    def swarm(seed):
        return _jitter(
            figure_set(contrib, x, feat_imp, fam_imp, registry, "en", n_dependence=0, seed=seed)
        )

    np.testing.assert_array_equal(swarm(7), swarm(7))
    assert not np.allclose(swarm(7), swarm(8))
    figs = figures(contrib, x, feat_imp, fam_imp, registry, ["en"], n_dependence=0, seed=8)
    np.testing.assert_array_equal(_jitter(figs["en"]), swarm(8))


@pytest.mark.usefixtures("needs_cjk_font")
def test_chinese_figures_name_features_by_their_chinese_description(figure_case):
    *_, feat_imp, _, registry = figure_case
    desc = registry.set_index("name")["description_zh"]
    figs = _drawn(figure_case, "zh")
    top = feat_imp["name"].tolist()[::-1]  # barh and the beeswarm list the largest on top
    bar = [t.get_text() for t in figs["shap_bar"].axes[0].get_yticklabels()]
    assert bar == [desc[n] for n in top]
    swarm = [t.get_text() for t in figs["shap_beeswarm"].axes[0].get_yticklabels()]
    assert swarm == [desc[n] for n in top]
    families = [t.get_text() for t in figs["shap_families"].axes[0].get_xticklabels()]
    assert families and all(CJK.search(f) for f in families), families
    assert families == [FAMILY_NAMES["zh"][f] for f in figure_case[3]["family"]]
    for name, fig in figs.items():
        texts = _texts(fig)
        assert not [t for t in texts if SNAKE.search(t)], (name, texts)  # no raw feature name
        for ax in fig.axes:
            for label in (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()):
                assert not label or CJK.search(label), (name, label)
        dependence = name.removeprefix("shap_dependence_")
        if dependence != name:
            assert fig.axes[0].get_xlabel() == desc[dependence]


def test_english_figures_name_features_by_their_english_description(figure_case):
    *_, feat_imp, _, registry = figure_case
    desc = registry.set_index("name")["description_en"]
    figs = _drawn(figure_case, "en")
    bar = [t.get_text() for t in figs["shap_bar"].axes[0].get_yticklabels()]
    assert bar == [desc[n] for n in feat_imp["name"].tolist()[::-1]]
    for name, fig in figs.items():
        texts = _texts(fig)
        assert not [t for t in texts if SNAKE.search(t) or CJK.search(t)], (name, texts)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_titles_and_axis_labels_fit_in_the_figure(figure_case, lang, request):
    """The beeswarm's axis label used to run past the right edge (the long feature labels push
    the axes right): titles and axis labels lie inside the figure even before the saved file's
    `bbox_inches="tight"` (which only rescues what overhangs, such as an edge tick label)."""
    if lang == "zh":
        request.getfixturevalue("needs_cjk_font")
    for name, fig in _drawn(figure_case, lang).items():
        renderer = fig.canvas.get_renderer()
        page = fig.bbox
        for ax in fig.axes:
            for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
                if not text.get_text():
                    continue
                box = text.get_window_extent(renderer)
                inside = box.x0 >= page.x0 and box.x1 <= page.x1
                inside = inside and box.y0 >= page.y0 and box.y1 <= page.y1
                assert inside, f"{name} ({lang}): {text.get_text()!r} at {box.bounds} is cut off"


def test_without_a_cjk_font_chinese_figures_are_skipped_with_one_warning(
    figure_case, monkeypatch, caplog
):

    monkeypatch.setattr(fonts, "cjk_font", lambda: None)
    contrib, x, feat_imp, fam_imp, registry = figure_case
    with caplog.at_level(logging.WARNING, logger="churnlight.models.explain.figures"):
        figs = figures(
            contrib, x, feat_imp, fam_imp, registry, ["en", "zh"], n_dependence=1, seed=0
        )
    assert list(figs) == ["en"]
    assert "shap_bar" in figs["en"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CJK font" in warnings[0].getMessage(), caplog.text


def test_figures_reject_an_unknown_language_before_drawing(figure_case, monkeypatch):
    import churnlight.models.explain.figures as explain_figures

    drawn = []
    monkeypatch.setattr(explain_figures, "figure_set", lambda *a, **k: drawn.append(a) or {})
    contrib, x, feat_imp, fam_imp, registry = figure_case
    with pytest.raises(ValueError, match="'fr'"):
        figures(contrib, x, feat_imp, fam_imp, registry, ["en", "fr"], n_dependence=0, seed=0)
    assert drawn == []


# --- 5. the CJK font ----------------------------------------------------------------------------


class _Font:
    def __init__(self, name: str):
        self.name = name


class _FontManager:
    def __init__(self, names: list[str], files: dict[str, str]):
        self.ttflist = [_Font(n) for n in names]
        self.files = files

    def addfont(self, path: str) -> None:
        self.ttflist.append(_Font(self.files[path]))


@pytest.fixture
def fake_fonts(monkeypatch):
    """cjk_font() against a made-up font list and system font files (its cache cleared)."""
    from matplotlib import font_manager

    def install(names: list[str], files: dict[str, str]) -> _FontManager:
        fm = _FontManager(names, files)
        monkeypatch.setattr(font_manager, "fontManager", fm)
        monkeypatch.setattr(font_manager, "findSystemFonts", lambda: list(files))
        fonts.cjk_font.cache_clear()
        return fm

    yield install
    fonts.cjk_font.cache_clear()


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", "Droid Sans Fallback"),
        ("/usr/share/fonts/truetype/arphic/ukai.ttc", "AR PL UKai CN"),
        ("/usr/share/fonts/truetype/arphic/uming.ttc", "AR PL UMing CN"),
    ],
)
def test_every_font_file_the_pattern_admits_is_used(fake_fonts, path, family):
    fake_fonts(["DejaVu Sans"], {path: family, "/usr/share/fonts/x/DejaVuSans.ttf": "DejaVu Sans"})
    assert fonts.cjk_font() == family
    fake_fonts(["DejaVu Sans", family], {})  # already known to matplotlib
    assert fonts.cjk_font() == family


def test_a_cjk_font_file_of_an_unlisted_family_is_used(fake_fonts):
    fake_fonts(["DejaVu Sans"], {"/fonts/SomeVendorCJK-Regular.otf": "Some Vendor CJK"})
    assert fonts.cjk_font() == "Some Vendor CJK"
    fake_fonts(["DejaVu Sans"], {"/fonts/DejaVuSans.ttf": "DejaVu Sans"})
    assert fonts.cjk_font() is None
