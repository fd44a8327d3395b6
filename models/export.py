"""The files marketing opens, written into a folder the caller gives: the scored customers as
CSV and Parquet, one CSV per risk tier (the action lists, without the control group), the
control group as CSV and Parquet, the summary as CSV and JSON, and an Excel workbook with a
sheet per tier, the control group, the summary and what each column means; and for the data
lake, the scored customers as Hive-partitioned Parquet (`lake/`).

CSV files carry a UTF-8 byte-order mark so that Excel shows Chinese text correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnlight.models.artifacts import json_text
from churnlight.models.control import action_list, control_list
from churnlight.models.segment import COLUMN_DOCS, TIERS
from churnlight.models.winback import winback_action_list, winback_control_list
from churnlight.models.xlsx import write_xlsx

BOM_UTF8 = "utf-8-sig"


SEGMENT_FILES = 10 + len(TIERS)  # steps write_segment_files reports (a progress total)
LAKE = "lake"  # the partitioned copy's folder


def write_segment_files(
    seg: pd.DataFrame,
    summary: pd.DataFrame,
    folder: Path,
    winback: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    on_progress: Callable[[int], None] | None = None,
    partitions: Sequence[str] = (),
) -> None:
    """Write the segment table and its summary into `folder` (which must exist). The scored
    list holds every customer (`group` says who is held out); the tier files hold only those
    to act on, and control.csv those held out. `winback`: the win-back list (with `group`)
    and its summary, written as winback.csv / .parquet, winback_control.csv / .parquet and
    winback_summary.csv, and as sheets. `partitions`: the columns of the partitioned copy in
    `lake/` (none: no copy). `on_progress(n)` after each step, SEGMENT_FILES in all (on a
    million customers the workbook alone takes a while)."""
    done = on_progress or (lambda n: None)
    seg.to_csv(folder / "scored_customers.csv", index=False, encoding=BOM_UTF8)
    done(1)
    seg.to_parquet(folder / "scored_customers.parquet", index=False)
    done(1)
    if partitions:
        write_partitioned(seg, folder / LAKE, partitions)
    done(1)
    acted = action_list(seg)
    for tier in TIERS:
        part = acted[acted["risk_tier"] == tier]
        part.to_csv(folder / f"{tier}.csv", index=False, encoding=BOM_UTF8)
        done(1)
    control = control_list(seg)
    control.to_csv(folder / "control.csv", index=False, encoding=BOM_UTF8)
    done(1)
    control.to_parquet(folder / "control.parquet", index=False)
    done(1)
    summary.to_csv(folder / "summary.csv", index=False, encoding=BOM_UTF8)
    done(1)
    (folder / "summary.json").write_text(json_text(summary.to_dict("records")), encoding="utf-8")
    done(1)
    if winback is not None:
        _write_winback(*winback, folder)
    done(1)
    write_workbook(seg, summary, folder / "segments.xlsx", winback)
    done(2)  # the workbook counts twice: it is the slowest to write


def write_partitioned(seg: pd.DataFrame, root: Path, partitions: Sequence[str]) -> None:
    """`seg` as a Hive-partitioned Parquet dataset in `root` (`risk_tier=high/value_tier=gold/
    part-0.parquet`): a lake table (Spark, Trino, Athena, DuckDB's `hive_partitioning`) reads
    it by folder, so a query for one tier reads only that tier's files. The partition columns
    live in the folder names, not in the files; a missing value is Hive's folder for NULL,
    `__HIVE_DEFAULT_PARTITION__` (Spark, Trino and DuckDB read it as NULL; pandas cannot)."""
    partitions = list(dict.fromkeys(partitions))  # a column named twice is one level
    unknown = [c for c in partitions if c not in seg.columns]
    if unknown:
        raise ValueError(f"partition columns {unknown} are not columns of the scored customers")
    table = pa.Table.from_pandas(seg, preserve_index=False)
    pq.write_to_dataset(
        table,
        root,
        partition_cols=partitions,
        basename_template="part-{i}.parquet",
        existing_data_behavior="error",
    )


def _write_winback(wb: pd.DataFrame, wb_summary: pd.DataFrame, folder: Path) -> None:
    """The win-back list without its control group, the control group, the summary."""
    acted, control = winback_action_list(wb), winback_control_list(wb)
    acted.to_csv(folder / "winback.csv", index=False, encoding=BOM_UTF8)
    acted.to_parquet(folder / "winback.parquet", index=False)
    control.to_csv(folder / "winback_control.csv", index=False, encoding=BOM_UTF8)
    control.to_parquet(folder / "winback_control.parquet", index=False)
    wb_summary.to_csv(folder / "winback_summary.csv", index=False, encoding=BOM_UTF8)


def write_workbook(
    seg: pd.DataFrame,
    summary: pd.DataFrame,
    path: Path,
    winback: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> None:
    """A sheet per risk tier (without the control group), then `control`, `summary`, the
    win-back sheets when given (`winback`, `winback_control`, `winback_summary`) and
    `columns` (each column and its meaning); written a column at a time (`models.xlsx`), not
    a cell at a time, so that a large customer base takes seconds, not minutes."""
    docs = pd.DataFrame({"column": list(COLUMN_DOCS), "meaning": list(COLUMN_DOCS.values())})
    acted = action_list(seg)
    sheets = {tier: acted[acted["risk_tier"] == tier] for tier in TIERS}
    sheets.update(control=control_list(seg), summary=summary)
    if winback is not None:
        wb, wb_summary = winback
        sheets.update(
            winback=winback_action_list(wb),
            winback_control=winback_control_list(wb),
            winback_summary=wb_summary,
        )
    sheets["columns"] = docs
    write_xlsx(path, sheets)
