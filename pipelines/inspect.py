"""`churnlight inspect PATH`: read an export (a file or a folder of CSV/Parquet/XLSX), show
what each file and column looks like to the contract (features/inspect.py guesses), and write
the commented mapping.yaml that `data.mapping` applies at validation.

Not a DVC stage: a command run once on a new export, before the first `dvc exp run`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from churnlight.features.inspect import TableGuess, inspect_files, mapping_yaml
from churnlight.pipelines.common import InputError, export_files, read_export_file, write_text
from churnlight.pipelines.progress import track

log = logging.getLogger("churnlight.inspect")


def inspect_export(
    path: Path, out: Path | None, encoding: str, label_column: str, show: bool = True
) -> tuple[list[TableGuess], Path]:
    """Guess the export's mapping, show it (rich tables) and write it; returns the guesses and
    the mapping's path (`out`, or mapping.yaml in the export's folder)."""
    paths = export_files(path)
    if not paths:
        raise InputError(f"no CSV, Parquet or XLSX file in {path}")
    files: dict[str, pd.DataFrame] = {}
    for p in track(paths, "reading the export", unit="files"):
        files[p.name] = read_export_file(p, encoding)
    guesses = inspect_files(files, label_column)
    folder = path if path.is_dir() else path.parent
    target = out or folder / "mapping.yaml"
    write_text(mapping_yaml(guesses, str(folder)), target)
    if show:
        _show(guesses)
    mapped = [g for g in guesses if g.table]
    if not mapped:
        raise InputError(f"{path}: no file has a customer id column to map; see the guesses above")
    log.info(
        "wrote %s; check it, then: dvc exp run -S data.source=%s -S data.mapping=%s",
        target,
        folder,
        target,
    )
    tables = {g.table for g in mapped}
    customers = next((g for g in mapped if g.table == "customers"), None)
    if tables & {"transactions", "activity"} and not (
        customers and "cancel_date" in customers.spec["columns"]
    ):
        log.info(
            "no cancellation date: churn can only be read from inactivity; add "
            "-S features.churn_definition=inactivity"
        )
    return guesses, target


def _show(guesses: list[TableGuess]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    files = Table(title="files", show_lines=False)
    for col in ("file", "rows", "kind", "contract table", "confidence", "note"):
        files.add_column(col)
    for g in guesses:
        files.add_row(g.file, f"{g.rows:,}", g.kind, g.table or "-", f"{g.confidence:.0%}", g.note)
    console.print(files)
    for g in guesses:
        table = Table(title=f"{g.file} -> {g.table or 'left out'}")
        for col in ("column", "role", "maps to", "confidence", "examples", "note"):
            table.add_column(col)
        targets = {}
        for target, src in g.spec.get("columns", {}).items():
            for s in [src] if isinstance(src, str) else next(iter(src.values()), []) or []:
                if isinstance(s, str):
                    targets[s] = target
        for c in g.columns:
            table.add_row(
                c.name,
                c.role,
                targets.get(c.name, "-"),
                f"{c.confidence:.0%}",
                ", ".join(c.examples)[:60],
                c.note,
            )
        console.print(table)
