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

from churnlight.features.registry import FAMILIES, build_registry, registry_frame
from churnlight.models import fonts
from churnlight.models.explain import (
    TEMPLATES,
    contributions,
    figure_font,
    figure_rc,
    figure_set,
    figures,
    importance,
    raw_score,
    reason_sentence,
    top_reasons,
)
from churnlight.models.train import fit_candidate

WINDOWS = [30, 90, 180, 365]
FEATURES = ["spend_90d", "tenure_days", "nps_last", "plan", "region"]
MODEL_PARAMS = {
    "logreg": {"C": 1.0},
    "tree": {"max_depth": 4, "min_samples_leaf": 50},  # no pure leaf: see the pure-leaf test
    "lgbm": {"n_estimators": 40, "num_leaves": 7, "min_child_samples": 10, "n_jobs": 1},
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
    assert reason_sentence("plan", "basic", registry, "en") == "Customer attribute: plan: basic"


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
needs_cjk_font = pytest.mark.skipif(
    figure_font("zh") is None,
    reason="no CJK font for matplotlib (apt-get install fonts-noto-cjk): no Chinese figures",
)


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
        figs = figure_set(contrib, x, feat_imp, fam_imp, registry, lang, n_dependence=2)
        for fig in figs.values():
            FigureCanvasAgg(fig).draw()
    return figs


@needs_cjk_font
def test_figures_write_chinese_versions_under_the_english_names(figure_case, tmp_path):
    contrib, x, feat_imp, fam_imp, registry = figure_case
    written = figures(
        contrib, x, feat_imp, fam_imp, registry, tmp_path, n_dependence=2, languages=["en", "zh"]
    )
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


@needs_cjk_font
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
    assert set(families) <= {"行为", "态度", "外部风险", "客户属性"}
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


@pytest.mark.parametrize("lang", ["en", pytest.param("zh", marks=needs_cjk_font)])
def test_titles_and_axis_labels_fit_in_the_figure(figure_case, lang):
    """The beeswarm's axis label used to run past the right edge (the long feature labels push
    the axes right): titles and axis labels lie inside the figure even before the saved file's
    `bbox_inches="tight"` (which only rescues what overhangs, such as an edge tick label)."""
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
    figure_case, tmp_path, monkeypatch, caplog
):

    monkeypatch.setattr(fonts, "cjk_font", lambda: None)
    contrib, x, feat_imp, fam_imp, registry = figure_case
    with caplog.at_level(logging.WARNING, logger="churnlight.models.explain"):
        written = figures(
            contrib,
            x,
            feat_imp,
            fam_imp,
            registry,
            tmp_path,
            n_dependence=1,
            languages=["en", "zh"],
        )
    assert not (tmp_path / "zh").exists()
    assert sorted(written) == sorted(p.name for p in tmp_path.glob("*.png"))
    assert "shap_bar.png" in written
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CJK font" in warnings[0].getMessage(), caplog.text


def test_figures_reject_an_unknown_language_before_drawing(figure_case, tmp_path):
    contrib, x, feat_imp, fam_imp, registry = figure_case
    with pytest.raises(ValueError, match="'fr'"):
        figures(contrib, x, feat_imp, fam_imp, registry, tmp_path, languages=["en", "fr"])
    assert list(tmp_path.iterdir()) == []
