"""Stage `campaigns` on a tiny run: a contact log written against its snapshots (a planted
effect on the labels of the treated), the truth beside it, and the empty case.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from churnlight.features.params import record_reads
from churnlight.models.campaigns import ALL, NO_CAMPAIGNS, POOLED
from churnlight.models.contacts import CONTACT_COLUMNS
from churnlight.pipelines.common import InputError, Layout, load_params, run_stage

UP_TO_EVALUATE = ("generate", "validate", "features", "train", "evaluate")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory, make_pipeline_params, run_stages) -> Path:
    root = tmp_path_factory.mktemp("campaigns")
    run_stages(root, make_pipeline_params(), UP_TO_EVALUATE)
    return root


def _copy(project: Path, tmp_path: Path) -> Layout:
    """A project of its own that shares the run's data (the test writes contacts into it)."""
    root = tmp_path / "p"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("mlruns", "*.db"))
    return Layout(root)


def _log_contacts(paths: Layout, seed: int = 0) -> pd.DataFrame:
    """A campaign at every labelled cutoff: 60% of each cutoff's customers flagged, a third of
    them held out; the truth says the contact prevents churn for 0.1 of the treated (their
    labels are not changed: the truth is only set beside the estimate)."""
    rng = np.random.default_rng(seed)
    df = pd.read_parquet(paths.processed / "features.parquet", columns=["customer_id", "cutoff"])
    rows = []
    for cutoff, g in df.groupby("cutoff"):
        ids = g["customer_id"].to_numpy()
        flagged = rng.permutation(ids)[: int(0.6 * len(ids))]
        group = np.where(np.arange(len(flagged)) % 3 == 0, "control", "treatment")
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": flagged,
                    "ts": cutoff + pd.Timedelta(days=1),
                    "campaign_id": f"{cutoff:%Y-%m}-retention",
                    "kind": "retention",
                    "group": group,
                    "action": np.where(group == "treatment", "call", ""),
                    "channel": "phone",
                    "owner": "customer_success",
                    "cost": np.where(group == "treatment", 60.0, 0.0),
                }
            )
        )
    contacts = pd.concat(rows, ignore_index=True)
    contacts.to_parquet(paths.interim / "contacts.parquet", index=False)
    truth = contacts[["customer_id", "campaign_id", "ts", "group"]].assign(
        state="healthy", p_churn_control=0.2, p_churn_treated=0.1, true_uplift=0.1
    )
    paths.truth.mkdir(parents=True, exist_ok=True)
    truth.to_parquet(paths.truth / "contacts.parquet", index=False)
    return contacts


def _run(paths: Layout) -> tuple[dict, set[str]]:
    with record_reads() as seen:
        run_stage("campaigns", paths, load_params(paths.params))
    return json.loads((paths.reports / "campaigns.json").read_text(encoding="utf-8")), seen


def test_a_logged_campaign_is_evaluated_with_its_tiers_and_truth(project, tmp_path):
    paths = _copy(project, tmp_path)
    contacts = _log_contacts(paths)
    summary, reads = _run(paths)
    table = pd.read_csv(paths.reports / "campaigns.csv")
    assert summary["status"] == "evaluated"
    labelled = pd.read_parquet(paths.processed / "features.parquet", columns=["cutoff"])
    n_cutoffs = labelled["cutoff"].nunique()
    assert summary["campaigns_evaluated"] == n_cutoffs == contacts["campaign_id"].nunique()
    pooled = table[(table["campaign_id"] == POOLED) & (table["risk_tier"] == ALL)]
    overall = pooled[pooled["value_tier"] == ALL].iloc[0]
    assert overall["n_treatment"] == (contacts["group"] == "treatment").sum()
    assert overall["early_identification_rate"] == pytest.approx(0.6, abs=0.1)
    assert overall["cost"] == pytest.approx(60 * overall["n_treatment"])
    # no effect in the labels: the interval holds 0, and the planted truth sits beside it
    assert overall["uplift_low"] < 0 < overall["uplift_high"]
    assert overall["true_uplift"] == pytest.approx(0.1)
    # risk tiers from the champion, cut as the segment stage does
    assert {"high", "medium", "low"} <= set(table["risk_tier"])
    assert set(table["value_tier"]) - {ALL} <= {"platinum", "gold", "silver", "regular"}
    # the success metrics: the model's list beside the brief's targets
    metrics = json.loads((paths.reports / "metrics.json").read_text(encoding="utf-8"))
    success = summary["success"]
    model_recall = metrics[metrics["champion"]]["recall_at_capacity"]
    assert success["early_identification"]["model"] == model_recall
    assert success["early_identification"]["target"] == 0.8
    assert summary["truth"]["available"] is True
    # the params it read are its dvc.yaml params
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["campaigns"]
    declared = stage["params"]
    assert (
        reads
        and [k for k in reads if not any(k == d or k.startswith(d + ".") for d in declared)] == []
    )


def test_without_contacts_the_outputs_say_what_to_log(project, tmp_path):
    paths = _copy(project, tmp_path)
    summary, _ = _run(paths)  # no contacts file (a validate that writes none)
    assert summary["status"] == NO_CAMPAIGNS
    assert "campaign_id" in summary["message"]
    assert pd.read_csv(paths.reports / "campaigns.csv").empty
    pd.DataFrame(columns=list(CONTACT_COLUMNS)).to_parquet(paths.interim / "contacts.parquet")
    summary, _ = _run(paths)  # the empty table validate writes
    assert summary["status"] == NO_CAMPAIGNS
    assert summary["success"]["early_identification"]["model"] is not None


def test_bad_contacts_write_nothing(project, tmp_path):
    paths = _copy(project, tmp_path)
    contacts = _log_contacts(paths)
    first = contacts.iloc[[0]]
    flipped = first.assign(
        group=first["group"].map({"control": "treatment", "treatment": "control"})
    )
    both = pd.concat([contacts, flipped])
    both.to_parquet(paths.interim / "contacts.parquet", index=False)
    with pytest.raises(InputError, match="both treatment and control"):
        run_stage("campaigns", paths, load_params(paths.params))
    assert not (paths.reports / "campaigns.json").exists()
    assert not (paths.reports / "campaigns.csv").exists()
