"""The model card of a tiny pipeline run: Markdown and HTML from one template, the HTML one
self-contained file, both languages, and the HTML opened in headless Chromium (title, every
image decoded, no request attempted, a page that is not blank), including the screenshot the
stage leaves in reports/figures/card/.

The browser tests need a Chromium/Chrome binary (`apt-get install chromium`, or $CHROMIUM);
without one they are skipped and say so. The Chinese charts need a CJK font for matplotlib
(`apt-get install fonts-noto-cjk`).
"""

from __future__ import annotations

import base64
import html as htmllib
import io
import json
import logging
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from churnlight.features.params import parse_params
from churnlight.features.registry import FAMILY_NAMES, PROFILE_WORDS_ZH
from churnlight.models import fonts
from churnlight.models.report import browser, charts, context
from churnlight.models.report.browser import find_chromium, probe_page
from churnlight.models.report.format import data_uri
from churnlight.models.report.render import markdown_to_html
from churnlight.models.report.tree_rules import tree_rules_summary
from churnlight.pipelines.common import Layout, run_stage

TITLES_EN = [
    "1. This week in five lines",
    "2. Intended use, and what not to use it for",
    "3. Data",
    "4. Models compared",
    "5. Can the probabilities be trusted?",
    "6. Why customers leave",
    "7. Where the model is weaker",
    "8. Drift",
    "9. Did last month's actions work?",
    "10. Limitations and ethical considerations",
    "11. Version",
]
TITLES_ZH = [
    "1. 本周五句话",
    "2. 用途与禁用场景",
    "3. 数据",
    "4. 模型对比",
    "5. 概率可信吗？",
    "6. 客户为什么流失",
    "7. 模型的薄弱之处",
    "8. 数据漂移",
    "9. 上月的行动有效吗？",
    "10. 局限与伦理考量",
    "11. 版本信息",
]
IMG_SRC = re.compile(r'<img\s[^>]*src="([^"]*)"')

needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium on PATH (apt-get install chromium, or set $CHROMIUM): "
    "the model card's browser checks need it",
)
CJK_SKIP = (
    "no CJK font for matplotlib (apt-get install fonts-noto-cjk): the Chinese charts "
    "fall back to English"
)


@pytest.fixture
def needs_cjk_font() -> None:
    """Skips a test without a CJK font; looked up when a test needs it, not at collection."""
    if fonts.cjk_font() is None:
        pytest.skip(CJK_SKIP)


