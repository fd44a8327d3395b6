"""The files marketing opens, written into a folder the caller gives: the scored customers as
CSV and Parquet, one CSV per risk tier (the action lists, without the control group), the
control group as CSV and Parquet, the summary as CSV and JSON, and an Excel workbook with a
sheet per tier, the control group, the summary and what each column means.

CSV files carry a UTF-8 byte-order mark so that Excel shows Chinese text correctly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from churnlight.models.artifacts import json_text
from churnlight.models.control import action_list, control_list
from churnlight.models.segment import COLUMN_DOCS, TIERS

BOM_UTF8 = "utf-8-sig"


SEGMENT_FILES = 8 + len(TIERS)  # files write_segment_files writes (for a progress total)


def write_segment_files(
    seg: pd.DataFrame,
    summary: pd.DataFrame,
    folder: Path,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Write the segment table and its summary into `folder` (which must exist). The scored
    list holds every customer (`group` says who is held out); the tier files hold only those
    to act on, and control.csv those held out. `on_progress(1)` after each of the
    SEGMENT_FILES files (on a million customers the workbook alone takes a while)."""
    done = on_progress or (lambda n: None)
    seg.to_csv(folder / "scored_customers.csv", index=False, encoding=BOM_UTF8)
    done(1)
    seg.to_parquet(folder / "scored_customers.parquet", index=False)
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
    write_workbook(seg, summary, folder / "segments.xlsx")
    done(2)  # the workbook counts twice: it is the slowest to write


def write_workbook(seg: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    """A sheet per risk tier (without the control group), then `control`, `summary` and
    `columns` (each column and its meaning)."""
    docs = pd.DataFrame({"column": list(COLUMN_DOCS), "meaning": list(COLUMN_DOCS.values())})
    acted = action_list(seg)
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        for tier in TIERS:
            acted[acted["risk_tier"] == tier].to_excel(xl, sheet_name=tier, index=False)
        control_list(seg).to_excel(xl, sheet_name="control", index=False)
        summary.to_excel(xl, sheet_name="summary", index=False)
        docs.to_excel(xl, sheet_name="columns", index=False)
