"""The `churnlight` command: generate a world, validate a folder, run the pipeline.

The commands call the same library functions as the DVC stages.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="churnlight: churn early warning with reasons and action lists. "
    "Run `churnlight run` in the project folder for the whole pipeline (dvc repro).",
)
log = logging.getLogger("churnlight")


@app.command(
    help="Write a synthetic customer world (customers, transactions, activity, feedback, market) "
    "as Parquet, with the ground truth apart in OUT/_truth."
)
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the raw tables to (created).")],
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 20_000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives identical files.")
    ] = 42,
    params: Annotated[
        Path, typer.Option(help="params.yaml whose `generate` section sets the world's knobs.")
    ] = Path("params.yaml"),
) -> None:
    from churnlight.pipelines import generate as stage
    from churnlight.pipelines.common import load_params, setup_logging

    setup_logging()
    gen = load_params(params)["generate"] if params.exists() else {}
    stage.run(out, {**gen, "n_customers": customers, "months": months}, seed=seed)


@app.command(
    help="Check a raw folder against the data contract. On a violation, print every problem "
    "(table, column, count, example rows), write nothing and exit with code 2."
)
def validate(
    raw_dir: Annotated[
        Path, typer.Argument(help="Folder of <table>.csv or <table>.parquet files.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the typed Parquet tables.")] = Path(
        "data/interim"
    ),
    as_of: Annotated[
        str | None, typer.Option(help="Last day the data covers (YYYY-MM-DD); later events fail.")
    ] = None,
    label_column: Annotated[
        str, typer.Option(help="Label column for a flat labelled table.")
    ] = "churn",
) -> None:
    from churnlight.features.contract import ContractError
    from churnlight.pipelines import validate as stage
    from churnlight.pipelines.common import setup_logging

    setup_logging()
    try:
        stage.run(raw_dir, out, as_of or stage.resolve_as_of({}, raw_dir), label_column)
    except (ContractError, FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        raise typer.Exit(code=2) from err


@app.command(
    help="Run the pipeline: `dvc repro` in the current project folder "
    "(generate, validate, features, train, evaluate, explain, segment, report)."
)
def run(
    force: Annotated[
        bool, typer.Option(help="Re-run every stage even if nothing changed.")
    ] = False,
    stage: Annotated[str | None, typer.Argument(help="Run up to this stage only.")] = None,
) -> None:
    cmd = [
        sys.executable,
        "-m",
        "dvc",
        "repro",
        *(["--force"] if force else []),
        *([stage] if stage else []),
    ]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    raise typer.Exit(code=subprocess.call(cmd, env=env))


if __name__ == "__main__":
    app()
