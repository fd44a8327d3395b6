"""Why treated rows leave training: in a world where contacts saved some of the riskiest
customers, a model that trains on their changed labels learns that "looks risky" means "stays",
and ranks the flagged customers nobody called too low.

The world: the pipeline's synthetic snapshots (8,000 customers, the default dates). Each month
the old process flags the top decile by the three-colour rule score; half of the flagged get a
treatment contact on the cutoff's second day, the rest are logged as control. On every row a
treatment contact marks (the documented window: `train.treatment_carryover_days` before the
cutoff to the end of the label window), 60% of the churners are saved (label flipped to 0).
Both policies are then trained with fixed hyperparameters (no tuning: seconds, deterministic)
and judged on the untreated test rows, whose labels no contact touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from churnlight.models.evaluate import score_metrics, top_share_mask
from churnlight.models.train import fit_candidate, time_split
from churnlight.models.treatment import treated_rows, treatment_split

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ("generate", "validate", "features")
FLAGGED, CONTACTED, SAVED = 0.10, 0.5, 0.6  # top decile; half of it called; 60% of churners kept
# fixed, moderate hyperparameters: the comparison is between training rows, not tunings
HYPER = {
    "logreg": {"C": 0.1},
    "lgbm": {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "max_depth": -1,
        "min_child_samples": 50,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "reg_lambda": 0.0,
        "n_jobs": 1,
    },
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, run_stages) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["base"]["log_level"] = "WARNING"
    params["generate"]["n_customers"] = 8000
    root = tmp_path_factory.mktemp("treated_world")
    paths = run_stages(root, params, UPSTREAM)
    features = pd.read_parquet(paths["processed"] / "features.parquet")
    names = pd.read_csv(paths["processed"] / "feature_registry.csv")["name"].tolist()
    return _campaigns(features, names, params)


def _campaigns(features: pd.DataFrame, names: list[str], params: dict) -> dict:
    """The snapshots after a year of campaigns: the contacts and the labels they changed."""
    seed, tp = params["base"]["seed"], params["train"]
    window, carry = params["features"]["label_window_days"], tp["treatment_carryover_days"]
    rng = np.random.default_rng(seed)
    df = features[features["label"].notna()].reset_index(drop=True)
    df["label"] = df["label"].astype(int)
    ranked = df.assign(tie=rng.random(len(df))).sort_values(
        ["cutoff", "rule_score", "tie"], ascending=[True, False, False]
    )
    place = ranked.groupby("cutoff").cumcount()
    size = ranked["cutoff"].map(ranked.groupby("cutoff").size())
    flagged = ranked[place < np.ceil(FLAGGED * size)]
    called = rng.random(len(flagged)) < CONTACTED
    contacts = pd.DataFrame(
        {
            "customer_id": flagged["customer_id"].to_numpy(),
            "ts": (flagged["cutoff"] + pd.Timedelta(days=1)).to_numpy(),
            "group": np.where(called, "treatment", "control"),
        }
    )
    treated = treated_rows(df, contacts, carry, window).mask
    saved = treated & (df["label"] == 1) & (rng.random(len(df)) < SAVED)
    world = df.assign(label=df["label"].where(~saved, 0))
    split = time_split(world, window, tp["test_months"], seed)
    test_cutoff = split.test_cutoffs[-1]
    flagged_at_test = set(flagged.loc[flagged["cutoff"] == test_cutoff, "customer_id"])
    return {
        "world": world,
        "split": split,
        "contacts": contacts,
        "names": names,
        "seed": seed,
        "carry": carry,
        "window": window,
        "capacity": params["evaluate"]["capacity"],
        "flagged_at_test": flagged_at_test,
        "saved": int(saved.sum()),
    }


def _judge(w: dict, kind: str, policy: str) -> dict:
    # control rows kept: this test is about the treated labels (the default leaves control out
    # of training too, for the campaigns' tiers; with half the flagged held out here, that would
    # also drop every untreated flagged example)
    ts = treatment_split(
        w["world"],
        w["split"],
        w["contacts"],
        policy,
        w["carry"],
        w["window"],
        control_rows="keep",
    )
    model = fit_candidate(kind, ts.split.train, w["names"], HYPER[kind], w["seed"])
    test = ts.split.test  # untreated rows only, whatever the policy: their labels are the truth
    p = model.predict_proba(test[w["names"]])[:, 1]
    y = test["label"].to_numpy(int)
    flagged = test["customer_id"].isin(w["flagged_at_test"]).to_numpy()
    top = top_share_mask(p, w["capacity"])
    return {
        **score_metrics(y, p, w["capacity"]),
        "excluded": ts.excluded,
        # the flagged customers nobody called: their predicted and observed churn rate, and the
        # share of their churners inside the list the team can work
        "flagged_predicted": float(p[flagged].mean()),
        "flagged_observed": float(y[flagged].mean()),
        "flagged_recall": float((top & flagged & (y == 1)).sum() / (flagged & (y == 1)).sum()),
    }


@pytest.mark.parametrize("kind", ["logreg", "lgbm"])
def test_excluding_treated_rows_keeps_the_ranking_honest(world, kind):
    keep, exclude = _judge(world, kind, "keep"), _judge(world, kind, "exclude")
    assert world["saved"] > 500  # the campaigns changed enough labels to matter
    assert keep["excluded"]["train"] == 0 and exclude["excluded"]["train"] > 1000
    assert keep["excluded"]["test"] == exclude["excluded"]["test"] > 0
    # trained on saved churners, `keep` believes flagged customers are safe; `exclude` does not
    assert keep["flagged_predicted"] < exclude["flagged_predicted"] - 0.05, (keep, exclude)
    observed = exclude["flagged_observed"]
    assert abs(exclude["flagged_predicted"] - observed) < abs(keep["flagged_predicted"] - observed)
    # ... and so its list misses more of them, and more churners overall at capacity
    assert exclude["flagged_recall"] > keep["flagged_recall"], (keep, exclude)
    assert exclude["recall_at_capacity"] > keep["recall_at_capacity"], (keep, exclude)
