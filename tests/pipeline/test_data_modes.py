"""The pipeline on other people's data: a flat labelled table (telecom style, no event tables,
no dates) and an event world missing its optional tables (feedback, market)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.shapes import telecom_customers

ALL_STAGES_AFTER_GENERATE = (
    "validate",
    "features",
    "train",
    "evaluate",
    "campaigns",
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
    params["data"].update(value_column="monthly_charges", value_multiplier=12)
    paths = run_stages(root, params, ALL_STAGES_AFTER_GENERATE)
    return {**paths, "root": root, "params": params, "customers": customers}


def test_flat_table_runs_end_to_end(flat_run):
    p = flat_run
    assert sorted(x.name for x in p["interim"].iterdir()) == [
        "contacts.parquet",  # always written: empty, no campaigns logged
        "contract_report.json",
        "customers.parquet",
    ]
    for name in ("features.parquet", "scoring.parquet", "feature_registry.csv"):
        assert (p["processed"] / name).is_file(), name
    for kind in ("logreg", "tree", "lgbm"):
        assert (p["models"] / f"{kind}.joblib").is_file(), kind
    assert p["explanations"].is_file()
    for name in ("scored_customers", "high", "medium", "low", "control"):
        assert (p["segments"] / f"{name}.csv").is_file(), name
    # no dates: one fixed campaign id (the log warns to set segment.campaign_id)
    control = pd.read_csv(p["segments"] / "control.csv", encoding="utf-8-sig", dtype=str)
    assert set(control["campaign_id"]) <= {"retention"}
    card = (p["reports"] / "model_card.md").read_text(encoding="utf-8")
    assert "flat mode" in card
    assert str(p["params"]["data"]["source"]) in card
    # bring-your-own data without a contacts table: no campaign to judge, and the card says
    # what to log
    campaigns = json.loads((p["reports"] / "campaigns.json").read_text(encoding="utf-8"))
    assert campaigns["status"] == "no campaigns logged yet"
    assert "**No campaigns logged yet.**" in card and "`campaign_id`" in card


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
    assert feats["cutoff"].isna().all()  # the table has no dates: none is invented
    churned = (flat_run["customers"]["churn"] == "Yes").sum()
    assert int(feats["label"].sum()) == churned
    # the scoring list is the customers still with us
    assert "label" not in scoring.columns
    assert len(scoring) == 600 - churned


def test_flat_metrics_have_no_oracle(flat_run):
    metrics = json.loads((flat_run["reports"] / "metrics.json").read_text())
    assert "oracle" not in metrics
    assert "champion_oracle_ratio" not in metrics
    for name in ("logreg", "tree", "lgbm"):
        assert {"roc_auc", "pr_auc", "brier", "log_loss", "recall_at_capacity"} <= set(
            metrics[name]
        )
    # churn depends on tenure and contract: the champion learns it
    assert metrics[metrics["champion"]]["roc_auc"] > 0.65


def test_flat_claims_no_rules_and_no_time(flat_run):
    """The rules need events: no rules row, no comparison; the split is random, not in time."""
    metrics = json.loads((flat_run["reports"] / "metrics.json").read_text())
    assert "rules" not in metrics
    assert metrics["rules_available"] is False
    assert metrics["champion_beats_rules"] is None
    assert metrics["test_split"] == "random stratified hold-out"
    assert metrics["test_cutoff"] is None
    card = (flat_run["reports"] / "model_card.md").read_text(encoding="utf-8")
    assert "not available: needs event data" in card
    assert "random stratified hold-out" in card
    assert "times as many" not in card
    assert "beat" not in card.split("## 2.")[0]  # section 1 claims nothing against the rules
    assert "out of time" not in card


def test_calibration_never_worse_than_none_on_the_flat_table(flat_run):
    metrics = json.loads((flat_run["reports"] / "metrics.json").read_text())
    for kind in ("logreg", "tree", "lgbm"):
        assert metrics[kind]["ece"] <= metrics[kind]["ece_uncalibrated"] + 1e-12, kind
        assert metrics["calibration"][kind] in ("none", "sigmoid", "isotonic")
    scored = pd.read_parquet(flat_run["segments"] / "scored_customers.parquet")
    assert scored["churn_probability"].between(0, 1, inclusive="neither").all()


DATE = re.compile(r"(19|20)\d\d-[01]\d-[0-3]\d")


def test_no_date_anywhere_in_a_flat_run_without_dates(flat_run):
    """A table without dates gets none: no file the run wrote holds a date, except the card's
    "generated on" stamp (the day the card was written)."""
    today = str(dt.date.today())
    found = {}
    for path in sorted(Path(flat_run["root"]).rglob("*")):
        inputs = "telco" in path.parts or path.name == "params.yaml"
        if not path.is_file() or inputs or path.suffix in (".png", ".joblib"):
            continue
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
            dated = [c for c in table.columns if pd.api.types.is_datetime64_any_dtype(table[c])]
            hits = [c for c in dated if table[c].notna().any()]
        elif path.suffix in (".json", ".csv", ".md", ".html", ".txt", ".yaml"):
            text = path.read_text(encoding="utf-8-sig", errors="replace")
            hits = sorted({m.group(0) for m in DATE.finditer(text)} - {today})
        else:
            continue
        if hits:
            found[str(path.relative_to(flat_run["root"]))] = hits[:3]
    assert not found, found


def test_flat_value_tiers_from_the_value_column(flat_run):
    """monthly charges x 12 is the customer value; quintiles of it populate every tier, and
    expected retained value is negative only where the action costs more than it keeps."""
    scored = pd.read_parquet(flat_run["segments"] / "scored_customers.parquet")
    customers = flat_run["customers"].set_index("customer_id")
    value = customers.loc[scored["customer_id"], "monthly_charges"].to_numpy() * 12
    assert scored["customer_value"].to_numpy() == pytest.approx(value, abs=0.01)
    assert set(scored["value_tier"]) == {"platinum", "gold", "silver", "regular"}
    top = scored.loc[scored["value_tier"] == "platinum", "customer_value"].min()
    assert top >= scored.loc[scored["value_tier"] == "regular", "customer_value"].max()
    skip = scored["action"].str.startswith("No contact")
    assert (scored.loc[skip, "expected_retained_value"] < 0).all()
    assert (scored.loc[~skip, "expected_retained_value"] >= 0).all()


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
