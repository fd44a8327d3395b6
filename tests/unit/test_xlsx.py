"""The column-at-a-time workbook writer gives the values pandas and openpyxl read back."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd

from churnlight.models.xlsx import column_letter, write_xlsx


def test_column_letters():
    assert [column_letter(i) for i in (0, 25, 26, 27, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]


def test_values_round_trip(tmp_path):
    df = pd.DataFrame(
        {
            "id": ["C1", "C2 & <b>", "客户\x07三"],
            "p": [0.1234, np.nan, 1e-06],
            "n": [1, 0, -7],
            "flag": [True, False, True],
            "empty": ["", None, "x"],
            "big": [np.inf, 2.5, 123456789.125],
        }
    )
    path = tmp_path / "w.xlsx"
    write_xlsx(path, {"first": df, "none": df.iloc[:0], "A&B": df[["id"]]})
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        assert wb.sheetnames == ["first", "none", "A&B"]
        rows = list(wb["first"].values)
        assert list(rows[0]) == list(df.columns)
        assert rows[1] == ("C1", 0.1234, 1, True, None, None)
        assert rows[2] == ("C2 & <b>", None, 0, False, None, 2.5)
        assert rows[3] == ("客户三", 1e-06, -7, True, "x", 123456789.125)
        assert list(wb["none"].values) == [tuple(df.columns)]
    finally:
        wb.close()
    back = pd.read_excel(path, sheet_name="first")
    assert back["n"].tolist() == [1, 0, -7]
    assert back["id"].tolist() == ["C1", "C2 & <b>", "客户三"]
