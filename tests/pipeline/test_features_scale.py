"""The feature stage's ways to its files give the same files.

At scale the stage aggregates and derives one range of customers at a time, several ranges
side by side. Every way must write what the whole-table computation of the pandas reference
(tests/unit/reference_derivation.py) writes: same rows, in the same (customer_id, cutoff) order,
same values, and the dtypes the column definitions declare.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
from unit.reference_derivation import aggregate_frame, finish_rows
from unit.reference_derivation import profile_columns as pandas_profile_columns

from churnlight.features import ranges
from churnlight.features.aggregates import aggregate_select, prepare
from churnlight.features.btyd import SCORES_TABLE, score_cutoffs
from churnlight.features.build import btyd_pass, connect, plan_events
from churnlight.features.config import FeatureConfig, load_lexicon, make_cutoffs
from churnlight.features.params import parse_params
from churnlight.features.snapshots import SnapshotWriter
from churnlight.pipelines.common import Layout, run_stage

FILES = ("features.parquet", "scoring.parquet")


@pytest.fixture(scope="module")
def world(tmp_path_factory, make_pipeline_params, run_stages) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("scale")
    params = make_pipeline_params()
    paths = run_stages(root, params, ("generate", "validate"))
    return paths["interim"], params


@pytest.fixture(scope="module")
def whole_table(world, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """features / scoring as the pandas reference computes them from the whole-table
    aggregates, typed as the column definitions declare."""
    interim, params = world
    fp = parse_params(params).features
    report = json.loads((interim / "contract_report.json").read_text())
    present = {p.stem for p in interim.glob("*.parquet")}
    cfg = FeatureConfig.from_params(fp)
    as_of = pd.Timestamp(report["as_of"])
    cutoffs = make_cutoffs(as_of, fp.first_cutoff, fp.last_cutoff, fp.step_months)
    out = tmp_path_factory.mktemp("whole")
    con = connect(interim, present, out, None, None)
    has_geo = prepare(con, present, cutoffs, as_of + pd.Timedelta(days=1), load_lexicon())
    agg = aggregate_frame(con, aggregate_select(con, cfg, has_geo))
    customers = con.execute("SELECT * FROM customers").df()
    plan, _ = plan_events(con, present, report, fp)
    declared = {c.name: c.type.pandas for c in plan.columns if c.written}
    # the BTYD numbers: fitted on all customers of each cutoff, whatever the ranges
    bt = fp.btyd
    score_cutoffs(con, list(cutoffs), cfg.label_horizon_days, bt.clv_days, bt.penalizer)
    scores = con.execute(f"SELECT * FROM {SCORES_TABLE}").df()
    con.close()
    tables = {t: t in present for t in ("activity", "transactions", "feedback", "market")}
    prof = pandas_profile_columns(customers)
    feats = finish_rows(agg, cfg, tables, customers, prof)
    feats = feats.merge(scores, on=["customer_id", "cutoff"], how="left", validate="1:1")
    feats = feats[list(declared)].astype(declared)
    feats[feats["label"].notna()].to_parquet(out / FILES[0], index=False)
    last = feats["cutoff"].max()
    feats[feats["cutoff"] == last].drop(columns="label").to_parquet(out / FILES[1], index=False)
    return {f: pd.read_parquet(out / f) for f in FILES}


def _stage(interim: Path, root: Path, params: dict, **settings) -> dict:
    """The features stage in a project folder `root` whose data/interim is `interim`, with
    `settings` replacing those of params' `features`; its summary. Writes root/data/processed."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "interim").symlink_to(interim.resolve())
    typed = parse_params(params)
    typed = typed.model_copy(update={"features": typed.features.model_copy(update=settings)})
    return run_stage("features", Layout(root), typed)


def _processed(root: Path) -> Path:
    return root / "data" / "processed"


def _left_behind(root: Path) -> list[str]:
    """What a failed run left beside data/interim (nothing: no output, no temporary folder)."""
    return sorted(p.name for p in (root / "data").iterdir() if p.name != "interim")


def _run(world, root: Path, **settings) -> dict[str, pd.DataFrame]:
    interim, params = world
    _stage(interim, root, params, **settings)
    return {f: pd.read_parquet(_processed(root) / f) for f in FILES}


@pytest.mark.parametrize(
    "settings",
    [
        {"partitions": 1},
        {"partitions": 3, "range_workers": 1},
        {"partitions": 5, "range_workers": 2},
        {"partitions": 4, "range_workers": 3},
    ],
    ids=["one-range", "partitioned", "2-workers", "3-workers"],
)
def test_every_way_writes_the_whole_table_result(world, whole_table, tmp_path, settings):
    got = _run(world, tmp_path / "out", **settings)
    for f in FILES:
        assert len(got[f]) > 0
        pd.testing.assert_frame_equal(got[f], whole_table[f], check_exact=True)


