"""Stage `segment`: score the newest snapshot, cut risk tiers, attach reasons and the playbook
action, rank by expected retained value, check drift, and write the files marketing opens.

CSV files carry a UTF-8 byte-order mark so that Excel shows Chinese text correctly.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from churnlight.models.segment import (
    COLUMN_DOCS,
    apply_playbook,
    churn_kind,
    expected_retained_value,
    hash_ids,
    population_stability,
    risk_tiers,
    summarise,
)
from churnlight.pipelines.common import (
    atomic_dir,
    load_champion,
    load_params,
    load_train_report,
    setup_logging,
    write_csv,
    write_json,
)

log = logging.getLogger("churnlight.segment")
COLUMNS = list(COLUMN_DOCS)
TIERS = ("high", "medium", "low")


def build_segments(
    scoring: pd.DataFrame, p: np.ndarray, reasons: pd.DataFrame, sp: dict
) -> pd.DataFrame:
    """One row per scored customer with every documented column, ranked within each tier."""
    n = len(scoring)
    df = scoring[["customer_id"]].copy()
    df["churn_probability"] = np.round(p, 4)
    df["risk_tier"] = risk_tiers(p, sp["policy"], sp)
    df["value_tier"] = scoring["value_tier"].to_numpy() if "value_tier" in scoring else "regular"
    df["care_layer"] = scoring["care_layer"].to_numpy() if "care_layer" in scoring else "active"
    r = reasons.set_index("customer_id").reindex(df["customer_id"])
    r.index = df.index
    fams = r[[c for c in r.columns if c.endswith("_family")]]
    df["churn_kind"] = churn_kind(fams, scoring.get("complaints_open"))
    for j in (1, 2, 3):
        df[f"_reason_{j}_feature"] = r.get(f"reason_{j}_feature", pd.Series(None, index=df.index))
        df[f"reason_{j}"] = r.get(f"reason_{j}_en", pd.Series("", index=df.index)).fillna("")
        df[f"reason_{j}_zh"] = r.get(f"reason_{j}_zh", pd.Series("", index=df.index)).fillna("")
    plan = apply_playbook(
        df["risk_tier"].to_numpy(),
        df["value_tier"].to_numpy(),
        df["care_layer"].to_numpy(),
        sp["playbook"],
    )
    for c in plan.columns:
        df[c] = plan[c].to_numpy()
    family = r.get("reason_1_family", pd.Series(None, index=df.index))
    df["angle"] = family.map(sp["angles"]).fillna("").to_numpy()
    df.loc[df["risk_tier"] == "low", "angle"] = ""
    value_col = sp.get("value_column", "monetary_per_year")
    value = scoring[value_col].to_numpy(dtype=float) if value_col in scoring else np.zeros(n)
    df["customer_value"] = np.round(np.nan_to_num(value), 2)
    df["expected_retained_value"] = np.round(
        expected_retained_value(
            p, value, df["value_tier"].to_numpy(), sp["success_rate"], df["action_cost"].to_numpy()
        ),
        2,
    )
    df["rule_colour"] = scoring["rule_colour"].to_numpy()
    tier = pd.Categorical(df["risk_tier"], list(TIERS), ordered=True)
    df = df.assign(_t=tier).sort_values(
        ["_t", "expected_retained_value", "churn_probability"],
        ascending=[True, False, False],
        kind="stable",
    )
    internal = [f"_reason_{j}_feature" for j in (1, 2, 3)]
    return df.drop(columns="_t")[COLUMNS + internal].reset_index(drop=True)


def _pseudonymise(seg: pd.DataFrame, export: dict) -> pd.DataFrame:
    if not export.get("hash_ids"):
        return seg
    env = export.get("hash_secret_env", "CHURNLIGHT_ID_SECRET")
    secret = os.environ.get(env)
    if not secret:
        raise SystemExit(f"export.hash_ids is on but the environment variable {env} is not set")
    return seg.assign(customer_id=hash_ids(seg["customer_id"], secret))


def write_outputs(seg: pd.DataFrame, summary: pd.DataFrame, out: Path) -> None:
    with atomic_dir(out) as tmp:
        seg.to_csv(tmp / "scored_customers.csv", index=False, encoding="utf-8-sig")
        seg.to_parquet(tmp / "scored_customers.parquet", index=False)
        for tier in TIERS:
            seg[seg["risk_tier"] == tier].to_csv(
                tmp / f"{tier}.csv", index=False, encoding="utf-8-sig"
            )
        summary.to_csv(tmp / "summary.csv", index=False, encoding="utf-8-sig")
        write_json(summary.to_dict("records"), tmp / "summary.json")
        docs = pd.DataFrame({"column": list(COLUMN_DOCS), "meaning": list(COLUMN_DOCS.values())})
        with pd.ExcelWriter(tmp / "segments.xlsx", engine="openpyxl") as xl:
            for tier in TIERS:
                seg[seg["risk_tier"] == tier].to_excel(xl, sheet_name=tier, index=False)
            summary.to_excel(xl, sheet_name="summary", index=False)
            docs.to_excel(xl, sheet_name="columns", index=False)


def run(
    processed: Path, models: Path, explanations: Path, out: Path, reports: Path, params: dict
) -> pd.DataFrame:
    sp = params["segment"]
    _, model, features = load_champion(models)
    scoring = pd.read_parquet(processed / "scoring.parquet")
    reasons = pd.read_parquet(explanations)
    p = model.predict_proba(scoring[features])[:, 1]  # calibrated
    seg = build_segments(scoring, p, reasons, sp)
    registry = pd.read_csv(processed / "feature_registry.csv").set_index("name")
    internal = [f"_reason_{j}_feature" for j in (1, 2, 3)]
    summary = summarise(seg, seg[internal].fillna(""), registry["description_en"])
    seg = _pseudonymise(seg.drop(columns=internal), params.get("export", {}))
    write_outputs(seg, summary, out)

    # drift: the training window against the scoring snapshot
    report = load_train_report(models)
    df = pd.read_parquet(processed / "features.parquet", columns=["cutoff", *features])
    train_cut = pd.to_datetime(report["train_cutoffs"])
    psi = population_stability(
        df[df["cutoff"].isin(train_cut)], scoring, features, int(sp.get("psi_bins", 10))
    )
    psi["drifted"] = psi["psi"] > float(sp["psi_threshold"])
    write_csv(psi, reports / "drift.csv")
    counts = seg["risk_tier"].value_counts().reindex(list(TIERS), fill_value=0).to_dict()
    log.info(
        "segments %s; expected retained value %.0f; %d feature(s) drifted (PSI > %.2f)",
        counts,
        seg["expected_retained_value"].clip(lower=0).sum(),
        int(psi["drifted"].sum()),
        float(sp["psi_threshold"]),
    )
    return seg


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--models", default="data/artifacts/models")
    ap.add_argument("--explanations", default="data/artifacts/explanations.parquet")
    ap.add_argument("--out", default="reports/segments")
    ap.add_argument("--reports", default="reports")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(
        Path(args.processed),
        Path(args.models),
        Path(args.explanations),
        Path(args.out),
        Path(args.reports),
        params,
    )


if __name__ == "__main__":
    main()
