"""Did the campaigns work? The evaluation's uplift against the synthetic world's truth, on a
second seed (the default world's own check is in test_behaviour.py).

The world knows each contact's true effect (data/raw/_truth/contacts.parquet); the campaigns stage
sees only the contact log and the labels. Its interval must cover the truth overall and per risk
tier, and most of the finer risk x value cells (95% intervals on many cells: some miss by chance).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from campaign_truth import check_against_truth  # tests/ is on sys.path (rootdir)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def second_seed(tmp_path_factory, run_stages) -> pd.DataFrame:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["base"].update(seed=7, log_level="WARNING")
    params["generate"]["n_customers"] = 12_000
    params["train"].update(n_trials={"logreg": 2, "tree": 2, "lgbm": 3}, timeout_s=100_000)
    params["report"]["screenshot"] = False
    root = tmp_path_factory.mktemp("seed7")
    run_stages(root, params)
    return pd.read_csv(root / "reports" / "campaigns.csv")


def test_estimated_uplift_covers_the_truth_on_a_second_seed(second_seed):
    check_against_truth(second_seed)
