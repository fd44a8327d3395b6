"""Every stage's entry point in DVC order on the tiny synthetic world: the file contract.

The chain runs once per module (about 3 s); each test checks one stage's outputs.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
from pathlib import Path

import joblib
import numpy as np
import openpyxl
import pandas as pd
import pytest

from churnlight.features.params import ParamsError, parse_params
from churnlight.models.explain import workflow as explain_workflow
from churnlight.models.explain.figures import figure_font
from churnlight.pipelines.common import Layout, run_stage

TABLES = ("customers", "transactions", "activity", "feedback", "market", "contacts")
MODELS = ("logreg", "tree", "lgbm")
METRIC_KEYS = {"roc_auc", "pr_auc", "brier", "log_loss", "recall_at_capacity"}
FAMILIES = {"behaviour", "attitude", "external", "profile"}
REGISTRY_COLUMNS = ["name", "family", "unit", "description_en", "description_zh"]
TIERS = ("high", "medium", "low")
BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def chain(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("project")
    params = make_pipeline_params()
    assert params["data"]["source"] == "data/raw"  # synthetic mode, under root
    paths = run_stages(root, params)
    return {**paths, "root": root, "params": params}


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def test_no_temporary_folders_left_behind(chain):
    leftovers = [p for p in chain["root"].rglob(".*") if p.name != ".gitignore"]
    assert leftovers == []


def test_generate_writes_raw_tables_and_truth_apart(chain):
    raw = chain["raw"]
    # the tiny world runs no campaigns (conftest): no contacts table; validate writes it anyway
    made = [t for t in TABLES if t != "contacts"]
    assert sorted(p.name for p in raw.glob("*.parquet")) == sorted(f"{t}.parquet" for t in made)
    assert (chain["truth"] / "risk.parquet").is_file()
    assert (chain["truth"] / "as_of.txt").read_text().strip() == "2026-06-30"
    customers = pd.read_parquet(raw / "customers.parquet")
    assert len(customers) == chain["params"]["generate"]["n_customers"]


def test_validate_writes_typed_parquet(chain):
    interim = chain["interim"]
    assert sorted(p.name for p in interim.iterdir()) == sorted(
        [f"{t}.parquet" for t in TABLES] + ["contract_report.json"]
    )
    tx = pd.read_parquet(interim / "transactions.parquet")
    assert pd.api.types.is_datetime64_dtype(tx["ts"])
    assert pd.api.types.is_float_dtype(tx["amount"])
    assert pd.api.types.is_string_dtype(tx["customer_id"])
    market = pd.read_parquet(interim / "market.parquet")
    assert pd.api.types.is_datetime64_dtype(market["month"])
    report = json.loads((interim / "contract_report.json").read_text(encoding="utf-8"))
    assert report["mode"] == "events"
    assert report["as_of"] == "2026-06-30"
    assert report["families"] == dict.fromkeys(
        ("behaviour", "attitude", "external", "profile"), True
    )


def test_feature_registry_contract(chain):
    reg = pd.read_csv(chain["processed"] / "feature_registry.csv")
    assert list(reg.columns) == REGISTRY_COLUMNS
    assert set(reg["family"]) == FAMILIES  # all four on with every table present
    assert reg["name"].is_unique
    assert reg[REGISTRY_COLUMNS].notna().all().all()


def test_features_table_contract(chain):
    processed = chain["processed"]
    feats = pd.read_parquet(processed / "features.parquet")
    reg = pd.read_csv(processed / "feature_registry.csv")
    for col in ("customer_id", "cutoff", "label", "rule_colour"):
        assert col in feats.columns, col
    missing = [n for n in reg["name"] if n not in feats.columns]
    assert missing == []
    assert feats["label"].notna().all()
    assert set(feats["label"].astype(int).unique()) == {0, 1}
    assert set(feats["rule_colour"].unique()) <= {"green", "yellow", "red"}
    assert not feats.duplicated(["customer_id", "cutoff"]).any()
    assert feats["cutoff"].min() == pd.Timestamp("2025-10-01")
    # labels need a full 90-day window before the data end
    assert feats["cutoff"].max() <= pd.Timestamp("2026-07-01") - pd.Timedelta(days=90)


def test_scoring_table_is_the_newest_cutoff_without_label(chain):
    processed = chain["processed"]
    scoring = pd.read_parquet(processed / "scoring.parquet")
    feats = pd.read_parquet(processed / "features.parquet", columns=["cutoff"])
    reg = pd.read_csv(processed / "feature_registry.csv")
    assert "label" not in scoring.columns
    assert len(scoring) > 0
    assert scoring["cutoff"].nunique() == 1
    assert scoring["cutoff"].iloc[0] == pd.Timestamp("2026-07-01")  # the day after as_of
    assert scoring["cutoff"].iloc[0] > feats["cutoff"].max()
    assert scoring["customer_id"].is_unique
    assert set(reg["name"]) <= set(scoring.columns)
    assert set(scoring["rule_colour"].unique()) <= {"green", "yellow", "red"}
    summary = json.loads((processed / "features_report.json").read_text(encoding="utf-8"))
    assert summary["scoring_cutoff"] == "2026-07-01"
    assert summary["scoring_rows"] == len(scoring)


def test_train_writes_models_and_report(chain):
    models = chain["models"]
    for kind in MODELS:
        assert (models / f"{kind}.joblib").is_file(), kind
    report = json.loads((models / "train_report.json").read_text(encoding="utf-8"))
    assert report["champion"] in MODELS
    assert set(report["cv"]) == {*MODELS, "rules"}
    # every candidate was tuned (trials stored), logged to MLflow, and the champion registered
    for kind in MODELS:
        info = report["models"][kind]
        assert info["n_trials"] >= 1 and info["model_uri"] and info["run_id"]
    assert report["registered_model"]["alias"] == "champion"
    assert (chain["models"].parent / "tuning" / "optuna.db").is_file()
    reg = pd.read_csv(chain["processed"] / "feature_registry.csv")
    assert report["features"] == reg["name"].tolist()
    # no training cutoff's label window reaches into the test cutoff
    test_cutoff = pd.Timestamp(report["test_cutoffs"][0])
    assert all(
        pd.Timestamp(c) + pd.Timedelta(days=90) <= test_cutoff for c in report["train_cutoffs"]
    )
    # a saved model scores the raw feature columns on its own
    scoring = pd.read_parquet(chain["processed"] / "scoring.parquet")
    pipe = joblib.load(models / f"{report['champion']}.joblib")
    p = pipe.predict_proba(scoring[report["features"]])[:, 1]
    assert p.shape == (len(scoring),)
    assert np.all((p >= 0) & (p <= 1))


def test_metrics_contract(chain):
    metrics = json.loads((chain["reports"] / "metrics.json").read_text(encoding="utf-8"))
    for name in (*MODELS, "rules"):
        assert set(metrics[name]) >= METRIC_KEYS, name
        for key in METRIC_KEYS:
            assert math.isfinite(metrics[name][key]), (name, key)
        assert 0 <= metrics[name]["roc_auc"] <= 1
        assert 0 <= metrics[name]["recall_at_capacity"] <= 1
    assert metrics["champion"] in MODELS
    train_report = json.loads((chain["models"] / "train_report.json").read_text())
    assert metrics["champion"] == train_report["champion"]
    assert 0.5 < metrics["oracle"]["roc_auc"] <= 1
    assert metrics["capacity"] == chain["params"]["evaluate"]["capacity"]
    for curve in ("roc", "precision_recall", "calibration", "gains"):
        assert (chain["reports"] / "plots" / f"{curve}.csv").is_file(), curve
    assert (chain["reports"] / "metrics_by_slice.csv").is_file()


def test_explain_outputs(chain):
    reports = chain["reports"]
    fam = pd.read_csv(reports / "importance_by_family.csv")
    assert set(fam["family"]) <= FAMILIES
    assert (reports / "importance.csv").is_file()
    reasons = pd.read_parquet(chain["explanations"])
    scoring = pd.read_parquet(chain["processed"] / "scoring.parquet", columns=["customer_id"])
    # reasons for the tiers someone acts on (high + medium: 30% under the capacity policy)
    assert set(reasons["customer_id"]) <= set(scoring["customer_id"])
    sp = chain["params"]["segment"]
    expected = np.ceil(sp["high_share"] * len(scoring)) + np.ceil(sp["medium_share"] * len(scoring))
    assert len(reasons) == expected
    top_k = chain["params"]["explain"]["top_reasons"]
    for j in range(1, top_k + 1):
        assert f"reason_{j}_en" in reasons.columns
        assert f"reason_{j}_zh" in reasons.columns


def test_explain_figures_in_english_and_chinese(chain):
    """explain.figure_languages [en, zh]: the Chinese figures under the English names in zh/
    (none without a CJK font: the Chinese card then falls back to the English ones)."""
    assert chain["params"]["explain"]["figure_languages"] == ["en", "zh"]
    shap = chain["reports"] / "figures" / "shap"
    en = sorted(p.name for p in shap.glob("*.png"))
    assert {"shap_bar.png", "shap_families.png", "shap_beeswarm.png"} < set(en)
    assert sorted(p.name for p in shap.iterdir() if p.is_dir()) == (
        [] if figure_font("zh") is None else ["zh"]
    )
    if figure_font("zh") is not None:
        assert sorted(p.name for p in (shap / "zh").iterdir()) == en
        assert (shap / "zh" / "shap_bar.png").read_bytes() != (shap / "shap_bar.png").read_bytes()


def _explain_again_params(chain: dict, tmp: Path, params: dict) -> None:
    paths = Layout(tmp)
    paths.processed.parent.mkdir(parents=True)
    paths.processed.symlink_to(chain["processed"])
    run_stage("explain", paths, parse_params(params))


def _explain_again(chain: dict, tmp: Path, champion: str | None = None, **explain) -> dict:
    """The explain stage again on the chain's outputs, into `tmp`, with `explain` params
    changed and, if given, another candidate as the champion."""
    paths = Layout(tmp)
    models = paths.models
    shutil.copytree(chain["models"], models)
    paths.processed.symlink_to(chain["processed"])
    if champion is not None:
        report = json.loads((models / "train_report.json").read_text(encoding="utf-8"))
        report["champion"] = champion
        (models / "train_report.json").write_text(json.dumps(report), encoding="utf-8")
    params = copy.deepcopy(chain["params"])
    params["explain"].update(explain)
    run_stage("explain", paths, parse_params(params))
    return {"reports": paths.reports, "explanations": paths.explanations}


@pytest.mark.parametrize("champion", MODELS)
def test_explain_with_nobody_in_the_reason_tiers(chain, tmp_path, champion, monkeypatch):
    """`reason_tiers: []` (or tiers nobody lands in): an empty reasons table with every column,
    whichever model is the champion; the beeswarm's jitter is drawn from base.seed."""
    seeds = []
    figures = explain_workflow.figures

    def spy(*args, **kwargs):
        seeds.append(kwargs.get("seed"))
        return figures(*args, **kwargs)

    monkeypatch.setattr(explain_workflow, "figures", spy)
    out = _explain_again(
        chain, tmp_path, champion, reason_tiers=[], figure_languages=["en"], dependence_plots=0
    )
    reasons = pd.read_parquet(out["explanations"])
    assert reasons.empty
    assert list(reasons.columns) == list(pd.read_parquet(chain["explanations"]).columns)
    assert (out["reports"] / "importance.csv").is_file()
    assert (out["reports"] / "figures" / "shap" / "shap_bar.png").is_file()
    assert seeds == [chain["params"]["base"]["seed"]]


