"""The files marketing opens, written into a folder the caller gives: the scored customers as
CSV and Parquet, one CSV per risk tier, the summary as CSV and JSON, and an Excel workbook with
a sheet per tier, the summary and what each column means.

CSV files carry a UTF-8 byte-order mark so that Excel shows Chinese text correctly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnlight.models.artifacts import json_text
from churnlight.models.segment import COLUMN_DOCS, TIERS

BOM_UTF8 = "utf-8-sig"


def write_segment_files(seg: pd.DataFrame, summary: pd.DataFrame, folder: Path) -> None:
    """Write the segment table and its summary into `folder` (which must exist)."""
    seg.to_csv(folder / "scored_customers.csv", index=False, encoding=BOM_UTF8)
    seg.to_parquet(folder / "scored_customers.parquet", index=False)
    for tier in TIERS:
        seg[seg["risk_tier"] == tier].to_csv(folder / f"{tier}.csv", index=False, encoding=BOM_UTF8)
    summary.to_csv(folder / "summary.csv", index=False, encoding=BOM_UTF8)
    (folder / "summary.json").write_text(json_text(summary.to_dict("records")), encoding="utf-8")
    write_workbook(seg, summary, folder / "segments.xlsx")


def write_workbook(seg: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    """A sheet per risk tier, then `summary`, then `columns` (each column and its meaning)."""
    docs = pd.DataFrame({"column": list(COLUMN_DOCS), "meaning": list(COLUMN_DOCS.values())})
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        for tier in TIERS:
            seg[seg["risk_tier"] == tier].to_excel(xl, sheet_name=tier, index=False)
        summary.to_excel(xl, sheet_name="summary", index=False)
        docs.to_excel(xl, sheet_name="columns", index=False)
