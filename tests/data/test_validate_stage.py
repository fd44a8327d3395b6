"""Stage `validate`: exit code 2 and nothing written on a violation; typed Parquet otherwise."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from churnlight.pipelines import validate

TABLES = ("customers", "transactions", "activity", "feedback", "market")


@pytest.fixture(autouse=True)
def _quiet_logging(monkeypatch):
    """The stage reconfigures the root logger; keep it off so caplog sees the records."""
    monkeypatch.setattr(validate, "setup_logging", lambda level="INFO": None)


def _run(params: Path, raw: Path, out: Path) -> None:
    validate.main(["--params", str(params), "--raw", str(raw), "--out", str(out)])


def _dot_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_violation_exits_2_and_writes_nothing(tmp_path, tiny_params, raw_dir, caplog):
    tx_path = raw_dir / "transactions.csv"
    tx = pd.read_csv(tx_path, dtype=str)
    tx.loc[0, "amount"] = "-12.50"
    tx.to_csv(tx_path, index=False)
    out = tmp_path / "interim"

    with caplog.at_level(logging.ERROR, logger="churnlight"), pytest.raises(SystemExit) as info:
        _run(tiny_params, raw_dir, out)

    assert info.value.code == 2
    assert not out.exists()
    assert _dot_entries(tmp_path) == []
    assert "[transactions.amount]" in caplog.text
    assert "-12.5" in caplog.text


def test_missing_raw_folder_exits_2(tmp_path, tiny_params):
    out = tmp_path / "interim"
    with pytest.raises(SystemExit) as info:
        _run(tiny_params, tmp_path / "no_such_folder", out)
    assert info.value.code == 2
    assert not out.exists()


def test_clean_folder_writes_typed_parquet_and_report(tmp_path, tiny_params, raw_dir, tiny_world):
    out = tmp_path / "interim"
    _run(tiny_params, raw_dir, out)

    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}.parquet" for t in TABLES] + ["contract_report.json"]
    )
    assert _dot_entries(tmp_path) == []

    for name in ("transactions", "activity", "feedback"):
        df = pd.read_parquet(out / f"{name}.parquet")
        assert len(df) == len(tiny_world.raw_tables()[name])
        assert pd.api.types.is_datetime64_dtype(df["ts"]), name
        assert pd.api.types.is_string_dtype(df["customer_id"]), name
    tx = pd.read_parquet(out / "transactions.parquet")
    assert pd.api.types.is_float_dtype(tx["amount"])
    assert tx["amount"].sum() == pytest.approx(tiny_world.transactions["amount"].sum())
    customers = pd.read_parquet(out / "customers.parquet")
    assert pd.api.types.is_string_dtype(customers["customer_id"])
    assert pd.api.types.is_datetime64_dtype(customers["signup_date"])
    assert pd.api.types.is_datetime64_dtype(customers["cancel_date"])
    market = pd.read_parquet(out / "market.parquet")
    assert pd.api.types.is_datetime64_dtype(market["month"])
    assert pd.api.types.is_integer_dtype(market["competitor_launch"])

    report = json.loads((out / "contract_report.json").read_text(encoding="utf-8"))
    assert report["mode"] == "events"
    assert report["as_of"] == str(tiny_world.as_of.date())
    assert report["rows"] == {t: len(tiny_world.raw_tables()[t]) for t in TABLES}
    assert all(report["families"].values())


def test_rerun_replaces_previous_output(tmp_path, tiny_params, raw_dir):
    out = tmp_path / "interim"
    out.mkdir()
    (out / "stale.parquet").write_bytes(b"old")
    _run(tiny_params, raw_dir, out)
    assert not (out / "stale.parquet").exists()
    assert (out / "contract_report.json").exists()
    assert _dot_entries(tmp_path) == []


def test_zero_byte_csv_exits_2(tmp_path, tiny_params, raw_dir):
    (raw_dir / "feedback.csv").write_bytes(b"")
    out = tmp_path / "interim"
    with pytest.raises(SystemExit) as info:
        _run(tiny_params, raw_dir, out)
    assert info.value.code == 2
    assert not out.exists()
