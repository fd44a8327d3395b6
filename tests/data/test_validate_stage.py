"""Stage `validate`: exit code 2 and nothing written on a violation; typed Parquet otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnlight.pipelines.cli import app

TABLES = ("customers", "transactions", "activity", "feedback", "market", "contacts")


def _run(params: Path, raw: Path, out: Path) -> str:
    """`churnlight stage validate` in the project folder of `params`, reading `raw`; `out` must
    be that folder's data/interim. Raises SystemExit with the exit code on failure."""
    assert out == params.parent / "data" / "interim"
    prm = yaml.safe_load(params.read_text(encoding="utf-8"))
    prm["data"]["source"] = str(raw)
    params.write_text(yaml.safe_dump(prm), encoding="utf-8")
    result = CliRunner().invoke(app, ["stage", "validate", "--root", str(params.parent)])
    if result.exit_code:
        raise SystemExit(result.exit_code) from Exception(result.output)
    return result.output


def _dot_entries(folder: Path) -> list[str]:
    """Temporary entries left in `folder` (none when the folder was never made)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_violation_exits_2_and_writes_nothing(tmp_path, tiny_params, raw_dir):
    tx_path = raw_dir / "transactions.csv"
    tx = pd.read_csv(tx_path, dtype=str)
    tx.loc[0, "amount"] = "-12.50"
    tx.to_csv(tx_path, index=False)
    out = tmp_path / "data" / "interim"

    with pytest.raises(SystemExit) as info:
        _run(tiny_params, raw_dir, out)

    assert info.value.code == 2
    assert not out.exists()
    assert _dot_entries(tmp_path) == _dot_entries(out.parent) == []
    printed = str(info.value.__context__ or info.value.__cause__)
    assert "[transactions.amount]" in printed
    assert "-12.5" in printed


def test_missing_raw_folder_exits_2(tmp_path, tiny_params):
    out = tmp_path / "data" / "interim"
    with pytest.raises(SystemExit) as info:
        _run(tiny_params, tmp_path / "no_such_folder", out)
    assert info.value.code == 2
    assert not out.exists()


def test_clean_folder_writes_typed_parquet_and_report(tmp_path, tiny_params, raw_dir, tiny_world):
    out = tmp_path / "data" / "interim"
    _run(tiny_params, raw_dir, out)

    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}.parquet" for t in TABLES] + ["contract_report.json"]
    )
    assert _dot_entries(tmp_path) == _dot_entries(out.parent) == []

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
    out = tmp_path / "data" / "interim"
    out.mkdir(parents=True)
    (out / "stale.parquet").write_bytes(b"old")
    _run(tiny_params, raw_dir, out)
    assert not (out / "stale.parquet").exists()
    assert (out / "contract_report.json").exists()
    assert _dot_entries(tmp_path) == _dot_entries(out.parent) == []


def test_zero_byte_csv_exits_2(tmp_path, tiny_params, raw_dir):
    (raw_dir / "feedback.csv").write_bytes(b"")
    out = tmp_path / "data" / "interim"
    with pytest.raises(SystemExit) as info:
        _run(tiny_params, raw_dir, out)
    assert info.value.code == 2
    assert not out.exists()