def _cancel_first_customers(world, folder: Path, share: float) -> Path:
    """A copy of the interim tables where the lowest customer ids left before any cutoff, so
    that the first customer range has no rows."""
    interim, _ = world
    folder.mkdir()
    for path in interim.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    customers = pd.read_parquet(interim / "customers.parquet")
    first = customers["customer_id"].rank(method="first") <= share * len(customers)
    customers.loc[first, "cancel_date"] = pd.Timestamp("2000-01-01")
    customers.loc[first, "signup_date"] = pd.Timestamp("1999-01-01")
    customers.to_parquet(folder / "customers.parquet", index=False)
    return folder


def test_an_empty_first_range_writes_what_one_range_writes(world, tmp_path):
    interim = _cancel_first_customers(world, tmp_path / "interim", share=0.4)
    got = {}
    for parts in (1, 3):
        _stage(interim, tmp_path / f"out{parts}", world[1], partitions=parts)
        got[parts] = {f: pd.read_parquet(_processed(tmp_path / f"out{parts}") / f) for f in FILES}
    for f in FILES:
        assert len(got[3][f]) > 0
        pd.testing.assert_frame_equal(got[3][f], got[1][f], check_exact=True)


def test_without_any_row_the_files_have_the_declared_schema(world, whole_table, tmp_path):
    """Column names and types come from the definitions, not from rows: a run where every
    customer left before the first cutoff writes empty files that pandas reads with the same
    dtypes as a full run."""
    interim = _cancel_first_customers(world, tmp_path / "interim", share=1.0)
    got = _stage(interim, tmp_path / "out", world[1])
    assert (got["labelled_rows"], got["scoring_rows"]) == (0, 0)
    for f in FILES:
        empty = pd.read_parquet(_processed(tmp_path / "out") / f)
        assert len(empty) == 0
        pd.testing.assert_series_equal(empty.dtypes, whole_table[f].dtypes)


def test_a_newest_cutoff_with_its_label_window_observed_is_in_both_files(world, tmp_path):
    """features.last_cutoff early enough that the scoring snapshot has labels too: its rows go
    to both files, whether ranges are worked on one at a time or side by side."""
    interim, _ = world
    as_of = pd.Timestamp(json.loads((interim / "contract_report.json").read_text())["as_of"])
    last = (as_of - pd.DateOffset(months=5)).normalize().replace(day=1)
    got = {
        workers: _run(
            world,
            tmp_path / f"out{workers}",
            partitions=3,
            range_workers=workers,
            last_cutoff=str(last.date()),
        )
        for workers in (1, 2)
    }
    labelled, scoring = got[2]["features.parquet"], got[2]["scoring.parquet"]
    assert len(scoring) > 0 and (scoring["cutoff"] == last).all()
    assert labelled["label"].notna().all()
    newest = labelled[labelled["cutoff"] == last]
    assert list(newest["customer_id"]) == list(scoring["customer_id"])
    for f in FILES:
        keys = got[2][f][["customer_id", "cutoff"]]
        assert keys.equals(keys.sort_values(["customer_id", "cutoff"], ignore_index=True))
        pd.testing.assert_frame_equal(got[2][f], got[1][f], check_exact=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failure_in_a_range_leaves_no_output(world, tmp_path, monkeypatch, workers):
    calls = {"n": 0}
    real = ranges.snapshot_table
    lock = threading.Lock()

    def fails_on_the_second_range(*args, **kwargs):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(ranges, "snapshot_table", fails_on_the_second_range)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        _run(world, out, partitions=4, range_workers=workers)
    assert 2 <= calls["n"] < 4  # it stopped at the failure
    assert _left_behind(out) == []  # no output, no half-written temporary folder either


def test_abandoned_parallel_ranges_stop_and_give_the_threads_back(world, tmp_path):
    interim, params = world
    report = json.loads((interim / "contract_report.json").read_text())
    present = {p.stem for p in interim.glob("*.parquet")}
    con = connect(interim, present, tmp_path, None, 2)
    plan, _ = plan_events(con, present, report, parse_params(params).features)
    btyd_pass(con, plan)
    tables = ranges.snapshot_tables(con, plan, 6, workers=2)
    first = next(tables)
    assert first.num_rows > 0 and first.schema.equals(plan.schema)
    tables.close()  # the caller stops after one range
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 2
    con.close()


def test_a_failure_in_the_writing_thread_leaves_no_output(world, tmp_path, monkeypatch):
    def disk_full(self, table):
        raise OSError("disk full")

    monkeypatch.setattr(SnapshotWriter, "_write", disk_full)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        _run(world, out, partitions=3)
    assert _left_behind(out) == []


def test_the_parquet_pandas_metadata_matches_each_files_columns(world, tmp_path):
    import pyarrow.parquet as pq

    _run(world, tmp_path / "out", partitions=2)
    for f in FILES:
        schema = pq.read_schema(_processed(tmp_path / "out") / f)
        described = [c["name"] for c in schema.pandas_metadata["columns"]]
        assert described == schema.names, f
