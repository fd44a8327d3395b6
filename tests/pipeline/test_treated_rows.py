"""The train and evaluate stages with a contact log: treated rows leave training, its tuning
folds and the test metrics, the count is reported, and an empty log changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from churnlight.models.artifacts import read_snapshots

UPSTREAM = ("generate", "validate", "features")
CARRY, WINDOW = 90, 90
CONTACT_COLUMNS = {
    "customer_id": pd.Series(dtype="int64"),
    "ts": pd.Series(dtype="datetime64[ns]"),
    "campaign_id": pd.Series(dtype=object),
    "kind": pd.Series(dtype=object),
    "group": pd.Series(dtype=object),
    "action": pd.Series(dtype=object),
    "channel": pd.Series(dtype=object),
    "owner": pd.Series(dtype=object),
    "cost": pd.Series(dtype=float),
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("upstream")
    params = make_pipeline_params()
    paths = run_stages(root, params, UPSTREAM)
    return {**paths, "root": root, "params": params}


def _train_and_evaluate(
    upstream: dict, root: Path, run_stages, contacts: pd.DataFrame | None, policy: str
) -> dict:
    shutil.copytree(upstream["root"] / "data", root / "data")
    if contacts is not None:
        contacts.to_parquet(root / "data" / "interim" / "contacts.parquet", index=False)
    params = json.loads(json.dumps(upstream["params"]))
    params["train"]["treated_rows"] = policy
    paths = run_stages(root, params, ("train", "evaluate"))
    report = json.loads((paths["models"] / "train_report.json").read_text(encoding="utf-8"))
    metrics = json.loads((paths["reports"] / "metrics.json").read_text(encoding="utf-8"))
    return {"report": report, "metrics": metrics, "reads": paths["reads"]}


def _contacts(customer_ids, ts, group: str) -> pd.DataFrame:
    n = len(customer_ids)
    return pd.DataFrame(
        {
            "customer_id": list(customer_ids),
            "ts": [pd.Timestamp(ts)] * n,
            "campaign_id": [f"{pd.Timestamp(ts):%Y-%m}-retention"] * n,
            "kind": ["retention"] * n,
            "group": [group] * n,
            "action": ["call" if group == "treatment" else ""] * n,
            "channel": ["phone" if group == "treatment" else ""] * n,
            "owner": ["csm" if group == "treatment" else ""] * n,
            "cost": [20.0 if group == "treatment" else 0.0] * n,
        }
    )


@pytest.fixture(scope="module")
def runs(upstream, tmp_path_factory, run_stages) -> dict:
    features = read_snapshots(upstream["processed"] / "features.parquet")
    labelled = features[features["label"].notna()]
    cutoffs = sorted(labelled["cutoff"].unique())
    ids = sorted(labelled["customer_id"].unique())
    # a campaign on the second day of the third cutoff's month: treatment for 40 customers,
    # control for 40 others; one more on the test cutoff's second day for 30 of its customers
    third, test_cutoff = pd.Timestamp(cutoffs[2]), pd.Timestamp(cutoffs[-1])
    at_test = sorted(labelled.loc[labelled["cutoff"] == test_cutoff, "customer_id"])
    contacts = pd.concat(
        [
            _contacts(ids[:40], third + pd.Timedelta(days=1), "treatment"),
            _contacts(ids[40:80], third + pd.Timedelta(days=1), "control"),
            _contacts(at_test[-30:], test_cutoff + pd.Timedelta(days=1), "treatment"),
        ],
        ignore_index=True,
    )
    empty = pd.DataFrame(CONTACT_COLUMNS)
    out = {"features": labelled, "contacts": contacts}
    for name, table, policy in (
        ("absent", None, "exclude"),
        ("empty", empty, "exclude"),
        ("exclude", contacts, "exclude"),
        ("keep", contacts, "keep"),
    ):
        root = tmp_path_factory.mktemp(name)
        out[name] = _train_and_evaluate(upstream, root, run_stages, table, policy)
    return out


def _expected_treated(
    features: pd.DataFrame, contacts: pd.DataFrame, cutoffs, groups=("treatment",)
) -> int:
    """Rows (customer, cutoff in `cutoffs`) with a contact of `groups` in the documented window,
    counted the slow way."""
    treat = contacts[contacts["group"].isin(groups)]
    rows = features[features["cutoff"].isin(cutoffs)]
    n = 0
    for cid, cutoff in zip(rows["customer_id"], rows["cutoff"], strict=True):
        ts = treat.loc[treat["customer_id"] == cid, "ts"]
        lo, hi = cutoff - pd.Timedelta(days=CARRY), cutoff + pd.Timedelta(days=WINDOW)
        n += int(((ts >= lo) & (ts < hi)).any())
    return n


def test_exclude_leaves_treated_rows_out_and_reports_them(runs):
    base, ex = runs["absent"], runs["exclude"]
    train_cutoffs = [pd.Timestamp(c) for c in base["report"]["train_cutoffs"]]
    test_cutoffs = [pd.Timestamp(c) for c in base["report"]["test_cutoffs"]]
    # training loses the held-out (control) rows too; the test only the treated ones
    both = ("treatment", "control")
    want_train = _expected_treated(runs["features"], runs["contacts"], train_cutoffs, both)
    want_test = _expected_treated(runs["features"], runs["contacts"], test_cutoffs)
    treated_only = _expected_treated(runs["features"], runs["contacts"], train_cutoffs)
    assert want_train > treated_only >= 40 and want_test == 30  # the check is not vacuous
    assert ex["report"]["treated_rows_excluded"] == {"train": want_train, "test": want_test}
    assert ex["metrics"]["treated_rows_excluded"] == {"train": want_train, "test": want_test}
    assert ex["report"]["train_rows"] == base["report"]["train_rows"] - want_train
    assert ex["metrics"]["test_rows"] == base["metrics"]["test_rows"] - want_test
    assert ex["report"]["test_rows"] == ex["metrics"]["test_rows"]


def test_keep_trains_on_treated_rows_but_tests_without_them(runs):
    base, keep = runs["absent"], runs["keep"]
    assert keep["report"]["treated_rows"] == "keep"
    assert keep["report"]["train_rows"] == base["report"]["train_rows"]
    assert keep["metrics"]["treated_rows_excluded"] == {"train": 0, "test": 30}
    assert keep["metrics"]["test_rows"] == base["metrics"]["test_rows"] - 30


def test_an_empty_contact_log_changes_nothing(runs):
    absent, empty = runs["absent"], runs["empty"]
    assert absent["metrics"] == empty["metrics"]
    assert absent["metrics"]["treated_rows_excluded"] == {"train": 0, "test": 0}
    volatile = {"run_id", "model_uri", "seconds"}
    for kind, info in absent["report"]["models"].items():
        same = {k: v for k, v in info.items() if k not in volatile}
        assert same == {k: v for k, v in empty["report"]["models"][kind].items() if k in same}
    for key in ("cv", "champion", "train_rows", "test_rows", "train_cutoffs", "folds"):
        assert absent["report"][key] == empty["report"][key], key


def test_the_treatment_params_are_read_by_train_and_evaluate(runs):
    for stage in ("train", "evaluate"):
        reads = runs["exclude"]["reads"][stage]
        assert {"train.treated_rows", "train.treatment_carryover_days"} <= reads, stage