@pytest.fixture(scope="module")
def card(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("card")
    params = make_pipeline_params()
    params["report"]["screenshot"] = True  # the tiny params turn it off for other tests
    paths = run_stages(root, params)
    reports = paths["reports"]
    return {
        **paths,
        "root": root,
        "md": (reports / "model_card.md").read_text(encoding="utf-8"),
        "html": (reports / "model_card.html").read_text(encoding="utf-8"),
        "html_path": reports / "model_card.html",
    }


def _report(card: dict, reports: Path, params: dict) -> str:
    """The report stage in a project beside `reports` (its parent folder) that shares the
    card run's data, with `params`; the Markdown card."""
    root = reports.parent
    if not (root / "data").exists():
        (root / "data").symlink_to(card["root"] / "data")
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return run_stage("report", Layout(root), parse_params(params))


def _rerun_report(card: dict, tmp: Path, **report_params) -> Path:
    """The report stage again on a copy of the run's reports with other `report` params;
    returns the copy's reports folder."""
    reports = tmp / "reports"
    shutil.copytree(card["reports"], reports)
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"].update(report_params)
    _report(card, reports, params)
    return reports


@pytest.fixture(scope="module")
def card_zh(card, tmp_path_factory) -> dict:
    """The same run's card with `report.language: zh`, written to a copy of its reports."""
    reports = _rerun_report(card, tmp_path_factory.mktemp("card_zh"), language="zh")
    return {
        "reports": reports,
        "md": (reports / "model_card.md").read_text(encoding="utf-8"),
        "html": (reports / "model_card.html").read_text(encoding="utf-8"),
        "html_path": reports / "model_card.html",
    }


def _h2(text: str) -> list[str]:
    return [htmllib.unescape(t) for t in re.findall(r"<h2>(.*?)</h2>", text)]


def _png_size(src: str) -> tuple[int, int]:
    assert src.startswith("data:image/png;base64,"), src[:60]
    data = base64.b64decode(src.split(",", 1)[1], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _section(page: str, n: int) -> str:
    return page.split(f'<section id="s{n}">', 1)[1].split("</section>", 1)[0]


def _assert_not_blank(png: Path) -> None:
    """A full-page screenshot 1200 px wide with ink and variety on it (not a blank page)."""
    with Image.open(png) as im:
        assert im.size[0] == 1200 and im.size[1] > 2000
        grey = im.convert("L")
        hist = grey.histogram()
        ink = sum(hist[:200]) / (im.size[0] * im.size[1])
        assert ink > 0.02, f"the page looks blank ({ink:.1%} of pixels not near-white)"
        assert len(set(grey.resize((200, 400)).getdata())) > 20


def _assert_renders(seen: dict, page: str, title: str) -> None:
    """What Chromium saw: the title, every image decoded, nothing fetched, a long page."""
    assert seen["title"] == title
    assert seen["h1"] == title
    assert len(seen["images"]) == len(IMG_SRC.findall(page))
    broken = [i for i in seen["images"] if not i["complete"] or i["width"] <= 0]
    assert broken == []
    assert seen["violations"] == [], "the page tried to fetch something"
    assert [r for r in seen["resources"] if not r.startswith("data:")] == []
    assert seen["text_length"] > 1500
    assert seen["height"] > 2000


# --- the files ---------------------------------------------------------------------------------


def test_markdown_and_html_have_the_same_eleven_sections(card):
    md_titles = [ln[3:].strip() for ln in card["md"].splitlines() if ln.startswith("## ")]
    assert md_titles == TITLES_EN
    assert _h2(card["html"]) == TITLES_EN
    assert "<title>Churn early-warning model card</title>" in card["html"]


def test_html_is_one_self_contained_file(card):
    page = card["html"]
    lowered = page.lower()
    for forbidden in ("<script", "<link", "<iframe", "<object", "<embed", "@import", "url("):
        assert forbidden not in lowered, forbidden
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//|file:)", lowered)
    assert "http://" not in lowered and "https://" not in lowered
    assert 'http-equiv="Content-Security-Policy"' in page
    assert "default-src 'none'; img-src data:" in page
    assert "@media print" in page


def test_every_image_is_an_inlined_png(card):
    srcs = IMG_SRC.findall(card["html"])
    figures = sorted((card["reports"] / "figures" / "shap").glob("*.png"))
    assert figures, "explain wrote no figures"
    campaigns = json.loads((card["reports"] / "campaigns.json").read_text(encoding="utf-8"))
    # + calibration and cumulative gains, drawn by report; + the campaigns chart once one is judged
    assert len(srcs) == len(figures) + 2 + (campaigns["status"] == "evaluated")
    for src in srcs:
        width, height = _png_size(src)
        assert width > 100 and height > 100


def test_calibration_and_gains_charts_are_in_section_five(card):
    section = _section(card["html"], 5)
    assert len(IMG_SRC.findall(section)) == 2
    assert "Calibration" in section and "Cumulative gains" in section
    assert "percentage points" in section
    assert ("Yes: when the card says 30%" in section) != ("Not yet:" in section)


def test_markdown_points_at_the_figure_files(card):
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card["md"])
    assert links
    for link in links:
        assert not link.startswith("data:"), "the Markdown card stays small"
        assert link.startswith("figures/shap/"), link
        assert (card["reports"] / link).is_file(), link
    assert "see model_card.html (data: plots/calibration.csv)" in card["md"]


def test_card_content_comes_from_the_run(card):
    md = card["md"]
    metrics = json.loads((card["reports"] / "metrics.json").read_text(encoding="utf-8"))
    assert f"`{metrics['champion']}`" in md
    summary = pd.read_csv(card["segments"] / "summary.csv", encoding="utf-8-sig")
    high = int(summary.loc[summary["risk_tier"] == "high", "customers"].sum())
    assert f"**{high:,}** customers are at high risk" in md
    for model in ("logreg", "tree", "lgbm", "rules", "oracle"):
        assert f"(`{model}`)" in md, model
    assert "### The risk tiers in business words" in md
    assert "**High risk:**" in md and "**Low risk:**" in md
    version = md.split("## 11. Version", 1)[1]
    train_report = json.loads((card["models"] / "train_report.json").read_text(encoding="utf-8"))
    assert train_report["models"][metrics["champion"]]["run_id"] in version
    assert re.search(r"data hash \| `[0-9a-f]{12}`", version)
    assert re.search(r"params hash \(params.yaml\) \| `[0-9a-f]{12}`", version)


def test_card_says_how_many_are_held_out_and_why(card, card_zh):
    """domain.md section 8: the control group's size, campaign and purpose, in both languages."""
    control = pd.read_csv(card["segments"] / "control.csv", encoding="utf-8-sig")
    assert len(control) > 0
    campaign = control["campaign_id"].iloc[0]
    summary = pd.read_csv(card["segments"] / "summary.csv", encoding="utf-8-sig")
    assert summary["control"].sum() == len(control)
    en = card["md"].split("## 2.", 1)[0]
    assert f"{len(control):,} of the " in en
    assert "held out at random as a control group and not contacted" in en
    assert "shows whether acting works" in en
    assert f"`{campaign}`" in en and "`segments/control.csv`" in en
    zh = card_zh["md"].split("## 2.", 1)[0]
    assert f"随机留出 {len(control):,} 位作为对照组" in zh
    assert "才能知道行动是否有效" in zh and f"`{campaign}`" in zh


def test_chinese_card_has_every_section_in_chinese(card_zh):
    md_titles = [ln[3:].strip() for ln in card_zh["md"].splitlines() if ln.startswith("## ")]
    assert md_titles == TITLES_ZH
    assert _h2(card_zh["html"]) == TITLES_ZH
    assert '<html lang="zh-CN">' in card_zh["html"]
    assert "# 客户流失预警模型卡" in card_zh["md"]
    assert "高风险客户最常见的原因" in card_zh["md"]
    # the fixed English sentences are gone
    for english in ("This week", "Top reasons", "Intended use", "Limitations"):
        assert english not in card_zh["md"], english


def test_chinese_card_names_families_from_the_feature_registry(card, tmp_path, monkeypatch):
    """One table of family names (features/registry.py) for figures, reasons and the card:
    a word changed there shows on the card."""
    assert context.registry_words("en") == FAMILY_NAMES["en"]
    zh = context.registry_words("zh")
    assert zh["region"] == PROFILE_WORDS_ZH["region"] and zh["industry"] == "行业"
    monkeypatch.setitem(FAMILY_NAMES["zh"], "external", "外部环境")
    monkeypatch.setitem(FAMILY_NAMES["zh"], "behaviour", "消费与活跃行为")
    md = (
        _rerun_report(card, tmp_path, language="zh", screenshot=False) / "model_card.md"
    ).read_text(encoding="utf-8")
    assert "| 消费与活跃行为（behaviour） |" in md
    assert "外部环境" in md and "外部风险" not in md


@pytest.mark.usefixtures("needs_cjk_font")
def test_chinese_card_draws_its_own_charts_in_chinese(card, card_zh):
    """Same data, other labels: the calibration and gains charts of a zh card are not the
    English pictures."""
    en = IMG_SRC.findall(_section(card["html"], 5))
    zh = IMG_SRC.findall(_section(card_zh["html"], 5))
    assert len(en) == len(zh) == 2
    for a, b in zip(en, zh, strict=True):
        assert a != b
        assert _png_size(b)[0] > 100


def test_chinese_card_uses_chinese_shap_figures_where_explain_wrote_them(card, tmp_path, caplog):
    """shap/zh/<name>.png replaces <name>.png on a zh card; figures without one stay English
    (and the log says so); an English card ignores shap/zh."""
    reports = tmp_path / "reports"
    shutil.copytree(card["reports"], reports)
    shap = reports / "figures" / "shap"
    shutil.rmtree(shap / "zh", ignore_errors=True)
    (shap / "zh").mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 30, 30)).save(buf, format="PNG")
    (shap / "zh" / "shap_bar.png").write_bytes(buf.getvalue())
    zh_uri = data_uri(buf.getvalue())
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"].update(language="zh", screenshot=False)
    with caplog.at_level(logging.WARNING, logger="churnlight.report"):
        md = _report(card, reports, params)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "figures/shap/zh/shap_bar.png" in links
    assert "figures/shap/shap_beeswarm.png" in links
    assert all((reports / link).is_file() for link in links)
    assert zh_uri in (reports / "model_card.html").read_text(encoding="utf-8")
    assert "no Chinese version of" in caplog.text and "shap_beeswarm" in caplog.text

    params["report"]["language"] = "en"
    md = _report(card, reports, params)
    assert "figures/shap/shap_bar.png" in md and "/zh/" not in md


