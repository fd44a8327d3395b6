"""The feature stage's ways to its files give the same files.

At scale the stage aggregates one range of customers at a time and derives the features in
DuckDB (checked against `derive_features` on a sample first), or in pandas batches when that
check fails. Every way must write what the whole-table pandas computation writes: same rows, in
the same (customer_id, cutoff) order, same values, same dtypes.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from churnlight.features import build
from churnlight.pipelines import features as stage

FILES = ("features.parquet", "scoring.parquet")


@pytest.fixture(scope="module")
def world(tmp_path_factory, make_pipeline_params, run_stages) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("scale")
    params = make_pipeline_params()
    paths = run_stages(root, params, ("generate", "validate"))
    return paths["interim"], params


@pytest.fixture(scope="module")
def whole_table(world, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """features / scoring as the stage wrote them before it scaled: everything in one frame."""
    interim, params = world
    fp = params["features"]
    report = json.loads((interim / "contract_report.json").read_text())
    present = {p.stem for p in interim.glob("*.parquet")}
    cfg = build.FeatureConfig.from_params(fp)
    as_of = pd.Timestamp(report["as_of"])
    cutoffs = build.make_cutoffs(as_of, fp["first_cutoff"], fp["last_cutoff"], fp["step_months"])
    con = duckdb.connect()
    for name in present:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{interim / name}.parquet')")
    agg = build.compute_aggregates(
        con, present, cutoffs, as_of + pd.Timedelta(days=1), cfg, stage.load_lexicon()
    )
    customers = con.execute("SELECT * FROM customers").df()
    con.close()
    tables = {t: t in present for t in ("activity", "transactions", "feedback", "market")}
    feats = build.finish_rows(agg, cfg, tables, customers, build.profile_columns(customers))
    out = tmp_path_factory.mktemp("whole")
    feats[feats["label"].notna()].to_parquet(out / FILES[0], index=False)
    last = feats["cutoff"].max()
    feats[feats["cutoff"] == last].drop(columns="label").to_parquet(out / FILES[1], index=False)
    return {f: pd.read_parquet(out / f) for f in FILES}


def _run(world, out: Path, **settings) -> dict[str, pd.DataFrame]:
    interim, params = world
    params = copy.deepcopy(params)
    params["features"].update(settings)
    stage.run(interim, out, params)
    return {f: pd.read_parquet(out / f) for f in FILES}


@pytest.mark.parametrize(
    "settings",
    [
        {"derive_in_sql": True, "partitions": 1},
        {"derive_in_sql": True, "partitions": 3, "range_workers": 1},
        {"derive_in_sql": True, "partitions": 5, "range_workers": 2},
        {"derive_in_sql": True, "partitions": 4, "range_workers": 3},
        {"derive_in_sql": False, "partitions": 3, "batch_rows": 2048},
    ],
    ids=["sql", "sql-partitioned", "sql-2-workers", "sql-3-workers", "pandas-partitioned-batches"],
)
def test_every_way_writes_the_whole_table_result(world, whole_table, tmp_path, settings):
    got = _run(world, tmp_path / "out", **settings)
    for f in FILES:
        assert len(got[f]) > 0
        pd.testing.assert_frame_equal(got[f], whole_table[f], check_exact=True)


def test_a_sql_derivation_that_differs_falls_back_to_pandas(
    world, whole_table, tmp_path, monkeypatch, caplog
):
    real = build.derived_sql

    def off_by_one(*args, **kwargs):
        return [(n, f"{e} + 1" if n == "rule_score" else e) for n, e in real(*args, **kwargs)]

    monkeypatch.setattr(build, "derived_sql", off_by_one)
    with caplog.at_level(logging.WARNING, logger="churnlight.features"):
        got = _run(world, tmp_path / "out", derive_in_sql=True, partitions=2)
    assert "deriving in pandas" in caplog.text and "rule_score" in caplog.text
    for f in FILES:
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


def test_an_empty_first_range_still_derives_in_sql(world, tmp_path, caplog):
    # the SQL check draws its sample from all customers, not from the first range
    interim = _cancel_first_customers(world, tmp_path / "interim", share=0.4)
    params = copy.deepcopy(world[1])
    got = {}
    for parts in (1, 3):
        params["features"].update(derive_in_sql=True, partitions=parts)
        with caplog.at_level(logging.INFO, logger="churnlight.features"):
            stage.run(interim, tmp_path / f"out{parts}", params)
        assert "derived (DuckDB)" in caplog.text and "deriving in pandas" not in caplog.text
        caplog.clear()
        got[parts] = {f: pd.read_parquet(tmp_path / f"out{parts}" / f) for f in FILES}
    for f in FILES:
        assert len(got[3][f]) > 0
        pd.testing.assert_frame_equal(got[3][f], got[1][f], check_exact=True)


def test_a_newest_cutoff_with_its_label_window_observed_is_in_both_files(world, tmp_path):
    """features.last_cutoff early enough that the scoring snapshot has labels too: its rows go
    to both files, and the SQL derivation writes what the pandas one writes."""
    interim, _ = world
    as_of = pd.Timestamp(json.loads((interim / "contract_report.json").read_text())["as_of"])
    last = (as_of - pd.DateOffset(months=5)).normalize().replace(day=1)
    got = {
        sql: _run(
            world,
            tmp_path / f"out{sql}",
            derive_in_sql=sql,
            partitions=2,
            last_cutoff=str(last.date()),
        )
        for sql in (True, False)
    }
    labelled, scoring = got[True]["features.parquet"], got[True]["scoring.parquet"]
    assert len(scoring) > 0 and (scoring["cutoff"] == last).all()
    assert labelled["label"].notna().all()
    newest = labelled[labelled["cutoff"] == last]
    assert list(newest["customer_id"]) == list(scoring["customer_id"])
    for f in FILES:
        keys = got[True][f][["customer_id", "cutoff"]]
        assert keys.equals(keys.sort_values(["customer_id", "cutoff"], ignore_index=True))
        pd.testing.assert_frame_equal(got[True][f], got[False][f], check_exact=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failure_in_a_range_leaves_no_output(world, tmp_path, monkeypatch, workers):
    calls = {"n": 0}
    real = build.snapshot_table
    lock = threading.Lock()

    def fails_on_the_second_range(*args, **kwargs):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "snapshot_table", fails_on_the_second_range)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        _run(world, out, derive_in_sql=True, partitions=4, range_workers=workers)
    assert 2 <= calls["n"] < 4  # it stopped at the failure
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temporary folder either


def test_abandoned_parallel_ranges_stop_and_give_the_threads_back(world, tmp_path):
    interim, params = world
    fp = dict(params["features"], duckdb_threads=2)
    report = json.loads((interim / "contract_report.json").read_text())
    present = {p.stem for p in interim.glob("*.parquet")}
    con = stage.connect(interim, present, fp, tmp_path)
    plan = stage.plan_events(con, present, report, fp)
    args = (con, present, plan.cutoffs, plan.data_end, plan.cfg, stage.load_lexicon())
    sample_run = build.aggregate_ranges(*args, 0, tuple(plan.profile), sample=500)
    _, sql = next(sample_run)
    select, sample = stage.check_sql_derivation(con, sql, plan, tmp_path)
    assert select is not None
    schema = build.snapshot_schema(con, select, sample)
    sample_run.close()
    tables = build.snapshot_tables(*args, 6, tuple(plan.profile), select, schema, workers=2)
    first = next(tables)
    assert first.num_rows > 0 and first.schema.equals(schema)
    tables.close()  # the caller stops after one range
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 2
    con.close()


def test_a_failure_in_the_writing_thread_leaves_no_output(world, tmp_path, monkeypatch):
    def disk_full(self, table):
        raise OSError("disk full")

    monkeypatch.setattr(stage.ArrowSnapshotWriter, "_write", disk_full)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        _run(world, out, derive_in_sql=True, partitions=3)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_parquet_pandas_metadata_matches_each_files_columns(world, tmp_path):
    import pyarrow.parquet as pq

    _run(world, tmp_path / "out", derive_in_sql=True, partitions=2)
    for f in FILES:
        schema = pq.read_schema(tmp_path / "out" / f)
        described = [c["name"] for c in schema.pandas_metadata["columns"]]
        assert described == schema.names, f
