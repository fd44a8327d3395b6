"""What the pipeline hands from one step to the next, read and written in one place: the
feature snapshots, the fitted candidates (`<name>.joblib`) and the train report.

Stages and `bench/` load models and snapshots through these functions, so the file layout of
the models folder is defined here and nowhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from churnlight.features.snapshots import read_snapshots

__all__ = [
    "load_champion",
    "load_features_report",
    "load_model",
    "load_train_report",
    "read_contacts",
    "read_snapshots",
    "save_model",
]


def read_contacts(path: str | Path) -> pd.DataFrame:
    """The contact log validate writes (data/interim/contacts.parquet); no file means no
    contacts logged (bring-your-own data from before the log existed)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(
            {
                "customer_id": pd.Series(dtype=object),
                "ts": pd.Series(dtype="datetime64[ns]"),
                "group": pd.Series(dtype=object),
            }
        )
    return pd.read_parquet(path)


def model_path(models_dir: str | Path, name: str) -> Path:
    return Path(models_dir) / f"{name}.joblib"


def save_model(model: Any, models_dir: str | Path, name: str) -> None:
    """Write a fitted candidate where `load_model` finds it."""
    import joblib

    joblib.dump(model, model_path(models_dir, name))


def load_model(models_dir: str | Path, name: str):
    """A fitted candidate (a CalibratedModel: `.pipeline` is the raw model behind it)."""
    import joblib

    return joblib.load(model_path(models_dir, name))


def load_train_report(models_dir: str | Path) -> dict:
    """train_report.json: the champion, the features in model order, the cutoffs, the CV."""
    return json.loads((Path(models_dir) / "train_report.json").read_text(encoding="utf-8"))


def load_features_report(processed_dir: str | Path) -> dict:
    """features_report.json: the mode (events or flat), the families, the cutoffs, the rows."""
    path = Path(processed_dir) / "features_report.json"
    return json.loads(path.read_text(encoding="utf-8"))


def load_champion(models_dir: str | Path) -> tuple[str, Any, list[str]]:
    """The one place later steps get the champion from: (name, model, feature names).

    It is the artifact DVC tracks; the same model is registered in MLflow as
    `models:/<train.registered_model>@champion` (see train_report.json)."""
    report = load_train_report(models_dir)
    return report["champion"], load_model(models_dir, report["champion"]), report["features"]


def json_text(obj: Any) -> str:
    """The JSON the pipeline writes: indented, UTF-8 as is, anything else as its str()."""
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
