"""Stage `report`: the model card a manager reads (reports/model_card.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import subprocess
from pathlib import Path

import pandas as pd

from churnlight.models.report import render_card
from churnlight.pipelines.common import is_synthetic, load_params, setup_logging, write_text

log = logging.getLogger("churnlight.report")


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_context(
    interim: Path, processed: Path, models: Path, reports: Path, params: dict, params_path: Path
) -> dict:
    metrics = json.loads((reports / "metrics.json").read_text())
    seg = pd.read_parquet(reports / "segments" / "scored_customers.parquet")
    fam = pd.read_csv(reports / "importance_by_family.csv")
    imp = pd.read_csv(reports / "importance.csv").head(8)
    registry = pd.read_csv(processed / "feature_registry.csv").set_index("name")
    summary = pd.read_csv(reports / "segments" / "summary.csv", encoding="utf-8-sig")
    high = summary[summary["risk_tier"] == "high"].fillna({"top_reasons": ""})
    weights: dict[str, int] = {}
    for row in high.itertuples():
        for reason in filter(None, row.top_reasons.split("; ")):
            weights[reason] = weights.get(reason, 0) + int(row.customers)
    reasons = pd.Series(weights, dtype=float).sort_values(ascending=False).head(3)
    drift = pd.read_csv(reports / "drift.csv")
    due = seg[seg["owner"] != "none"].groupby(["owner", "due_within_hours"]).size()
    owners = [{"owner": o, "hours": h, "count": int(c)} for (o, h), c in due.items()]
    return {
        "generated": str(dt.date.today()),
        "data": json.loads((interim / "contract_report.json").read_text()),
        "features": json.loads((processed / "features_report.json").read_text()),
        "m": metrics,
        "models": [
            *params["train"]["models"],
            "rules",
            *(["oracle"] if "oracle" in metrics else []),
        ],
        "champion": metrics["champion"],
        "capacity": metrics["capacity"],
        "tiers": {**seg["risk_tier"].value_counts().to_dict(), "total": len(seg)},
        "top_reasons": list(reasons.index),
        "owners": owners,
        "families": fam.to_dict("records"),
        "top_features": [
            {"description": registry.loc[n, "description_en"], "family": f}
            for n, f in zip(imp["name"], imp["family"], strict=True)
        ],
        "drifted": [
            {"description": registry.loc[n, "description_en"], "psi": round(v, 2)}
            for n, v in zip(drift["name"], drift["psi"], strict=True)
            if v > params["segment"]["psi_threshold"]
        ],
        "value_at_risk": float(summary.loc[summary["risk_tier"] == "high", "value_at_risk"].sum()),
        "source": "the synthetic world"
        if is_synthetic(params["data"])
        else params["data"]["source"],
        "label_window": params["features"]["label_window_days"],
        "churn_definition": params["features"]["churn_definition"],
        "version": {
            "commit": _git_commit(),
            "params_hash": hashlib.sha256(params_path.read_bytes()).hexdigest()[:12],
        },
    }


def run(
    interim: Path, processed: Path, models: Path, reports: Path, params: dict, params_path: Path
) -> str:
    ctx = build_context(interim, processed, models, reports, params, params_path)
    card = render_card(ctx)
    write_text(card, reports / "model_card.md")
    log.info("model card: %s", reports / "model_card.md")
    return card


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--interim", default="data/interim")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--models", default="data/artifacts/models")
    ap.add_argument("--reports", default="reports")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(
        Path(args.interim),
        Path(args.processed),
        Path(args.models),
        Path(args.reports),
        params,
        Path(args.params),
    )


if __name__ == "__main__":
    main()
