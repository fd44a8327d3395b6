"""`churnlight score`: a later month of the tiny world scored with a champion trained on the
earlier months, without retraining, gives the segment stage's table on the same snapshot; a
feature set that is not the model's fails, naming the features, with exit code 2.

The world has 19 months; the champion is trained on its first 18 (everything after the 18th
month's end cut away), the new data is all 19. The segment stage's reference runs the validate,
features, explain and segment stages on the 19 months with the same champion copied in.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import GENERATE, TINY_SEED
from typer.testing import CliRunner

from churnlight.features.synthetic import WorldConfig, generate_world
from churnlight.models.scoring import FeatureMismatchError
from churnlight.pipelines.cli import app
from churnlight.pipelines.common import load_params
from churnlight.pipelines.scoring import score_folder

TRAIN_END = pd.Timestamp("2026-06-30")
LATER_END = pd.Timestamp("2026-07-31")
SEGMENT_FILES = ("scored_customers.parquet", "control.parquet", "summary.csv")


def _cut(tables: dict[str, pd.DataFrame], end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The world as it looked at the end of day `end`: later customers, events and months
    gone, later cancellations not yet known."""
    until = end + pd.Timedelta(days=1)
    out = {}
    for name, df in tables.items():
        df = df.copy()
        if name == "customers":
            df = df[df["signup_date"] < until]
            df.loc[df["cancel_date"] >= until, "cancel_date"] = pd.NaT
        elif "ts" in df:
            df = df[df["ts"] < until]
        elif "month" in df:
            df = df[df["month"] < until]
        out[name] = df.reset_index(drop=True)
    return out


def _write_raw(folder: Path, tables: dict[str, pd.DataFrame], end: pd.Timestamp) -> Path:
    (folder / "_truth").mkdir(parents=True)
    for name, df in tables.items():
        df.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / "_truth" / "as_of.txt").write_text(f"{end.date()}\n")
    return folder