@pytest.mark.parametrize(
    ("languages", "message"),
    [(["zh"], "must include en"), (["en", "fr"], "fr"), ([], "must include en")],
)
def test_explain_checks_figure_languages_before_writing_anything(
    chain, tmp_path, languages, message
):
    with pytest.raises(ValueError, match=message):
        _explain_again(chain, tmp_path, figure_languages=languages)
    assert not (tmp_path / "reports").exists()
    assert not Layout(tmp_path).explanations.exists()


def test_explain_needs_figure_languages_in_params(chain, tmp_path):
    """params.yaml is the one default: no fallback list in the code."""
    params = copy.deepcopy(chain["params"])
    del params["explain"]["figure_languages"]
    with pytest.raises(ParamsError, match=r"explain\.figure_languages: missing key"):
        _explain_again_params(chain, tmp_path, params)
    assert not (tmp_path / "reports").exists()
    assert not Layout(tmp_path).explanations.exists()


def test_segment_files(chain):
    seg_dir = chain["segments"]
    sp = chain["params"]["segment"]
    for name in ("scored_customers", *TIERS, "control"):
        path = seg_dir / f"{name}.csv"
        assert path.read_bytes()[:3] == BOM, f"{name}.csv has no UTF-8 BOM for Excel"
    scored = _read_csv(seg_dir / "scored_customers.csv")
    n = len(scored)
    assert n == len(pd.read_parquet(chain["processed"] / "scoring.parquet"))
    assert scored["customer_id"].is_unique
    lists = {t: _read_csv(seg_dir / f"{t}.csv") for t in TIERS}
    control = _read_csv(seg_dir / "control.csv")
    sizes = {t: len(lists[t]) + (control["risk_tier"] == t).sum() for t in TIERS}
    assert sum(sizes.values()) == n
    assert sizes == scored["risk_tier"].value_counts().reindex(list(TIERS), fill_value=0).to_dict()
    assert abs(sizes["high"] - sp["high_share"] * n) <= 1
    assert abs(sizes["medium"] - sp["medium_share"] * n) <= 1
    assert (scored["action"].str.strip() != "").all()
    assert (scored["owner"].str.strip() != "").all()
    high = _read_csv(seg_dir / "high.csv")
    assert set(high["risk_tier"]) == {"high"}
    # the high tier holds the highest probabilities
    probs = scored["churn_probability"].astype(float)
    rest = probs[scored["risk_tier"] != "high"]
    assert high["churn_probability"].astype(float).min() >= rest.max()


