"""The pipeline on other people's data: a flat labelled table (telecom style, no event tables)
and an event world missing its optional tables (feedback, market)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.shapes import telecom_customers

ALL_STAGES_AFTER_GENERATE = (
    "validate",
    "features",
    "train",
    "evaluate",
    "explain",
    "segment",
    "report",
)
PROFILE = ("tenure_months", "monthly_charges", "contract")
NUMERIC_PROFILE = ("tenure_months", "monthly_charges")


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("flat")
    source = root / "telco"
    source.mkdir()
    customers = telecom_customers()
    customers.to_csv(source / "customers.csv", index=False)
    params = make_pipeline_params()
    params["data"]["source"] = str(source)  # validate reads it from params (no --raw)
    paths = run_stages(root, params, ALL_STAGES_AFTER_GENERATE)
    return {**paths, "root": root, "params": params, "customers": customers}


def test_flat_table_runs_end_to_end(flat_run):
    p = flat_run
    assert sorted(x.name for x in p["interim"].iterdir()) == [
        "contract_report.json",
        "customers.parquet",
    ]
    for name in ("features.parquet", "scoring.parquet", "feature_registry.csv"):
        assert (p["processed"] / name).is_file(), name
    for kind in ("logreg", "tree", "lgbm"):
        assert (p["models"] / f"{kind}.joblib").is_file(), kind
    assert p["explanations"].is_file()
    for name in ("scored_customers", "high", "medium", "low"):
        assert (p["segments"] / f"{name}.csv").is_file(), name
    card = (p["reports"] / "model_card.md").read_text(encoding="utf-8")
    assert "flat mode" in card
    assert str(p["params"]["data"]["source"]) in card


def test_flat_contract_report(flat_run):
    report = json.loads((flat_run["interim"] / "contract_report.json").read_text())
    assert report["mode"] == "flat"
    assert report["families"] == {
        "behaviour": False,
        "attitude": False,
        "external": False,
        "profile": True,
    }
    assert report["rows"] == {"customers": 600}


def test_flat_registers_only_profile_features(flat_run):
    reg = pd.read_csv(flat_run["processed"] / "feature_registry.csv")
    assert set(reg["family"]) == {"profile"}
    assert sorted(reg["name"]) == sorted(PROFILE)  # never the id or the label


def test_flat_features_one_snapshot(flat_run):
    feats = pd.read_parquet(flat_run["processed"] / "features.parquet")
    scoring = pd.read_parquet(flat_run["processed"] / "scoring.parquet")
    assert len(feats) == 600
    assert feats["cutoff"].nunique() == 1
    churned = (flat_run["customers"]["churn"] == "Yes").sum()
    assert int(feats["label"].sum()) == churned
    # the scoring list is the customers still with us
    assert "label" not in scoring.columns
    assert len(scoring) == 600 - churned


def test_flat_metrics_have_no_oracle(flat_run):
    metrics = json.loads((flat_run["reports"] / "metrics.json").read_text())
    assert "oracle" not in metrics
    assert "champion_oracle_ratio" not in metrics
    for name in ("logreg", "tree", "lgbm", "rules"):
        assert {"roc_auc", "pr_auc", "brier", "log_loss", "recall_at_capacity"} <= set(
            metrics[name]
        )
    # churn depends on tenure and contract: the champion learns it
    assert metrics[metrics["champion"]]["roc_auc"] > 0.65


def test_flat_segments_cover_the_scoring_list(flat_run):
    scored = pd.read_csv(
        flat_run["segments"] / "scored_customers.csv", dtype=str, keep_default_na=False
    )
    scoring = pd.read_parquet(flat_run["processed"] / "scoring.parquet")
    assert sorted(scored["customer_id"]) == sorted(scoring["customer_id"])
    assert (scored["action"] != "").all()
    assert (scored["owner"] != "").all()


def test_flat_numeric_profile_columns_stay_numbers(flat_run):
    reg = pd.read_csv(flat_run["processed"] / "feature_registry.csv").set_index("name")
    feats = pd.read_parquet(flat_run["processed"] / "features.parquet")
    for col in NUMERIC_PROFILE:
        assert reg.loc[col, "unit"] == "number", col
        assert pd.api.types.is_numeric_dtype(feats[col]), col
    assert reg.loc["contract", "unit"] == "category"


def test_flat_model_card_top_reasons_name_the_attribute(flat_run):
    card = (flat_run["reports"] / "model_card.md").read_text(encoding="utf-8")
    line = next(x for x in card.splitlines() if "Top reasons" in x)
    assert any(col.replace("_", " ") in line for col in PROFILE), line


# --- event data missing the optional tables ---------------------------------------------------


@pytest.fixture(scope="module")
def no_feedback_no_market(tmp_path_factory, tiny_world, make_pipeline_params, run_stages):
    root = tmp_path_factory.mktemp("partial")
    raw = root / "mydata"
    raw.mkdir()
    for name, df in tiny_world.raw_tables().items():
        if name not in ("feedback", "market"):
            df.to_csv(raw / f"{name}.csv", index=False)
    params = make_pipeline_params()
    params["data"].update(source=str(raw), as_of=str(tiny_world.as_of.date()))
    paths = run_stages(root, params, ("validate", "features"))
    return {**paths, "root": root, "raw": raw}


def test_missing_tables_switch_families_off(no_feedback_no_market):
    report = json.loads((no_feedback_no_market["interim"] / "contract_report.json").read_text())
    assert report["mode"] == "events"
    assert report["families"] == {
        "behaviour": True,
        "attitude": False,
        "external": False,
        "profile": True,
    }
    assert sorted(report["tables_missing"]) == ["feedback", "market"]
    assert not (no_feedback_no_market["interim"] / "feedback.parquet").exists()
    assert not (no_feedback_no_market["interim"] / "market.parquet").exists()


def test_missing_tables_register_no_attitude_or_external(no_feedback_no_market):
    processed: Path = no_feedback_no_market["processed"]
    reg = pd.read_csv(processed / "feature_registry.csv")
    assert set(reg["family"]) == {"behaviour", "profile"}
    feats = pd.read_parquet(processed / "features.parquet")
    assert [n for n in reg["name"] if n not in feats.columns] == []
    assert feats["label"].notna().all()
    summary = json.loads((processed / "features_report.json").read_text())
    assert set(summary["features_per_family"]) == {"behaviour", "profile"}
    assert (processed / "scoring.parquet").is_file()
