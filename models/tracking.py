"""MLflow bookkeeping: where runs go, how a candidate and its test metrics are logged, how the
champion is registered.

Nothing happens at import; `configure` is called by the stages. The store is a local SQLite file
in the project unless MLFLOW_TRACKING_URI says otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)
DEFAULT_URI = "sqlite:///mlflow.db"
PINNED = ("scikit-learn", "lightgbm", "pandas", "numpy", "pyarrow")
# MLflow logs this on every model saved with (cloud)pickle; README "Model store" says why the
# models are pickled and how the store is protected, once, instead of once per model
PICKLE_NOTICE = "Saving scikit-learn models in the pickle or cloudpickle format"


class _DropPickleNotice(logging.Filter):
    """Drops MLflow's pickle notice and nothing else from the `mlflow.sklearn` logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(PICKLE_NOTICE)


@contextlib.contextmanager
def _without_pickle_notice() -> Iterator[None]:
    logger, drop = logging.getLogger("mlflow.sklearn"), _DropPickleNotice()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def configure(experiment: str, uri: str | None = None) -> str:
    """Point MLflow at the store and the experiment; returns the tracking URI."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    return uri


def pip_requirements() -> list[str]:
    """Exact versions of what the pickled model needs (saves MLflow's slow inference of them)."""
    return [f"{name}=={metadata.version(name)}" for name in PINNED] + [
        f"churnlight=={metadata.version('churnlight')}"
    ]


def log_candidate(model, name: str, example: pd.DataFrame) -> str:
    """Log a fitted model with its signature and an input example; returns the model URI."""
    import mlflow
    from mlflow.models import infer_signature

    example = example.head(5)
    proba = model.predict_proba(example)[:, 1]
    with warnings.catch_warnings(), _without_pickle_notice():
        warnings.simplefilter("ignore")
        signature = infer_signature(example, proba)
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            serialization_format="cloudpickle",
        )
    return info.model_uri


@contextlib.contextmanager
def candidate_run(kind: str) -> Iterator[str]:
    """A top-level run named after the model family; yields its run id."""
    import mlflow

    with mlflow.start_run(run_name=kind) as run:
        yield run.info.run_id


def log_trained_candidate(
    model,
    kind: str,
    params: dict,
    how: dict,
    cv: dict[str, float],
    tuned_log_loss: float,
    example: pd.DataFrame,
) -> str:
    """Into the active run: the final hyperparameters, how they were found (`how`), the
    out-of-fold metrics (as cv_<name>), the tuned objective and the model itself; returns the
    model URI."""
    import mlflow

    mlflow.log_params(dict(params))
    mlflow.log_params(how)
    mlflow.log_metrics({f"cv_{k}": float(v) for k, v in cv.items()})
    mlflow.log_metric("cv_log_loss_tuned", tuned_log_loss)
    return log_candidate(model, kind, example)


def log_test_metrics(train_report: dict, metrics: dict, plots: Path) -> None:
    """Test metrics go into each candidate's own run (from train_report.json); the curve
    tables in `plots` into the champion's."""
    import mlflow

    for kind, info in train_report["models"].items():
        with mlflow.start_run(run_id=info["run_id"]):
            mlflow.log_metrics({f"test_{k}": float(v) for k, v in metrics[kind].items()})
            if "rules" in metrics:
                rules = metrics["rules"]["recall_at_capacity"]
                mlflow.log_metric("test_rules_recall_at_capacity", rules)
            if "btyd" in metrics:
                btyd = metrics["btyd"]
                mlflow.log_metric("test_btyd_recall_at_capacity", btyd["recall_at_capacity"])
            if "oracle" in metrics:
                mlflow.log_metric("test_oracle_roc_auc", metrics["oracle"]["roc_auc"])
            if kind == metrics["champion"]:
                mlflow.log_artifacts(str(plots), artifact_path="plots")


def register_champion(model_uri: str, registered_name: str, alias: str = "champion") -> str:
    """Register the model and point the alias at the new version; returns the version."""
    import mlflow
    from mlflow import MlflowClient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = mlflow.register_model(model_uri, registered_name)
    MlflowClient().set_registered_model_alias(registered_name, alias, mv.version)
    return str(mv.version)


def trial_logger(kind: str):
    """An Optuna callback that records every finished trial as a nested MLflow run."""
    import mlflow

    def callback(study, trial) -> None:
        with mlflow.start_run(run_name=f"{kind}-trial-{trial.number}", nested=True):
            mlflow.log_params(trial.params)
            mlflow.set_tag("state", trial.state.name)
            if trial.value is not None:
                mlflow.log_metric("cv_log_loss", trial.value)

    return callback


# --- loading the registered champion (churnlight score) ---------------------------------------


def load_registered(model_uri: str, tracking_uri: str) -> tuple[object, dict]:
    """The model behind `models:/<name>@<alias>` (or `models:/<name>/<version>`) in the store
    at `tracking_uri`, and what the scoring summary says of it: name, version, run id and
    when it was registered (UTC)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    ref = model_uri.removeprefix("models:/")
    client = MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = ref.split("/", 1)
        mv = client.get_model_version(name, version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mlflow.sklearn.load_model(model_uri)
    trained = pd.Timestamp(int(mv.creation_timestamp), unit="ms", tz="UTC")
    info = {"source": model_uri, "name": name, "version": str(mv.version), "run_id": mv.run_id}
    return model, {**info, "trained_at": trained}
