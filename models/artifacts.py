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

from churnlight.features.snapshots import read_snapshots, release_arrow_memory

__all__ = [
    "load_champion",
    "load_features_report",
    "load_model",
    "load_train_report",
    "read_contacts",
    "read_snapshots",
    "read_training_snapshots",
    "save_model",
    "scored_rows",
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


def read_training_snapshots(
    path: str | Path, features: list[str], example_rows: int = 5, chunk: int = 16
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """features.parquet as `read_snapshots` gives it (every column, the same row order) with
    its numeric `features` held as float32 (`compact_features`), and the first `example_rows`
    rows of the features in the file's own dtypes (what scoring sends: the models' signatures).

    The features are read `chunk` columns at a time, so the whole table never sits in memory in
    float64 beside its Arrow copy: at 1M customers (4.7M rows) that pair alone is about four
    times the compact table."""
    import pyarrow.parquet as pq

    from churnlight.models.train import compact_features

    names = pq.read_schema(path).names
    keys = ["cutoff", "customer_id"]
    wanted = [c for c in features if c in names]
    rest = [c for c in names if c not in wanted]
    base = read_snapshots(path, rest)  # the keys are among them: read_snapshots' row order
    keyed = pd.read_parquet(path, columns=keys)
    order = keyed.sort_values(keys, kind="stable").index.to_numpy()
    del keyed
    parts, examples = [base], []
    for i in range(0, len(wanted), chunk):
        cols = wanted[i : i + chunk]
        part = pd.read_parquet(path, columns=cols).take(order).reset_index(drop=True)
        examples.append(part.head(example_rows).copy())
        parts.append(compact_features(part, cols))
        del part
    example = pd.concat(examples, axis=1)[wanted] if examples else base.head(0)
    table = pd.concat(parts, axis=1)[names]
    release_arrow_memory()
    return table, example


def scored_rows(
    path: str | Path, cutoffs: list, model: Any, features: list[str], keep: list[str]
) -> pd.DataFrame:
    """The rows of features.parquet at `cutoffs`, their `keep` columns (those in the file) and
    the model's probability `p`, in `read_snapshots`' (cutoff, customer_id) order. The file is
    streamed a batch at a time and each batch scored, so that only these few columns are ever
    held: at 1M customers the snapshots with every feature took GiBs (issue 17)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    small = [c for c in dict.fromkeys(["cutoff", "customer_id", *keep]) if c in names]
    parts = [pd.DataFrame(columns=[*small, "p"])]
    read = [*small, *(f for f in features if f not in small)]
    for batch in pq.ParquetFile(path).iter_batches(columns=read):
        rows = batch.to_pandas()
        rows = rows[rows["cutoff"].isin(cutoffs)]
        if len(rows):
            parts.append(rows[small].assign(p=model.predict_proba(rows[features])[:, 1]))
    release_arrow_memory()
    out = pd.concat(parts[1:]) if len(parts) > 1 else parts[0]
    return out.sort_values(["cutoff", "customer_id"], ignore_index=True)


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