@pytest.fixture(scope="module")
def scored(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    base = tmp_path_factory.mktemp("score")
    knobs = {**GENERATE, "campaigns": False}
    cfg = WorldConfig.from_params(knobs, n_customers=400, months=19, start="2025-01-01")
    tables = generate_world(cfg, seed=TINY_SEED).raw_tables()
    assert tables["activity"]["ts"].max() > TRAIN_END  # the later month is there
    params = make_pipeline_params()
    train_root, later_root = base / "trained", base / "later"
    _write_raw(train_root / "data" / "raw", _cut(tables, TRAIN_END), TRAIN_END)
    new_data = _write_raw(later_root / "data" / "raw", _cut(tables, LATER_END), LATER_END)

    trained = run_stages(train_root, params, ("validate", "features", "train"))
    # the segment stage's reference: the later month, the same champion, no training
    later = run_stages(later_root, params, ("validate", "features"))
    shutil.copytree(trained["models"], later["models"])
    run_stages(later_root, params, ("explain", "segment"))

    typed = load_params(trained["params"])
    out = base / "out"
    seconds = score_folder(new_data, out, typed, str(trained["models"]), None, train_root)
    registry_out = base / "out_registry"
    score_folder(new_data, registry_out, typed, "models:/churnlight@champion", None, train_root)
    return {
        "base": base,
        "trained": trained,
        "later": later,
        "new_data": new_data,
        "out": out,
        "registry_out": registry_out,
        "seconds": seconds,
        "params": typed,
    }


def test_scores_the_later_month_not_the_training_one(scored):
    seg = pd.read_parquet(scored["later"]["processed"] / "scoring.parquet")
    train = pd.read_parquet(scored["trained"]["processed"] / "scoring.parquet")
    assert seg["cutoff"].max() == LATER_END + pd.Timedelta(days=1)
    assert train["cutoff"].max() == TRAIN_END + pd.Timedelta(days=1)
    got = pd.read_parquet(scored["out"] / "scored_customers.parquet")
    assert len(got) == len(seg) > 0
    assert scored["seconds"]["customers"] == len(seg)


@pytest.mark.parametrize("name", SEGMENT_FILES)
@pytest.mark.parametrize("out", ["out", "registry_out"])
def test_same_table_as_the_segment_stage_on_the_same_snapshot(scored, name, out):
    """Probabilities, tiers, value tiers, reasons, actions and the control group: the segment
    stage's files, whether the model comes from its folder or from the MLflow registry."""
    read = pd.read_parquet if name.endswith(".parquet") else pd.read_csv
    expected = read(scored["later"]["segments"] / name)
    got = read(scored[out] / name)
    pd.testing.assert_frame_equal(got, expected)
    if name == "scored_customers.parquet":
        assert set(got["risk_tier"]) == {"high", "medium", "low"}
        assert (got["group"] == "control").any()


def test_the_lake_copy_is_the_segment_stages(scored):
    """`--out` gets the partitioned copy too: the same folders and files as the stage's."""
    lake, expected = scored["out"] / "lake", scored["later"]["segments"] / "lake"
    files = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet"))
    assert files == sorted(p.relative_to(expected).as_posix() for p in expected.rglob("*.parquet"))
    assert any(f.startswith("risk_tier=high/value_tier=") for f in files)
    for f in files:
        pd.testing.assert_frame_equal(pd.read_parquet(lake / f), pd.read_parquet(expected / f))


def test_drift_against_the_training_window_is_the_segment_stages(scored):
    """The training window's rows are the same in both runs (point in time), so the PSI is."""
    got = pd.read_csv(scored["out"] / "drift.csv")
    expected = pd.read_csv(scored["later"]["reports"] / "drift.csv")
    pd.testing.assert_frame_equal(got, expected)


def test_the_summary_page_names_tiers_actions_drift_and_the_model(scored):
    md = (scored["out"] / "scoring_summary.md").read_text(encoding="utf-8")
    html = (scored["registry_out"] / "scoring_summary.html").read_text(encoding="utf-8")
    seg = pd.read_parquet(scored["out"] / "scored_customers.parquet")
    high = int((seg["risk_tier"] == "high").sum())
    assert f"| high | {high} |" in md
    for section in ("Risk tiers", "Actions due", "Drift since training"):
        assert f"## {section}" in md and f"<h2>{section}</h2>" in html
    assert "**snapshot**: 2026-08-01" in md
    assert "models:/churnlight@champion" in html and "model age" in html
    acted = seg[
        (seg["group"] != "control") & (seg["action"] != scored["params"].segment.no_contact_action)
    ]
    assert str(acted["action"].iloc[0]) in md


def _drop_feedback(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "feedback.parquet").unlink()
    return dst


def test_a_missing_table_fails_naming_the_missing_features(scored):
    data = _drop_feedback(scored["new_data"], scored["base"] / "no_feedback")
    out = scored["base"] / "out_missing"
    root = scored["trained"]["params"].parent
    with pytest.raises(FeatureMismatchError) as err:
        score_folder(data, out, scored["params"], str(scored["trained"]["models"]), None, root)
    message = str(err.value)
    assert "missing" in message and "nps_last" in message
    assert not out.exists()


def test_the_cli_exits_2_with_the_named_features(scored):
    data = _drop_feedback(scored["new_data"], scored["base"] / "no_feedback_cli")
    out = scored["base"] / "out_cli"
    args = ["score", str(data), "--out", str(out), "--params", str(scored["trained"]["params"])]
    result = CliRunner().invoke(app, [*args, "--model", str(scored["trained"]["models"])])
    assert result.exit_code == 2, result.output
    assert "do not match the model's" in result.output and "nps_last" in result.output
    assert not out.exists()


def test_the_cli_scores_with_the_registered_champion(scored):
    out = scored["base"] / "out_cli_ok"
    args = ["score", str(scored["new_data"]), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--params", str(scored["trained"]["params"])])
    assert result.exit_code == 0, result.output
    expected = pd.read_parquet(scored["later"]["segments"] / "scored_customers.parquet")
    got = pd.read_parquet(out / "scored_customers.parquet")
    pd.testing.assert_frame_equal(got, expected)
