"""The notebooks data scientists start from run top to bottom against a tiny pipeline run.

They are committed without outputs, import the library instead of copying it, and find the
project through $CHURNLIGHT_ROOT (here: the tiny run's folder). They run in a kernel of this very
interpreter (a kernel spec written to a temporary JUPYTER_PATH), so whatever `python3` kernel
happens to be installed on the machine does not matter.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("01_explore_data.ipynb", "02_drivers_and_segments.ipynb")
KERNEL = "churnlight-test-python"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, make_pipeline_params, run_stages) -> Path:
    root = tmp_path_factory.mktemp("nbrun")
    run_stages(root, make_pipeline_params())
    return root


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> str:
    """A kernel spec for the running interpreter in a temporary JUPYTER_PATH."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "churnlight (tests)",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter))
        yield KERNEL


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / name, as_version=4)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    nb = _read(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code), name
    source = "\n".join(c.source for c in code)
    assert "CHURNLIGHT_ROOT" in source
    assert "from churnlight." in source


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_against_a_tiny_run(name, tiny_run, kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("CHURNLIGHT_ROOT", str(tiny_run))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # Agg would swallow the inline figures
    nb = _read(name)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=300,
        # run somewhere with no dvc.yaml above it: only CHURNLIGHT_ROOT can find the project
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    text = [
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    ]
    assert f"project: {tiny_run.resolve()}" in "".join(text)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert images, "no figure came out"
    if name.startswith("02_"):  # the SHAP figures are read from the explain stage's folder
        shown = [
            o.get("data", {}).get("text/markdown", "")
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.outputs
        ]
        assert "**shap_bar**" in shown, "notebook 02 found no SHAP figure in reports/figures/shap"
