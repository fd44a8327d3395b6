"""A plain .xlsx workbook from DataFrames, a column at a time.

Why: openpyxl (through pandas or its write-only mode) builds every cell in Python; the segment
workbook of a 26,500-customer scoring took 16-25 s of a 45 s `churnlight score` on a busy
2-core machine (bench/README.md), and a million-customer base has ten times the rows. Here each
column becomes its cells' XML with vectorised string operations, the columns are joined into
rows, and the parts are zipped: the same values in the same sheets (strings inline, numbers as
numbers, empty cells for missing values, a bold header row), without openpyxl's per-cell cost.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from functools import reduce
from operator import add
from pathlib import Path

import numpy as np
import pandas as pd

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
OFFICE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
MAX_ROWS = 1_048_576  # Excel's limit, header included
# characters XML 1.0 does not allow (Excel would refuse the file)
ILLEGAL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"

STYLES = (
    f'<styleSheet xmlns="{MAIN}">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def column_letter(i: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def _escape(text: pd.Series) -> pd.Series:
    text = text.str.replace(ILLEGAL, "", regex=True)
    return text.str.replace("&", "&amp;").str.replace("<", "&lt;").str.replace(">", "&gt;")


def _text(values: pd.Series) -> pd.Series:
    """Each value as text, '' for missing; numbers in their shortest exact form."""
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "1", False: "0"}).astype("string").fillna("")
    if pd.api.types.is_numeric_dtype(values):
        v = values.to_numpy(dtype=float, na_value=np.nan)
        text = values.astype("string")
        return text.where(np.isfinite(v), "").fillna("")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.strftime("%Y-%m-%d %H:%M:%S").astype("string").fillna("")
    return _escape(values.astype("string").fillna(""))


def column_cells(values: pd.Series, letter: str, rows: pd.Series) -> pd.Series:
    """The `<c>` elements of one column; `rows`: the row numbers as strings."""
    values = values.reset_index(drop=True)
    ref = f'<c r="{letter}' + rows
    text = _text(values)
    empty = text == ""
    if pd.api.types.is_bool_dtype(values):
        full = ref + '" t="b"><v>' + text + "</v></c>"
    elif pd.api.types.is_numeric_dtype(values):
        full = ref + '"><v>' + text + "</v></c>"
    else:
        full = ref + '" t="inlineStr"><is><t xml:space="preserve">' + text + "</t></is></c>"
    return full.where(~empty, ref + '"/>')


def sheet_xml(df: pd.DataFrame) -> str:
    """A worksheet: a bold header row, then a row per row of `df`."""
    if len(df) + 1 > MAX_ROWS:
        raise ValueError(f"{len(df)} rows do not fit an Excel sheet ({MAX_ROWS - 1} at most)")
    letters = [column_letter(i) for i in range(df.shape[1])]
    head = "".join(
        f'<c r="{a}1" s="1" t="inlineStr"><is><t xml:space="preserve">{t}</t></is></c>'
        for a, t in zip(letters, _escape(pd.Series([str(c) for c in df.columns])), strict=True)
    )
    parts = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{MAIN}">']
    parts.append(f'<sheetData><row r="1">{head}</row>')
    if len(df):
        rows = pd.Series(np.arange(2, len(df) + 2)).astype("string")
        cells = [column_cells(df.iloc[:, j], a, rows) for j, a in enumerate(letters)]
        body = reduce(add, cells, '<row r="' + rows + '">') + "</row>"
        parts.append("".join(body.tolist()))
    parts.append("</sheetData></worksheet>")
    return "".join(parts)


def write_xlsx(path: str | Path, sheets: Mapping[str, pd.DataFrame]) -> None:
    """Write `sheets` (name -> table, in order) as one workbook at `path`."""
    names = list(sheets)
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{OFFICE}.worksheet+xml"/>'
        for i in range(1, len(names) + 1)
    )
    types = (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{OFFICE}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{OFFICE}.styles+xml"/>'
        f"{overrides}</Types>"
    )
    root_rels = (
        f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" Type="{REL}/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>'
    )
    entries = "".join(
        f'<sheet name="{_escape(pd.Series([n])).iloc[0]}" sheetId="{i}" r:id="rId{i}"/>'
        for i, n in enumerate(names, start=1)
    )
    workbook = f'<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>{entries}</sheets></workbook>'
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(names) + 1)
    )
    styles_rel = f'<Relationship Id="rId{len(names) + 1}" Type="{REL}/styles" Target="styles.xml"/>'
    wb_rels = f'<Relationships xmlns="{PKG_REL}">{rels}{styles_rel}</Relationships>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", types)
        zf.writestr("_rels/.rels", root_rels)
        zf.writestr("xl/workbook.xml", workbook)
        zf.writestr("xl/_rels/workbook.xml.rels", wb_rels)
        zf.writestr("xl/styles.xml", STYLES)
        for i, name in enumerate(names, start=1):
            zf.writestr(f"xl/worksheets/sheet{i}.xml", sheet_xml(sheets[name]))