def test_the_lake_copy_is_the_scored_customers_partitioned_by_tier(chain):
    """reports/segments/lake: one folder per risk tier x value tier present (Hive-style), which
    a lake engine reads back as the scored customers, every row and value."""
    import duckdb

    lake, seg_dir = chain["segments"] / "lake", chain["segments"]
    scored = pd.read_parquet(seg_dir / "scored_customers.parquet")
    assert chain["params"]["export"]["lake_partitions"] == ["risk_tier", "value_tier"]
    folders = {p.parent.relative_to(lake).as_posix() for p in lake.rglob("*.parquet")}
    pairs = scored[["risk_tier", "value_tier"]].drop_duplicates().itertuples(index=False)
    assert folders == {f"risk_tier={r}/value_tier={v}" for r, v in pairs}
    files = sorted(str(p) for p in lake.rglob("*.parquet"))
    got = duckdb.sql(f"SELECT * FROM read_parquet({files}, hive_partitioning = true)").df()
    got = got[list(scored.columns)].sort_values("customer_id", ignore_index=True)
    expected = scored.sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_segment_files_hold_the_control_group_apart(chain):
    """control.csv (and .parquet, and the workbook's sheet) holds the held-out customers with
    the campaign id; they are on no action list, whose rows are the campaign's treatment."""
    seg_dir = chain["segments"]
    scored = _read_csv(seg_dir / "scored_customers.csv")
    control = _read_csv(seg_dir / "control.csv")
    assert list(control.columns) == [
        "campaign_id",
        "customer_id",
        "risk_tier",
        "value_tier",
        "group",
    ]
    assert len(control) > 0
    assert set(control["group"]) == {"control"}
    scoring_month = pd.read_parquet(chain["processed"] / "scoring.parquet")["cutoff"].max()
    campaign = f"{scoring_month:%Y-%m}-retention"
    assert set(control["campaign_id"]) == {campaign}
    assert set(control["risk_tier"]) <= {"high", "medium"}
    parquet = pd.read_parquet(seg_dir / "control.parquet")
    assert parquet["customer_id"].astype(str).tolist() == control["customer_id"].tolist()
    held = set(control["customer_id"])
    assert held == set(scored.loc[scored["group"] == "control", "customer_id"])
    for tier in TIERS:
        rows = _read_csv(seg_dir / f"{tier}.csv")
        assert not rows["customer_id"].isin(held).any(), tier
        acted = rows["risk_tier"].isin(["high", "medium"]) & (rows["owner"] != "none")
        assert (rows.loc[acted, "group"] == "treatment").all()
        assert (rows.loc[acted, "campaign_id"] == campaign).all()
    wb = openpyxl.load_workbook(seg_dir / "segments.xlsx", read_only=True)
    try:
        assert "control" in wb.sheetnames
        sheet = list(wb["control"].values)
        assert {str(r[1]) for r in sheet[1:]} == held
        for tier in TIERS:
            ids = {str(r[0]) for r in list(wb[tier].values)[1:]}
            assert not ids & held, tier
    finally:
        wb.close()
    summary = pd.read_csv(seg_dir / "summary.csv", encoding="utf-8-sig")
    assert summary["control"].sum() == len(held)