# --- did last month's actions work? ------------------------------------------------------------


def test_without_contacts_the_card_says_no_campaigns_logged_yet_and_what_to_log(card, card_zh):
    section = card["md"].split("## 9. Did last month's actions work?", 1)[1].split("## 10.", 1)[0]
    assert "**No campaigns logged yet.**" in section
    for column in ("`customer_id`", "`ts`", "`campaign_id`", "`group`", "`control`", "`cost`"):
        assert column in section, column
    metrics = json.loads((card["reports"] / "metrics.json").read_text(encoding="utf-8"))
    recall = metrics[metrics["champion"]]["recall_at_capacity"]
    assert f"| {recall * 100:.0f}% | 80% |" in section  # the model's list beside the target
    assert "from 35% to 80%" in section
    assert IMG_SRC.findall(_section(card["html"], 9)) == []
    zh = card_zh["md"].split("## 9. 上月的行动有效吗？", 1)[1].split("## 10.", 1)[0]
    assert "尚未记录任何营销活动" in zh and "`campaign_id`" in zh


def test_a_card_without_the_campaigns_files_still_renders(card, tmp_path):
    """A project whose campaigns stage has not run yet (no reports/campaigns.*)."""
    reports = tmp_path / "reports"
    shutil.copytree(card["reports"], reports)
    (reports / "campaigns.json").unlink()
    (reports / "campaigns.csv").unlink()
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"].update(screenshot=False)
    md = _report(card, reports, params)
    section = md.split("## 9. Did last month's actions work?", 1)[1].split("## 10.", 1)[0]
    assert "**No campaigns logged yet.**" in section
    assert "Measures of success" not in section


