"""The `churnlight` command: run a stage (what dvc.yaml calls), generate a world, validate a
folder, run the pipeline.

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
    help="Run one pipeline stage (generate, validate, features, train, evaluate, campaigns, "
    "explain, segment, report) in a project folder: what each stage of dvc.yaml calls. Bad "
    "input or params: every problem is printed, nothing is written, exit code 2."
)
def stage(
    name: Annotated[str, typer.Argument(help="The stage: its module is pipelines/NAME.py.")],
    root: Annotated[
        Path, typer.Option(help="Project folder: params.yaml, data/ and reports/ are in it.")
    ] = Path(),
) -> None:
    import numpy as np

    from churnlight.features.contract import ContractError
    from churnlight.features.params import ParamsError
    from churnlight.pipelines.common import STAGES, InputError, Layout, run_stage, setup_logging

    paths = Layout(root)
    if name not in STAGES:
        setup_logging()
        log.error("unknown stage %r; the stages are %s", name, ", ".join(STAGES))
        raise typer.Exit(code=2)
    params = _project_params(paths.params)
    setup_logging(params.base.log_level)
    np.seterr(all="ignore")  # NaN ratios are features (no baseline), not errors
    try:
        run_stage(name, paths, params)
    except (ContractError, ParamsError, InputError) as err:
        log.error("%s", err)
        raise typer.Exit(code=2) from err


@app.command(
    help="Write a synthetic customer world (customers, transactions, activity, feedback, market) "
    "as Parquet, with the ground truth apart in OUT/_truth."
)
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the raw tables to (created).")],
    customers: Annotated[
        int | None, typer.Option(help="Number of customers (default: generate.n_customers).")
    ] = None,
    months: Annotated[
        int | None, typer.Option(help="Months of history (default: generate.months).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed; the same seed gives identical files (default: base.seed)."),
    ] = None,
    params: Annotated[
        Path, typer.Option(help="params.yaml: its `generate` section sets the world's knobs.")
    ] = Path("params.yaml"),
) -> None:
    from churnlight.features.synthetic import WorldConfig, generate_world
    from churnlight.pipelines.common import setup_logging
    from churnlight.pipelines.generate import write_world

    setup_logging()
    prm = _project_params(params)
    knobs = prm.generate.model_dump()
    knobs.update(
        {k: v for k, v in (("n_customers", customers), ("months", months)) if v is not None}
    )
    write_world(
        generate_world(
            WorldConfig.from_params(knobs), seed=prm.base.seed if seed is None else seed
        ),
        out,
    )


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
        str | None,
        typer.Option(help="Label column for a flat labelled table (default: data.label_column)."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="Text encoding of the CSV files: auto (UTF-8, else GB18030), or a codec such "
            "as gb18030, utf-16, cp1252 (default: data.encoding)."
        ),
    ] = None,
    params: Annotated[
        Path,
        typer.Option(help="params.yaml: its data and validate sections (labels, encoding, rules)."),
    ] = Path("params.yaml"),
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="A mapping file inside RAW_DIR (`churnlight inspect` writes one) that makes the "
            "contract tables from an export (default: data.mapping)."
        ),
    ] = None,
) -> None:
    import codecs

    from churnlight.features.contract import ContractError
    from churnlight.pipelines.common import InputError, setup_logging
    from churnlight.pipelines.validate import resolve_as_of, validate_folder

    setup_logging()
    prm = _project_params(params)
    label = label_column or prm.data.label_column
    try:
        if encoding and encoding != "auto":
            codecs.lookup(encoding)
    except LookupError as err:
        log.error("--encoding %s: unknown encoding (try auto, utf-8, gb18030)", encoding)
        raise typer.Exit(code=2) from err
    try:
        validate_folder(
            raw_dir,
            out,
            resolve_as_of(as_of, raw_dir),
            label,
            encoding or prm.data.encoding,
            prm.validate_,
            mapping or (Path(prm.data.mapping) if prm.data.mapping else None),
        )
    except (ContractError, InputError) as err:
        log.error("%s", err)
        raise typer.Exit(code=2) from err


@app.command(
    help="Score new data with the champion, without retraining: validate DATA_DIR against the "
    "contract, build the scoring snapshot (the day after --as-of) with the training features, "
    "check they are the model's, score, give reasons, tiers, value tiers, playbook actions and "
    "the control group as the segment stage does, and write the segment files, drift.csv and "
    "scoring_summary.md/.html into --out. Bad data or a feature mismatch: every problem is "
    "printed, nothing is written, exit code 2."
)
def score(
    data_dir: Annotated[
        Path, typer.Argument(help="Folder of the new <table>.csv or <table>.parquet files.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the lists and the summary (replaced).")],
    model: Annotated[
        str,
        typer.Option(
            help="models:/NAME@ALIAS or models:/NAME/VERSION from the MLflow store the stages "
            "use (MLFLOW_TRACKING_URI, else mlflow.db beside --params), or a models folder "
            "(data/artifacts/models: its champion) or a <name>.joblib in one."
        ),
    ] = "models:/churnlight@champion",
    as_of: Annotated[
        str | None, typer.Option(help="Last day the data covers (YYYY-MM-DD); default: its newest.")
    ] = None,
    params: Annotated[
        Path, typer.Option(help="params.yaml of the project the model was trained in.")
    ] = Path("params.yaml"),
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="A mapping file (`churnlight inspect`) for an export that needs one, e.g. the "
            "training export's; default: the folder holds the contract's tables."
        ),
    ] = None,
) -> None:
    import numpy as np

    from churnlight.features.contract import ContractError
    from churnlight.models.scoring import FeatureMismatchError
    from churnlight.pipelines.common import InputError, setup_logging
    from churnlight.pipelines.scoring import score_folder

    prm = _project_params(params)
    setup_logging(prm.base.log_level)
    np.seterr(all="ignore")  # NaN ratios are features (no baseline), not errors
    try:
        score_folder(data_dir, out, prm, model, as_of, params.resolve().parent, mapping)
    except (ContractError, InputError, FeatureMismatchError) as err:
        log.error("%s", err)
        raise typer.Exit(code=2) from err


@app.command(
    help="Look at an export (a CSV/Parquet/XLSX file or a folder of them): which files are per "
    "customer and which per event, each column's guessed role with examples and confidence; "
    "writes a commented mapping.yaml to edit, then run with "
    "`dvc exp run -S data.source=FOLDER -S data.mapping=FOLDER/mapping.yaml`."
)
def inspect(
    path: Annotated[Path, typer.Argument(help="An export file, or a folder of export files.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the mapping (default: mapping.yaml in the folder)."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(help="Text encoding of CSV files: auto or a codec (default: data.encoding)."),
    ] = None,
    params: Annotated[
        Path, typer.Option(help="params.yaml: data.label_column and data.encoding.")
    ] = Path("params.yaml"),
) -> None:
    from churnlight.pipelines.common import InputError, setup_logging
    from churnlight.pipelines.inspect import inspect_export

    setup_logging()
    label, enc = "churn", encoding or "auto"
    if params.is_file():
        prm = _project_params(params)
        label, enc = prm.data.label_column, encoding or prm.data.encoding
    try:
        inspect_export(path, out, enc, label)
    except InputError as err:
        log.error("%s", err)
        raise typer.Exit(code=2) from err


def _project_params(path: Path):
    """params.yaml (the one place of defaults), or exit 2 saying where it was looked for."""
    from churnlight.features.params import ParamsError
    from churnlight.pipelines.common import load_params, setup_logging

    if not path.is_file():
        setup_logging()
        log.error("%s not found: run in the project folder or pass --params", path)
        raise typer.Exit(code=2)
    try:
        return load_params(path)
    except ParamsError as err:
        setup_logging()
        log.error("%s", err)
        raise typer.Exit(code=2) from err


@app.command(
    help="Run the pipeline: `dvc repro` in the current project folder "
    "(generate, validate, features, train, evaluate, campaigns, explain, segment, report)."
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