def test_winback_without_returns_lists_the_leavers_by_value(chain):
    """The tiny world has leavers but no returns yet (issue 15): no return model, the list
    goes by value, the metrics say what is missing; segment exports it all the same."""
    from churnlight.models.winback import LIST_COLUMNS

    folder = chain["root"] / "data" / "artifacts" / "winback"
    wb = pd.read_parquet(folder / "list.parquet")
    assert list(wb.columns) == LIST_COLUMNS and len(wb) > 0
    assert wb["p_return_offer"].isna().all() and wb["value"].is_monotonic_decreasing
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["status"].startswith("no return observed")
    assert json.loads((chain["reports"] / "metrics.json").read_text())["winback"] == metrics
    exported = _read_csv(chain["segments"] / "winback.csv")
    held = _read_csv(chain["segments"] / "winback_control.csv")
    assert len(exported) + len(held) == len(wb)


def test_model_card_names_the_champion(chain):
    card = (chain["reports"] / "model_card.md").read_text(encoding="utf-8")
    champion = json.loads((chain["reports"] / "metrics.json").read_text())["champion"]
    lines = [line for line in card.splitlines() if "champion" in line.lower()]
    assert any(re.search(rf"\b{champion}\b", line) for line in lines), lines
    assert "the synthetic world" in card


def test_each_stage_depends_on_every_params_key_it_reads(chain):
    """What a stage reads from params (recorded while the chain ran) is in its dvc.yaml params,
    unless it cannot change a result: else an edit to it would leave stale outputs."""
    import yaml

    from churnlight.features.params import runtime_keys

    dvc_yaml = Path(__file__).resolve().parents[2] / "dvc.yaml"
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    runtime = runtime_keys()
    assert chain["reads"]["features"], "nothing recorded: the check would pass vacuously"
    missing = {}
    for stage, reads in chain["reads"].items():
        declared = stages[stage].get("params", [])
        undeclared = sorted(
            k
            for k in reads
            if k not in runtime and not any(k == d or k.startswith(d + ".") for d in declared)
        )
        if undeclared:
            missing[stage] = undeclared
    assert missing == {}