def _judged_campaigns(card: dict, reports: Path) -> dict:
    """reports/campaigns.csv and .json of a campaign at every labelled cutoff of the card's
    run (half of each cutoff's customers flagged, a third of them held out; the truth says
    0.05), as the campaigns stage writes them."""
    import numpy as np

    from churnlight.models.campaigns import evaluate_campaigns, success_metrics

    snaps = pd.read_parquet(
        card["processed"] / "features.parquet",
        columns=["customer_id", "cutoff", "label", "value_tier", "monetary_per_year"],
    ).rename(columns={"monetary_per_year": "value"})
    rng = np.random.default_rng(0)
    snaps["risk_tier"] = rng.choice(["high", "medium", "low"], len(snaps))
    contacts = snaps.sample(frac=0.5, random_state=1)[["customer_id", "cutoff"]]
    contacts = contacts.assign(
        ts=contacts["cutoff"] + pd.Timedelta(days=1),
        campaign_id=contacts["cutoff"].dt.strftime("%Y-%m-retention"),
        kind="retention",
        group=np.where(np.arange(len(contacts)) % 3 == 0, "control", "treatment"),
        cost=20.0,
    ).drop(columns="cutoff")
    truth = contacts[["customer_id", "campaign_id"]].assign(true_uplift=0.05)
    ev = evaluate_campaigns(
        contacts, snaps, step_months=1, bootstrap=200, confidence=0.9, seed=1, truth=truth
    )
    metrics = json.loads((reports / "metrics.json").read_text(encoding="utf-8"))
    targets = {"early_identification_before": 0.35, "early_identification_target": 0.8}
    summary = {
        **ev.summary,
        "success": success_metrics(ev.summary, metrics, targets | {"roi_target": 5}),
    }
    ev.table.to_csv(reports / "campaigns.csv", index=False)
    (reports / "campaigns.json").write_text(json.dumps(summary), encoding="utf-8")
    return summary


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_judged_campaign_fills_the_section_with_tables_chart_and_targets(card, tmp_path, lang):
    reports = tmp_path / "reports"
    shutil.copytree(card["reports"], reports)
    summary = _judged_campaigns(card, reports)
    assert summary["status"] == "evaluated"
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"].update(language=lang, screenshot=False)
    md = _report(card, reports, params)
    title = "## 9. 上月的行动有效吗？" if lang == "zh" else "## 9. Did last month's actions work?"
    section = md.split(title, 1)[1].split("## 10.", 1)[0]
    latest = summary["latest"]
    assert f"`{latest['campaign_id']}`" in section
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")]
    overall = "| 总体 |" if lang == "zh" else "| overall |"
    assert sum(ln.startswith(overall) for ln in rows) == 2  # the latest campaign and pooled
    for tier in ("high", "medium", "low"):
        name = (
            {"high": "高风险", "medium": "中风险", "low": "低风险"}[tier]
            if lang == "zh"
            else f"{tier} risk"
        )
        assert sum(ln.startswith(f"| {name} |") for ln in rows) == 2, name
    assert f"{latest['n_treatment']:,}" in section
    assert "[" in section and "–" in section  # uplift with its interval
    assert ("在区间内" if lang == "zh" else "covered") in section  # the truth beside it
    assert f"{summary['pooled']['early_identification_rate'] * 100:.0f}%" in section
    page = (reports / "model_card.html").read_text(encoding="utf-8")
    charts = IMG_SRC.findall(_section(page, 9))
    assert len(charts) == 1 and _png_size(charts[0])[0] > 300
    assert "campaigns.csv" in section  # the Markdown card points at the chart's data
    text = re.sub(r"<[^>]+>", "", page.split("<main>", 1)[1])
    assert "*" not in text and "{{" not in text


