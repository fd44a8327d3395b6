"""Real exports through the stages (issue 13): a Chinese-locale Excel export (GB18030, CRLF, a
trailing empty column) gives the same typed tables, features and reasons as the same data in
UTF-8; a bad file or a bad value stops validate with exit code 2 and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnlight.pipelines.cli import app

# validate and features only: training twice more would cost about a minute on a busy machine,
# and the models see nothing but these features (equal features, equal reasons)
STAGES = ("validate", "features")
REGIONS = {"north": "华北", "south": "华南", "east": "华东", "west": "华西", "central": "华中"}
CHANNELS = {"store": "门店", "online": "线上", "both": "线上和门店"}
# messages with the built-in lexicon's Chinese competitor phrases (别家, x店, 其他店, 竞争对手)
COMPETITOR = ("别家的价格更低，我们在考虑。", "x店最近有活动", "其他店更方便", "竞争对手给了报价")
N_WRITTEN = 36  # messages rewritten, of active customers, in the last 80 days of data


def _chinese_world(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> dict:
    """The tiny world with Chinese region and channel names and recent competitor messages."""
    out = {name: df.copy() for name, df in tables.items()}
    out["customers"]["region"] = out["customers"]["region"].map(REGIONS)
    out["customers"]["channel"] = out["customers"]["channel"].map(CHANNELS)
    out["market"]["region"] = out["market"]["region"].map(REGIONS)
    customers, fb = out["customers"], out["feedback"]
    active = customers.loc[customers["cancel_date"].isna(), "customer_id"]  # scored at the end
    recent = fb.index[
        (fb["kind"] == "message")
        & (fb["ts"] >= as_of - pd.Timedelta(days=80))
        & fb["customer_id"].isin(active)
    ]
    fb["text"] = fb["text"].astype(object)
    for i, row in enumerate(recent[:N_WRITTEN]):
        fb.loc[row, "text"] = COMPETITOR[i % len(COMPETITOR)]
    return out


def _excel_export(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """As Excel saves CSV in a Chinese locale: GB18030, CRLF, no BOM, and here a trailing empty
    column on the feedback sheet."""
    folder.mkdir()
    for name, df in tables.items():
        if name == "feedback":
            df = df.assign(**{"": pd.NA})
        df.to_csv(folder / f"{name}.csv", index=False, encoding="gb18030", lineterminator="\r\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_world, make_pipeline_params, run_stages) -> dict:
    tables = _chinese_world(tiny_world.raw_tables(), tiny_world.as_of)
    out = {"tables": tables}
    for label in ("utf8", "gb"):
        root = tmp_path_factory.mktemp(label)
        source = root / "export"
        if label == "utf8":
            source.mkdir()
            for name, df in tables.items():
                df.to_csv(source / f"{name}.csv", index=False)
        else:
            _excel_export(tables, source)
        params = make_pipeline_params()
        params["data"].update(source=str(source), as_of=str(tiny_world.as_of.date()))
        out[label] = run_stages(root, params, STAGES)
    return out


def test_gb18030_export_is_really_gb18030(runs):
    src = runs["gb"]["interim"].parents[1] / "export" / "feedback.csv"
    data = src.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "别家".encode("gb18030") in data and b"\r\n" in data


def test_chinese_text_survives_validate_exactly(runs):
    tables = runs["tables"]
    for label in ("utf8", "gb"):
        interim = runs[label]["interim"]
        fb = pd.read_parquet(interim / "feedback.parquet")
        assert list(fb.columns) == list(tables["feedback"].columns), label  # no empty column
        assert fb["text"].fillna("").tolist() == tables["feedback"]["text"].fillna("").tolist()
        assert set(COMPETITOR) <= set(fb["text"].dropna())
        customers = pd.read_parquet(interim / "customers.parquet")
        assert set(customers["region"]) == set(REGIONS.values()), label
        assert set(customers["channel"]) == set(CHANNELS.values()), label
        market = pd.read_parquet(interim / "market.parquet")
        assert set(market["region"]) == set(REGIONS.values()), label


def test_text_features_count_the_chinese_phrases_the_same(runs):
    for name in ("features.parquet", "scoring.parquet"):
        utf8, gb = (pd.read_parquet(runs[label]["processed"] / name) for label in ("utf8", "gb"))
        pd.testing.assert_frame_equal(utf8, gb)
    # the scoring snapshot (the data end) counts every Chinese competitor message written
    # above (and perhaps older English ones): the phrases were matched, not just carried
    fb = runs["tables"]["feedback"]
    written = fb.loc[fb["text"].isin(COMPETITOR)].groupby("customer_id").size()
    assert written.sum() == N_WRITTEN
    counted = gb.set_index("customer_id")["competitor_mentions_90d"]
    assert (counted.reindex(written.index) >= written).all()


# --- bad input: exit code 2, the problem named, nothing written -----------------------------


def _stage_validate(root: Path, source: Path, tiny_params: Path, **data) -> tuple[int, str]:
    """`churnlight stage validate` in project `root` (its params.yaml from `tiny_params`)."""
    prm = yaml.safe_load(tiny_params.read_text(encoding="utf-8"))
    prm["data"].update(source=str(source), **data)
    (root / "params.yaml").write_text(yaml.safe_dump(prm, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(app, ["stage", "validate", "--root", str(root)])
    return result.exit_code, result.output


def _nothing_written(root: Path) -> bool:
    data = root / "data"
    return not data.exists() or not any(data.rglob("*"))


def test_stage_exits_2_on_a_row_with_too_many_fields(tmp_path, tiny_params, raw_dir):
    path = raw_dir / "transactions.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[7] += ",oops"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    root = tmp_path / "project"
    root.mkdir()

    code, output = _stage_validate(root, raw_dir, tiny_params)

    assert code == 2, output
    flat = " ".join(output.split())  # rich wraps long log lines
    assert "table 'transactions'" in flat and "line 8 has 5 fields, the header has 4" in flat
    assert lines[7] in flat
    assert "Traceback" not in output
    assert _nothing_written(root)


@pytest.mark.parametrize(
    ("table", "change", "expected"),
    [
        ("transactions", {"amount": "inf"}, "[transactions.amount] infinite value"),
        ("feedback", {"kind": "nps", "score": "11"}, "[feedback.score] nps score outside 0..10"),
        (
            "customers",
            {"signup_date": "2025-06-01", "cancel_date": "2025-05-01"},
            "[customers.cancel_date] cancel_date before signup_date",
        ),
    ],
)
def test_stage_exits_2_on_a_bad_value(tmp_path, tiny_params, raw_dir, table, change, expected):
    path = raw_dir / f"{table}.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column, value in change.items():
        df.loc[2, column] = value
    df.to_csv(path, index=False)
    root = tmp_path / "project"
    root.mkdir()

    code, output = _stage_validate(root, raw_dir, tiny_params)

    assert code == 2, output
    assert expected in " ".join(output.split())
    assert _nothing_written(root)


def test_validate_command_takes_an_encoding(tmp_path, tiny_params, raw_dir):
    feedback = pd.read_csv(raw_dir / "feedback.csv", dtype=str, keep_default_na=False)
    (raw_dir / "feedback.csv").write_bytes(feedback.to_csv(index=False).encode("gb18030"))
    runner = CliRunner()
    out = tmp_path / "interim"
    base = ["validate", str(raw_dir), "--out", str(out), "--params", str(tiny_params)]

    wrong = runner.invoke(app, [*base, "--encoding", "utf-8"])
    assert wrong.exit_code == 2, wrong.output
    assert "data.encoding" in " ".join(wrong.output.split())
    assert not out.exists()

    unknown = runner.invoke(app, [*base, "--encoding", "gb-nonsense"])
    assert unknown.exit_code == 2, unknown.output
    assert "unknown encoding" in unknown.output

    right = runner.invoke(app, [*base, "--encoding", "gb18030"])
    assert right.exit_code == 0, right.output
    text = pd.read_parquet(out / "feedback.parquet")["text"]
    assert text.fillna("").tolist() == feedback["text"].tolist()
    assert text.str.contains("[\u4e00-\u9fff]", regex=True).any()  # Chinese, intact


def test_unknown_encoding_in_params_is_a_params_error(tmp_path, tiny_params, raw_dir):
    root = tmp_path / "project"
    root.mkdir()
    code, output = _stage_validate(root, raw_dir, tiny_params, encoding="gbk18030")
    assert code == 2
    assert "data.encoding" in output and "unknown encoding" in output
    assert _nothing_written(root)
