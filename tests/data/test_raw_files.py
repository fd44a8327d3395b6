"""Reading a raw folder: real exports (Excel's encodings, line ends, trailing empty column) are
read as meant, and a file that cannot be read is an InputError naming the file (and the line)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd
import pytest

from churnlight.pipelines.common import InputError, read_raw_folder

FEEDBACK = (
    "customer_id,ts,kind,score,text\n"
    "C1,2025-01-02,message,,我们在考虑换一家供应商\n"
    "C2,2025-01-03,nps,9,服务很好，谢谢！\n"
    "C3,2025-01-04,message,,Your rival has a new offer\n"
)


def _write(folder: Path, name: str, text: str, encoding: str = "utf-8", crlf: bool = False):
    folder.mkdir(exist_ok=True)
    if crlf:
        text = text.replace("\n", "\r\n")
    (folder / name).write_bytes(text.encode(encoding))


def _feedback(folder: Path, encoding: str = "auto") -> pd.DataFrame:
    return read_raw_folder(folder, encoding=encoding)["feedback"]


def _expected() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "ts": ["2025-01-02", "2025-01-03", "2025-01-04"],
            "kind": ["message", "nps", "message"],
            "score": [None, "9", None],
            "text": ["我们在考虑换一家供应商", "服务很好，谢谢！", "Your rival has a new offer"],
        }
    )


# --- encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "crlf"),
    [
        ("utf-8", False),
        ("utf-8-sig", True),  # Excel's "CSV UTF-8": a BOM and CRLF
        ("gb18030", True),  # Excel in a Chinese locale
        ("gbk", False),
        ("utf-16", True),  # Excel's "Unicode" with a BOM
    ],
)
def test_auto_reads_common_encodings_with_text_intact(tmp_path, encoding, crlf):
    _write(tmp_path, "feedback.csv", FEEDBACK, encoding, crlf)
    got = _feedback(tmp_path)
    pd.testing.assert_frame_equal(got, _expected(), check_dtype=False)
    assert list(got.columns) == ["customer_id", "ts", "kind", "score", "text"]  # no BOM in a name


def test_gzipped_gb18030_csv_is_read(tmp_path):
    (tmp_path / "feedback.csv.gz").write_bytes(gzip.compress(FEEDBACK.encode("gb18030")))
    assert _feedback(tmp_path)["text"].tolist() == _expected()["text"].tolist()


def test_explicit_encoding_is_used(tmp_path):
    """A Western-European Excel export: auto cannot tell cp1252 (see below), the user can."""
    text = "customer_id,ts,kind,text\nC1,2025-01-02,message,Café: 5 € off elsewhere\n"
    _write(tmp_path, "feedback.csv", text, "cp1252")
    with pytest.raises(InputError):
        _feedback(tmp_path)
    assert _feedback(tmp_path, "cp1252")["text"].iloc[0] == "Café: 5 € off elsewhere"


def test_explicit_utf8_skips_a_bom(tmp_path):
    _write(tmp_path, "feedback.csv", FEEDBACK, "utf-8-sig")
    assert _feedback(tmp_path, "utf-8").columns[0] == "customer_id"


def test_undecodable_file_names_the_file_and_how_to_set_the_encoding(tmp_path):
    # cp1252 bytes that are neither UTF-8 nor GB18030 (0x80, a euro sign, is invalid in both)
    _write(tmp_path, "feedback.csv", "customer_id,ts,kind\nC1,2025-01-02,€\n", "cp1252")
    with pytest.raises(InputError) as info:
        _feedback(tmp_path)
    msg = str(info.value)
    assert "table 'feedback'" in msg and "feedback.csv" in msg
    assert "not UTF-8 from line 2" in msg
    assert "data.encoding" in msg


def test_wrong_explicit_encoding_is_a_clear_error(tmp_path):
    _write(tmp_path, "feedback.csv", FEEDBACK, "gb18030")
    with pytest.raises(InputError) as info:
        _feedback(tmp_path, "utf-8")
    assert "table 'feedback'" in str(info.value) and "data.encoding" in str(info.value)


# --- field counts -------------------------------------------------------------------------

TX = "customer_id,ts,amount\nC1,2025-01-02,10.5\nC2,2025-01-03,7\nC3,2025-01-04,3\n"


def test_row_with_too_many_fields_names_table_line_and_text(tmp_path):
    _write(tmp_path, "transactions.csv", TX.replace("C2,2025-01-03,7", "C2,2025-01-03,1,250.00"))
    with pytest.raises(InputError) as info:
        read_raw_folder(tmp_path, encoding="auto")
    msg = str(info.value)
    assert "table 'transactions'" in msg and "transactions.csv" in msg
    assert "line 3 has 4 fields, the header has 3" in msg
    assert "C2,2025-01-03,1,250.00" in msg


def test_first_row_too_long_is_not_silently_cut(tmp_path):
    """pandas only warns and drops the extra field when the first data row is the long one."""
    _write(tmp_path, "transactions.csv", TX.replace("C1,2025-01-02,10.5", "C1,2025-01-02,1,0.5"))
    with pytest.raises(InputError, match="line 2 has 4 fields"):
        read_raw_folder(tmp_path, encoding="auto")


def test_line_numbers_count_physical_lines_past_quoted_newlines(tmp_path):
    text = 'customer_id,ts,kind,text\nC1,2025-01-02,message,"two\nlines"\nC2,2025-01-03,nps,x,9\n'
    _write(tmp_path, "feedback.csv", text, crlf=True)
    with pytest.raises(InputError) as info:
        read_raw_folder(tmp_path, encoding="auto")
    assert "line 4 has 5 fields, the header has 4" in str(info.value)
    assert "C2,2025-01-03,nps,x,9" in str(info.value)


def test_long_row_in_gb18030_shows_its_chinese_text(tmp_path):
    text = FEEDBACK.replace("服务很好，谢谢！", "服务很好,谢谢！")  # an unquoted ASCII comma
    _write(tmp_path, "feedback.csv", text, "gb18030", crlf=True)
    with pytest.raises(InputError) as info:
        _feedback(tmp_path)
    assert "line 3 has 6 fields" in str(info.value)
    assert "服务很好,谢谢！" in str(info.value)


def test_excel_trailing_empty_column_and_empty_rows_are_dropped(tmp_path):
    """Excel writes a trailing comma for a formatted empty column, with or without a header
    cell, and rows of commas for formatted empty rows: none of them is data."""
    with_header = TX.replace("\n", ",\n") + ",,,\n"
    _write(tmp_path, "transactions.csv", with_header, "gb18030", crlf=True)
    expected = pd.read_csv(io.StringIO(TX), dtype=str)
    got = read_raw_folder(tmp_path, encoding="auto")["transactions"]
    pd.testing.assert_frame_equal(got, expected)

    rows_only = TX.replace("\n", ",\n").replace("amount,\n", "amount\n", 1)
    _write(tmp_path, "transactions.csv", rows_only, crlf=True)
    got = read_raw_folder(tmp_path, encoding="auto")["transactions"]
    pd.testing.assert_frame_equal(got, expected)


def test_unclosed_quote_names_the_file(tmp_path):
    _write(tmp_path, "feedback.csv", 'customer_id,ts,kind,text\nC1,2025-01-02,message,"open\n')
    with pytest.raises(InputError) as info:
        read_raw_folder(tmp_path, encoding="auto")
    assert "table 'feedback'" in str(info.value) and "feedback.csv" in str(info.value)


# --- other unreadable files -----------------------------------------------------------------


def test_unreadable_parquet_names_the_file(tmp_path):
    (tmp_path / "transactions.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError) as info:
        read_raw_folder(tmp_path, encoding="auto")
    assert "table 'transactions'" in str(info.value)
    assert "transactions.parquet" in str(info.value)


def test_corrupt_gzip_names_the_file(tmp_path):
    (tmp_path / "transactions.csv.gz").write_bytes(gzip.compress(TX.encode())[:-12])
    with pytest.raises(InputError, match="table 'transactions'"):
        read_raw_folder(tmp_path, encoding="auto")
