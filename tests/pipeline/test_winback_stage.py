"""Stage `campaigns` judges the win-back campaigns (issue 15) on a tiny run of a world that runs
them: rows of kind winback per value tier in reports/campaigns.csv, the summary under
"winback" with the brief's targets and the truth beside; without win-back contacts it says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnlight.models.campaigns import ALL, POOLED
from churnlight.models.winback_campaigns import NO_CONTACTS
from churnlight.models.winback_campaigns import POOLED as WB_POOLED
from churnlight.pipelines.common import Layout, load_params

STAGES = ("generate", "validate", "features", "train", "evaluate", "campaigns")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    """The tiny world with its win-back campaigns (and a longer history, so that several are
    fully observed after the first snapshot, and a larger control group)."""
    params = make_pipeline_params()
    params["generate"].update(winback=True, n_customers=1200, months=20, winback_control_share=0.3)
    root = tmp_path_factory.mktemp("winback")
    return run_stages(root, params, STAGES)


def _paths(project: dict) -> Layout:
    return Layout(project["params"].parent)


def test_winback_campaigns_are_judged_per_value_tier(project):
    paths = _paths(project)
    summary = json.loads((paths.reports / "campaigns.json").read_text(encoding="utf-8"))
    table = pd.read_csv(paths.reports / "campaigns.csv")
    wb = summary["winback"]
    assert wb["status"] == "evaluated" and wb["campaigns_evaluated"] >= 2
    assert wb["targets"]["winback_rate"] == {"platinum": 0.7, "gold": 0.5, "silver": 0.3}
    rows = table[table["kind"] == "winback"]
    assert len(rows) and rows["campaign_id"].str.endswith("winback").all()
    assert set(rows["value_tier"]) - {ALL} <= {"platinum", "gold", "silver", "regular"}
    overall = rows[(rows["campaign_id"] == WB_POOLED) & (rows["value_tier"] == ALL)].iloc[0]
    # every fully observed contact of a leaver with a snapshot before leaving is counted
    contacts = pd.read_parquet(paths.interim / "contacts.parquet")
    contacts = contacts[contacts["kind"] == "winback"]
    evaluated = rows.loc[rows["campaign_id"] != WB_POOLED, "campaign_id"].unique()
    contacts = contacts[contacts["campaign_id"].isin(evaluated)]
    snaps = pd.read_parquet(paths.processed / "features.parquet", columns=["customer_id", "cutoff"])
    cust = pd.read_parquet(paths.interim / "customers.parquet").set_index("customer_id")
    snaps = snaps[snaps["cutoff"] <= snaps["customer_id"].map(cust["cancel_date"])]
    with_snapshot = contacts["customer_id"].isin(set(snaps["customer_id"]))
    assert with_snapshot.mean() > 0.8  # a few left before their first snapshot: left out
    counted = contacts[with_snapshot]
    both = counted.groupby("campaign_id")["group"].nunique() == 2  # else no uplift: left out
    n = counted["campaign_id"].map(both).sum()
    by_tier = rows[(rows["campaign_id"] == WB_POOLED) & (rows["value_tier"] != ALL)]
    assert overall["n_treatment"] + overall["n_control"] == n
    # a tier of a campaign without its own control group is left out of that tier's rows
    assert 0.5 * n < by_tier["n_treatment"].sum() + by_tier["n_control"].sum() <= n
    assert 0 <= overall["return_rate_control"] <= overall["return_rate_treatment"] <= 1
    assert overall["cost"] > 0 and overall["roi_target"] == 5.0
    # the truth beside, and the retention rows untouched by the win-back ones
    assert overall["true_uplift"] > 0
    assert summary["truth"]["available"] in (True, False)
    assert (
        not (table["campaign_id"] == POOLED).any()
        or (table.loc[table["campaign_id"] == POOLED, "kind"] == "retention").all()
    )


def test_the_params_it_read_are_declared(project):
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["campaigns"]
    declared = stage["params"]
    reads = project["reads"]["campaigns"]
    assert "winback.window_days" in reads
    assert [k for k in reads if not any(k == d or k.startswith(d + ".") for d in declared)] == []


def test_without_winback_contacts_the_summary_says_what_is_missing(project, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(_paths(project).root, root, ignore=shutil.ignore_patterns("mlruns", "*.db"))
    paths = Layout(root)
    contacts = pd.read_parquet(paths.interim / "contacts.parquet")
    contacts[contacts["kind"] != "winback"].to_parquet(paths.interim / "contacts.parquet")
    from churnlight.pipelines.common import run_stage

    run_stage("campaigns", paths, load_params(paths.params))
    wb = json.loads((paths.reports / "campaigns.json").read_text(encoding="utf-8"))["winback"]
    assert wb["status"] == NO_CONTACTS and "winback" in wb["message"]
