"""Stage `winback` (issue 15) on the tiny world with constructed returns and win-back contacts
(tests/winback_returns.py), its export by the segment stage and its metrics in
reports/metrics.json; and on data it cannot find leavers in (a flat labelled table): every
file, empty, and the reason in the metrics."""

from __future__ import annotations

import json

import openpyxl
import pandas as pd
import pytest

from churnlight.models.winback import LIST_COLUMNS
from tests.shapes import telecom_customers
from tests.winback_returns import add_returns

AFTER_GENERATE = ("validate", "features", "train", "winback", "evaluate", "explain", "segment")


@pytest.fixture(scope="module")
def with_returns(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("winback")
    params = make_pipeline_params()
    params["winback"]["lgbm"]["min_child_samples"] = 5  # a few dozen leavers
    paths = run_stages(root, params, ("generate",))
    raw = paths["raw"]
    tables = {n: pd.read_parquet(raw / f"{n}.parquet") for n in ("customers", "transactions")}
    reasons = pd.read_parquet(paths["truth"] / "customers.parquet").set_index("customer_id")
    as_of = (paths["truth"] / "as_of.txt").read_text().strip()
    out, truth = add_returns(tables, reasons["churn_reason"], as_of, seed=3)
    for name in ("transactions", "contacts"):
        out[name].to_parquet(raw / f"{name}.parquet", index=False)
    paths = run_stages(root, params, AFTER_GENERATE)
    return {**paths, "root": root, "truth_returns": truth, "params": params}


def test_the_list_holds_the_recent_leavers_ranked(with_returns):
    wb = pd.read_parquet(with_returns["root"] / "data/artifacts/winback/list.parquet")
    assert list(wb.columns) == LIST_COLUMNS
    assert len(wb) > 0
    assert wb["rank"].tolist() == list(range(1, len(wb) + 1))
    assert wb["days_since_leaving"].between(0, 30).all()
    assert wb["p_return_offer"].between(0, 1).all()
    offered = wb["owner"].ne("none")
    ev = wb.loc[offered, "expected_value"]
    assert ev.is_monotonic_decreasing and (ev > 0).all()
    assert (wb["reason_1"].str.len() > 0).mean() > 0.5
    assert (wb["reason_1_zh"].str.len() > 0).mean() > 0.5


def test_metrics_compare_the_orderings_and_reach_reports_metrics(with_returns):
    root = with_returns["root"]
    m = json.loads((root / "data/artifacts/winback/metrics.json").read_text())
    assert m["returned_rows"] > 0 and m["offer_rows"] > 0
    assert set(m["orderings"]) == {"model", "most_recent_first", "highest_value_first"}
    for row in m["orderings"].values():
        assert {"roc_auc", "pr_auc", "value_won_back_at_capacity"} <= set(row)
    assert m["n_train"] > 0 and m["n_test"] > 0
    report = json.loads((root / "reports/metrics.json").read_text())
    assert report["winback"] == m
    assert (root / "data/artifacts/winback/model.joblib").is_file()


def test_segment_exports_the_list_with_its_own_control_group(with_returns):
    seg = with_returns["segments"]
    wb = pd.read_parquet(with_returns["root"] / "data/artifacts/winback/list.parquet")
    assert (seg / "winback.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    acted = pd.read_csv(seg / "winback.csv", encoding="utf-8-sig", dtype=str)
    control = pd.read_csv(seg / "winback_control.csv", encoding="utf-8-sig", dtype=str)
    assert (
        pd.read_parquet(seg / "winback.parquet")["customer_id"].tolist()
        == acted["customer_id"].tolist()
    )
    assert len(acted) + len(control) == len(wb)
    assert set(control["group"]) <= {"control"}
    assert set(acted["campaign_id"].dropna()) <= {"2026-07-winback"}
    assert not set(acted["customer_id"]) & set(control["customer_id"])
    summary = pd.read_csv(seg / "winback_summary.csv", encoding="utf-8-sig")
    assert summary["leavers"].sum() == len(wb)
    assert summary["control"].sum() == len(control)
    book = openpyxl.load_workbook(seg / "segments.xlsx", read_only=True)
    assert {"winback", "winback_control", "winback_summary"} <= set(book.sheetnames)
    book.close()


@pytest.fixture(scope="module")
def flat(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("winback_flat")
    source = root / "telco"
    source.mkdir()
    telecom_customers().to_csv(source / "customers.csv", index=False)
    params = make_pipeline_params()
    params["data"]["source"] = str(source)
    params["data"].update(value_column="monthly_charges", value_multiplier=12)
    paths = run_stages(root, params, ("validate", "features", "train", "winback"))
    return {**paths, "root": root}


def test_without_events_the_stage_writes_empty_outputs_and_says_why(flat):
    folder = flat["root"] / "data/artifacts/winback"
    wb = pd.read_parquet(folder / "list.parquet")
    assert list(wb.columns) == LIST_COLUMNS and wb.empty
    m = json.loads((folder / "metrics.json").read_text())
    assert any("no own events" in why for why in m["missing"])
    assert m["status"] != "ok" and m["list"]["leavers"] == 0
    assert not (folder / "model.joblib").exists()
