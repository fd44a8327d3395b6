"""Stage `segment`: score the newest snapshot, cut risk tiers, attach reasons and the playbook
action, and write the files marketing opens (CSV with a byte-order mark for Excel).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from churnlight.models.segment import apply_playbook, churn_kind, risk_tiers
from churnlight.pipelines.common import atomic_dir, load_champion, load_params, setup_logging

log = logging.getLogger("churnlight.segment")
COLUMNS = [
    "customer_id",
    "churn_probability",
    "risk_tier",
    "value_tier",
    "care_layer",
    "churn_kind",
    "reason_1",
    "reason_2",
    "reason_3",
    "action",
    "angle",
    "owner",
    "due_within_hours",
    "rule_colour",
    "reason_1_zh",
    "reason_2_zh",
    "reason_3_zh",
]


def build_segments(
    scoring: pd.DataFrame, p: np.ndarray, reasons: pd.DataFrame, sp: dict
) -> pd.DataFrame:
    df = scoring[["customer_id"]].copy()
    df["churn_probability"] = np.round(p, 4)
    df["risk_tier"] = risk_tiers(p, sp["policy"], sp)
    df["value_tier"] = scoring.get(
        "value_tier", pd.Series("regular", index=scoring.index)
    ).to_numpy()
    df["care_layer"] = scoring.get(
        "care_layer", pd.Series("active", index=scoring.index)
    ).to_numpy()
    r = reasons.set_index("customer_id").loc[df["customer_id"]].reset_index(drop=True)
    r.index = df.index
    fams = r[[c for c in r.columns if c.endswith("_family")]]
    df["churn_kind"] = churn_kind(fams, scoring.get("complaints_open"))
    for j in (1, 2, 3):
        df[f"reason_{j}"] = r.get(f"reason_{j}_en", "")
        df[f"reason_{j}_zh"] = r.get(f"reason_{j}_zh", "")
    plan = apply_playbook(
        df["risk_tier"].to_numpy(),
        df["value_tier"].to_numpy(),
        df["care_layer"].to_numpy(),
        sp["playbook"],
    )
    df[["action", "owner", "due_within_hours"]] = plan.to_numpy()
    df["angle"] = r["reason_1_family"].map(sp["angles"]).fillna("").to_numpy()
    df.loc[df["risk_tier"] == "low", "angle"] = ""
    df["rule_colour"] = scoring["rule_colour"].to_numpy()
    tier_order = pd.Categorical(df["risk_tier"], ["high", "medium", "low"], ordered=True)
    df = df.assign(_t=tier_order).sort_values(["_t", "churn_probability"], ascending=[True, False])
    return df.drop(columns="_t")[COLUMNS].reset_index(drop=True)


def run(processed: Path, models: Path, explanations: Path, out: Path, params: dict) -> pd.DataFrame:
    _, model, features = load_champion(models)
    scoring = pd.read_parquet(processed / "scoring.parquet")
    reasons = pd.read_parquet(explanations)
    p = model.predict_proba(scoring[features])[:, 1]  # calibrated
    seg = build_segments(scoring, p, reasons, params["segment"])
    with atomic_dir(out) as tmp:
        seg.to_csv(tmp / "scored_customers.csv", index=False, encoding="utf-8-sig")
        seg.to_parquet(tmp / "scored_customers.parquet", index=False)
        for tier in ("high", "medium", "low"):
            seg[seg["risk_tier"] == tier].to_csv(
                tmp / f"{tier}.csv", index=False, encoding="utf-8-sig"
            )
    counts = seg["risk_tier"].value_counts().to_dict()
    log.info("segments: %s -> %s", counts, out)
    return seg


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--models", default="data/artifacts/models")
    ap.add_argument("--explanations", default="data/artifacts/explanations.parquet")
    ap.add_argument("--out", default="reports/segments")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(Path(args.processed), Path(args.models), Path(args.explanations), Path(args.out), params)


if __name__ == "__main__":
    main()