# --- the pure pieces ---------------------------------------------------------------------------


def test_markdown_subset_converts_and_escapes():
    md = (
        "# T\n\n*a `b` c*\n\n## 1. S\n\n1. **x** <y> & z\n2. w\n\n"
        "| a | b |\n|---|---|\n| p\\|q | 1,234 |\n\n![cap](data:image/png;base64,AAAA)\n"
    )
    out = markdown_to_html(md)
    assert "<h1>T</h1>" in out
    assert "<em>a <code>b</code> c</em>" in out
    assert '<section id="s1">' in out and out.rstrip().endswith("</section>")
    assert "<li><strong>x</strong> &lt;y&gt; &amp; z</li>" in out
    assert "<td>p|q</td>" in out and '<td class="num">1,234</td>' in out
    assert '<img src="data:image/png;base64,AAAA" alt="cap">' in out


def test_markdown_layout_sections_galleries_and_number_cells():
    """The card's layout rules on top of markdown-it: a paragraph of images is a gallery (side
    by side; one image alone at full width), images amid text stay inline, raw HTML is text."""
    img = "![a *b*](data:image/png;base64,AAAA)"
    out = markdown_to_html(
        f"# T\n\n## 1. A\n\n{img}\n{img}\n\n## 2. B\n\n{img}\n\ntext {img}\n\n<b>x</b>\n\n"
        "| n | v |\n|---|---|\n| **12.5%** | 0.789 [0.776–0.802] |\n| a1 | 3x |\n"
    )
    assert out.count('<section id="s') == 2 and out.count("</section>") == 2
    assert out.index('<section id="s2">') > out.index("</section>")
    assert out.count('<div class="figures">') == 1 and out.count('<div class="figures one">') == 1
    assert out.count("<figure>") == 3
    assert "<figcaption>a <em>b</em></figcaption>" in out
    assert '<p>text <img src="data:image/png;base64,AAAA" alt="a b"></p>' in out
    assert "&lt;b&gt;x&lt;/b&gt;" in out
    assert '<td class="num"><strong>12.5%</strong></td>' in out
    assert '<td class="num">0.789 [0.776–0.802]</td>' in out
    assert "<td>a1</td>" in out and '<td class="num">3x</td>' in out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_bold_run_of_the_template_renders_bold(card, tmp_path, lang):
    """The warning branches too (the model does not beat the rules, probabilities not to be
    quoted): no Markdown asterisks left in the HTML card's text, in either language (CommonMark
    does not close bold between full-width punctuation and Chinese text)."""
    reports = tmp_path / "reports"
    shutil.copytree(card["reports"], reports)
    metrics = json.loads((reports / "metrics.json").read_text(encoding="utf-8"))
    metrics["champion_beats_rules"] = False
    (reports / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"].update(language=lang, screenshot=False, max_trusted_ece=0.0)
    _report(card, reports, params)
    page = (reports / "model_card.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", page.split("<main>", 1)[1])
    assert "*" not in text
    warning = "模型没有超过三色规则" if lang == "zh" else "Warning: the model does NOT beat"
    assert re.search(f"<strong>{warning}", page)
    assert ("<strong>还不行</strong>" if lang == "zh" else "<strong>Not yet:</strong>") in page


@pytest.mark.parametrize(
    ("lang", "sentence"),
    [
        ("en", "Treated rows: 12 training and 3 test rows were left out"),
        ("zh", "已干预样本：12 行训练样本和 3 行测试样本被排除"),
    ],
)
def test_the_card_says_how_many_treated_rows_were_left_out(card, tmp_path, lang, sentence):
    """One sentence in the data section when contacts changed rows; none without contacts."""
    assert "Treated rows" not in card["md"]
    reports = tmp_path / "reports"
    shutil.copytree(card["reports"], reports)
    metrics = json.loads((reports / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["treated_rows_excluded"] == {"train": 0, "test": 0}
    metrics["treated_rows_excluded"] = {"train": 12, "test": 3}
    (reports / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"].update(language=lang, screenshot=False)
    _report(card, reports, params)
    md = (reports / "model_card.md").read_text(encoding="utf-8")
    assert sentence in md
    assert md.count(sentence) == 1


@pytest.mark.parametrize(
    ("lang", "sentence"),
    [
        (
            "en",
            "Training rows: 5,000; the tuning (trials, folds, calibration) used a sample of 2,000, "
            "stratified by cutoff and label (`train.tune_rows`), and the final model was fitted on "
            "a sample of 4,000 (`train.max_rows`).",
        ),
        (
            "zh",
            "训练样本：5,000 行；调参（试验、各折、校准）用了按快照和标签分层抽取的 2,000 行"
            "（train.tune_rows），最终模型在抽取的 4,000 行（train.max_rows）上拟合。",
        ),
    ],
)
def test_the_card_says_how_many_rows_tuned_and_fitted_the_model(card, tmp_path, lang, sentence):
    """Issue 17: the data section states the training rows, the tuning sample and the refit."""
    assert "the tuning (trials, folds, calibration) used all of them, and the final" in card["md"]
    reports = tmp_path / "reports"
    shutil.copytree(card["reports"], reports)
    metrics = json.loads((reports / "metrics.json").read_text(encoding="utf-8"))
    rows = metrics["training_rows"]
    assert rows["train"] == rows["tune"] == rows["refit"] > 0
    metrics["training_rows"] = {"train": 5000, "tune": 2000, "refit": 4000}
    (reports / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"].update(language=lang, screenshot=False)
    _report(card, reports, params)
    md = (reports / "model_card.md").read_text(encoding="utf-8")
    assert md.count(sentence) == 1


def test_tree_rules_keep_paths_that_end_in_churn():
    text = (
        "|--- login_30d <= 2.50\n"
        "|   |--- plan_basic <= 0.50\n"
        "|   |   |--- class: 0\n"
        "|   |--- plan_basic >  0.50\n"
        "|   |   |--- class: 1\n"
        "|--- login_30d >  2.50\n"
        "|   |--- nps_last <= 6.50\n"
        "|   |   |--- class: 1\n"
        "|   |--- nps_last >  6.50\n"
        "|   |   |--- class: 1\n"
    )
    registry = pd.DataFrame(
        {
            "name": ["login_30d", "plan", "nps_last"],
            "family": ["behaviour", "profile", "attitude"],
            "unit": ["count", "category", "score"],
            "description_en": ["Logins in 30 days", "Plan", "Latest NPS"],
            "description_zh": ["近30天登录", "套餐", "最近NPS"],
        }
    )
    rules = tree_rules_summary(text, registry, "en")
    # the right subtree is one rule (both leaves churn); the simplest rule comes first
    assert rules == [["Logins in 30 days ≥ 3"], ["Logins in 30 days ≤ 2", "Plan = basic"]]
    assert tree_rules_summary(text, registry, "zh")[0] == ["近30天登录 ≥ 3"]


# --- in a browser ------------------------------------------------------------------------------


@needs_chromium
def test_card_opens_in_chromium_with_every_image_and_no_request(card):
    seen = probe_page(card["html_path"])
    _assert_renders(seen, card["html"], "Churn early-warning model card")
    assert seen["text_length"] > 2000


@needs_chromium
def test_the_stage_leaves_a_screenshot_of_the_default_card(card):
    """report.screenshot is on by default: the stage's DVC out figures/card holds the PNG."""
    files = sorted(p.name for p in (card["reports"] / "figures" / "card").iterdir())
    assert files == ["model_card.png"]
    _assert_not_blank(card["reports"] / "figures" / "card" / "model_card.png")


@needs_chromium
def test_chinese_card_opens_in_chromium(card_zh):
    seen = probe_page(card_zh["html_path"])
    _assert_renders(seen, card_zh["html"], "客户流失预警模型卡")
    _assert_not_blank(card_zh["reports"] / "figures" / "card" / "model_card.png")


@needs_chromium
def test_the_probe_catches_a_request(card, tmp_path):
    """The no-request check is real: a page with a remote image reports a violation."""
    page = card["html"].replace(
        "<main>", '<main><img src="https://example.invalid/pixel.png" alt="remote">', 1
    )
    leaky = tmp_path / "leaky.html"
    leaky.write_text(page, encoding="utf-8")
    seen = probe_page(leaky)
    assert any("example.invalid" in v for v in seen["violations"]), seen["violations"]


@pytest.mark.parametrize("why", ["no chromium", "screenshot off"])
def test_without_a_screenshot_the_cards_are_written_and_the_card_folder_is_empty(
    why, card, tmp_path, monkeypatch, caplog
):
    """The folder is a DVC out: it must exist, empty, or `dvc repro` fails; no Chromium is a
    warning that says how to get it, not an error."""
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"]["screenshot"] = why != "screenshot off"
    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    reports = tmp_path / "reports"
    shutil.copytree(card["reports"], reports)  # with the run's screenshot in figures/card
    (reports / "model_card.html").unlink()
    with caplog.at_level(logging.INFO, logger="churnlight.report"):
        _report(card, reports, params)
    assert (reports / "model_card.html").is_file() and (reports / "model_card.md").is_file()
    card_dir = reports / "figures" / "card"
    assert card_dir.is_dir() and list(card_dir.iterdir()) == []
    assert {p.name for p in (reports / "figures").iterdir()} == {"card", "shap"}  # no leftovers
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    if why == "no chromium":
        assert any("screenshot skipped" in r.getMessage() for r in warnings), caplog.text
        assert "apt-get install chromium" in caplog.text
    else:
        assert not any("screenshot" in r.getMessage() for r in warnings), caplog.text


def test_charts_fall_back_to_english_labels_without_a_cjk_font(card, monkeypatch, caplog):
    calibration = pd.read_csv(card["reports"] / "plots" / "calibration.csv")
    english = charts.calibration_chart(calibration, 0.1, 0.3, "en")
    monkeypatch.setattr(fonts, "cjk_font", lambda: None)
    with caplog.at_level(logging.WARNING, logger="churnlight.report"):
        assert charts.chart_language("zh") == "en"
        fallback = charts.calibration_chart(calibration, 0.1, 0.3, "zh")
    assert fallback == english
    assert "no CJK font" in caplog.text and "fonts-noto-cjk" in caplog.text


# --- the win-back part of section 9 (issue 15) -------------------------------------------------


def _winback_section(md: str, zh: bool = False) -> str:
    title = "### 召回：已流失的客户" if zh else "### Win-back: the customers who left"
    return md.split(title, 1)[1].split("## 10.", 1)[0]


def _winback_list() -> pd.DataFrame:
    """A list as the winback stage writes it (the interface's columns that the card reads)."""
    return pd.DataFrame(
        {
            "rank": [1, 2, 3],
            "customer_id": ["C1", "C2", "C3"],
            "value": [40000.0, 20000.0, 3000.0],
            "value_tier": ["platinum", "gold", "regular"],
            "expected_value": [9000.0, 2500.0, -5.0],
            "owner": ["account_manager", "customer_success", "marketing"],
            "due_within_hours": [24, 48, 168],
        }
    )


def _winback_summary() -> dict:
    from churnlight.models.campaigns import ALL

    tier = {
        "n_treatment": 90,
        "n_control": 12,
        "return_rate_treatment": 0.41,
        "return_rate_treatment_low": 0.31,
        "return_rate_treatment_high": 0.51,
        "return_rate_control": 0.08,
        "uplift": 0.33,
        "uplift_low": 0.18,
        "uplift_high": 0.45,
        "value_saved": 123456.0,
        "cost": 27000.0,
        "roi": 4.6,
        "target_rate": 0.7,
        "meets_target": False,
        "true_return_rate_treatment": 0.4,
        "true_uplift": 0.3,
    }
    tiers = {ALL: {**tier, "target_rate": None, "meets_target": None}, "platinum": tier}
    return {
        "status": "evaluated",
        "window_days": 90,
        "campaigns_evaluated": 3,
        "latest": {"campaign_id": "2026-07-winback", "tiers": tiers},
        "pooled": {"tiers": tiers},
        "targets": {"winback_rate": {"platinum": 0.7}, "roi_target": 5.0},
        "truth": {"available": True},
        "skipped": {},
        "missing": "",
    }


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_winback_part_shows_the_list_and_the_rates_against_targets(card, tmp_path, lang):
    reports = tmp_path / "reports"
    shutil.copytree(card["reports"], reports)
    summary = json.loads((reports / "campaigns.json").read_text(encoding="utf-8"))
    summary["winback"] = _winback_summary()
    (reports / "campaigns.json").write_text(json.dumps(summary), encoding="utf-8")
    # the list: the winback stage's artifact, in a data folder of this project's own
    root = reports.parent
    shutil.copytree(card["root"] / "data", root / "data", symlinks=True)
    (root / "data" / "artifacts" / "winback").mkdir(parents=True, exist_ok=True)
    _winback_list().to_parquet(root / "data" / "artifacts" / "winback" / "list.parquet")
    params = yaml.safe_load(card["params"].read_text(encoding="utf-8"))
    params["report"].update(language=lang, screenshot=False)
    section = _winback_section(_report(card, reports, params), zh=lang == "zh")
    assert "63,000" in section  # the list's yearly value
    assert "11,500" in section  # expected value won back (a negative one counts as 0)
    assert "`2026-07-winback`" in section
    assert "41.0% [31.0%–51.0%]" in section and "> 70%" in section
    assert ("**未达标**" if lang == "zh" else "**not met**") in section
    assert "4.6x" in section and "> 5x" in section
    assert ("客户经理 1 位" if lang == "zh" else "account manager 1") in section
    assert "{{" not in section


def test_the_winback_part_says_what_is_missing(card):
    """The tiny run lists its leavers but has no win-back contacts and no returns: the section
    gives the list and says what is missing for judging it."""
    section = _winback_section(card["md"])
    assert "**The win-back list**" in section and "No win-back list yet" not in section
    assert "cannot be judged yet" in section and '`kind` "winback"' in section
    assert "No returns in the data" in section  # the tiny run's world has none
