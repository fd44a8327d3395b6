"""Content fingerprints of the pipeline's outputs: rows, and per column the count of values and
their sum (numbers, times) or a digest (text), so that a refactoring can prove it changed no
result without keeping the outputs themselves in git.

`python -m tests.reference.fingerprint ROOT > tests/reference/default_world.json` records the
outputs under a project root (after `dvc repro`); `compare` tells what differs.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

# what the default world's `dvc repro` writes that carries results (figures and HTML are
# renderings of these; the MLflow store and Optuna studies hold run ids and times)
OUTPUTS = (
    "data/raw/customers.parquet",
    "data/raw/transactions.parquet",
    "data/raw/activity.parquet",
    "data/raw/feedback.parquet",
    "data/raw/market.parquet",
    "data/raw/_truth/risk.parquet",
    "data/processed/features.parquet",
    "data/processed/scoring.parquet",
    "data/processed/feature_registry.csv",
    "data/artifacts/explanations.parquet",
    "reports/metrics.json",
    "reports/metrics_by_slice.csv",
    "reports/campaigns.csv",
    "reports/campaigns.json",
    "reports/plots/roc.csv",
    "reports/plots/calibration.csv",
    "reports/plots/gains.csv",
    "reports/importance.csv",
    "reports/importance_by_family.csv",
    "reports/importance_by_model.csv",
    "reports/drift.csv",
    "reports/segments/scored_customers.parquet",
    "reports/segments/summary.csv",
    "reports/model_card.md",
)
# lines of the card that name the run (when, which commit, params file, MLflow run and version)
# rather than its results
_VOLATILE = re.compile(
    r"^.*(generated|git commit|params hash|data hash|MLflow run|registered model).*$",
    re.IGNORECASE | re.MULTILINE,
)


def _digest(values: pd.Series) -> str:
    text = "\x1f".join("" if pd.isna(v) else str(v) for v in values)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def frame_fingerprint(df: pd.DataFrame) -> dict:
    cols = {}
    for name in df.columns:
        s = df[name]
        entry: dict = {"count": int(s.notna().sum())}
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            entry["sum"] = float(pd.to_numeric(s, errors="coerce").astype(float).sum())
        elif pd.api.types.is_datetime64_any_dtype(s):
            entry["sum"] = float(s.dropna().astype("int64").sum())
        else:
            entry["digest"] = _digest(s)
        cols[str(name)] = entry
    return {"rows": len(df), "columns": cols}


def _flatten(obj, prefix: str = "") -> dict:
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = obj
    return out


def file_fingerprint(path: Path) -> dict:
    if path.suffix == ".parquet":
        return frame_fingerprint(pd.read_parquet(path))
    if path.suffix == ".csv":
        return frame_fingerprint(pd.read_csv(path, encoding="utf-8-sig"))
    if path.suffix == ".json":
        return {"values": _flatten(json.loads(path.read_text(encoding="utf-8")))}
    text = _VOLATILE.sub("#", path.read_text(encoding="utf-8"))
    return {"digest": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]}


def fingerprint(root: Path) -> dict:
    return {rel: file_fingerprint(root / rel) for rel in OUTPUTS}


def _close(a, b, rel: float) -> bool:
    if isinstance(a, float) and isinstance(b, float | int):
        if math.isnan(a) or math.isnan(float(b)):
            return math.isnan(a) and math.isnan(float(b))
        return math.isclose(a, float(b), rel_tol=rel, abs_tol=1e-12)
    return a == b


def compare(got: dict, want: dict, rel: float = 1e-12) -> list[str]:
    """What differs between two fingerprints (floats within `rel`), one line per difference."""
    g, w = _flatten(got), _flatten(want)
    return [
        f"{k}: {g.get(k, '<missing>')!r} != {w.get(k, '<missing>')!r}"
        for k in sorted({*g, *w})
        if k not in g or k not in w or not _close(g[k], w[k], rel)
    ]


if __name__ == "__main__":
    json.dump(fingerprint(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
