"""The `churnlight` command (typer): help texts, generate, validate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnlight.pipelines.cli import app

TABLES = ("customers", "transactions", "activity", "feedback", "market", "contacts")
OPTIONS = {
    "generate": ("--out", "--customers", "--months", "--seed", "--params"),
    "validate": ("--out", "--as-of", "--label-column", "raw_dir"),
    "run": ("--force", "stage"),
    "stage": ("--root", "name"),
}


PARAMS = ["--params", str(Path(__file__).resolve().parents[2] / "params.yaml")]


def test_generate_without_params_yaml_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["generate", "--out", str(tmp_path / "raw")])
    assert result.exit_code == 2
    assert "params.yaml not found" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_help_lists_options(runner, command):
    result = runner.invoke(app, [command, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    for option in OPTIONS[command]:
        assert option in result.output, option


def test_top_level_help_lists_commands(runner):
    result = runner.invoke(app, ["--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    for command in OPTIONS:
        assert command in result.output


def test_generate_writes_raw_tables(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project's params.yaml by --params: the world's knobs
    out = tmp_path / "raw"
    result = runner.invoke(
        app, ["generate", "--out", str(out), "--customers", "300", "--seed", "3", *PARAMS]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(f"{t}.parquet" for t in TABLES)
    assert (out / "_truth" / "as_of.txt").is_file()
    customers = pd.read_parquet(out / "customers.parquet")
    assert len(customers) == 300
    assert customers["customer_id"].is_unique
    for name in ("transactions", "activity"):
        assert len(pd.read_parquet(out / f"{name}.parquet")) > 0, name


def test_generate_same_seed_same_tables(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b"):
        args = ["generate", "--out", folder, "--customers", "200", "--months", "14", *PARAMS]
        result = runner.invoke(app, [*args, "--seed", "3"])
        assert result.exit_code == 0, result.output
    for name in TABLES:
        a = pd.read_parquet(tmp_path / "a" / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "b" / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b, obj=name)


def test_validate_clean_folder(runner, tmp_path, raw_dir):
    out = tmp_path / "interim"
    result = runner.invoke(app, ["validate", str(raw_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "contract_report.json").is_file()
    assert sorted(p.stem for p in out.glob("*.parquet")) == sorted(TABLES)


def test_validate_negative_amount_exits_2_and_writes_nothing(runner, tmp_path, raw_dir):
    tx_path = raw_dir / "transactions.csv"
    tx = pd.read_csv(tx_path, dtype=str)
    tx.loc[3, "amount"] = "-40.00"
    tx.to_csv(tx_path, index=False)
    out = tmp_path / "interim"
    before = sorted(p.name for p in tmp_path.iterdir())

    result = runner.invoke(app, ["validate", str(raw_dir), "--out", str(out)])

    assert result.exit_code == 2, result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no half-written temp folder
    assert "[transactions.amount]" in result.output
