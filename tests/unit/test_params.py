"""params.yaml is parsed into typed sections that reject unknown, missing and mistyped keys,
naming the key, and the stage entry point stops on them before reading or writing anything."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churnlight.features.params import Params, ParamsError, parse_params, record_reads
from churnlight.pipelines.cli import app

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
SECTIONS = list(RAW)


def _raw() -> dict:
    return copy.deepcopy(RAW)


def test_the_project_params_parse():
    params = parse_params(_raw())
    assert isinstance(params, Params)
    assert params.features.signals.months_without_purchase == 2  # integers stay integers
    assert params.train.space("tree")["max_depth"] == [2, 5]


def test_every_section_of_params_yaml_is_typed():
    """A section without a typed model would be read unchecked."""
    assert set(SECTIONS) == {f.alias or n for n, f in Params.model_fields.items()}


@pytest.mark.parametrize("section", SECTIONS)
def test_a_typo_in_any_section_names_the_key(section):
    raw = _raw()
    key = next(iter(raw[section]))
    raw[section][key + "x"] = raw[section].pop(key)  # e.g. features.first_cutoffx
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    message = str(err.value)
    assert f"{section}.{key}x: unknown key" in message
    assert f"{section}.{key}: missing key" in message


@pytest.mark.parametrize(
    ("path", "value", "expect"),
    [
        (("features", "signals", "gap_ratoi"), 2.0, "features.signals.gap_ratoi: unknown key"),
        (("train", "n_trials", "lgbm"), "many", "train.n_trials.lgbm"),
        (("segment", "policy"), "capcity", "segment.policy"),
        (("train", "search_space", "lgbm", "num_leafs"), [7, 63], "not a hyperparameter"),
        (("evaluate", "capacity"), 1.5, "evaluate.capacity"),
        (("data", "as_of"), "2026-31-10", "data.as_of"),
        (("train", "n_trials"), {"logreg": 6, "tree": 8}, "n_trials.*missing \\['lgbm'\\]"),
        (("segment", "success_rate"), {"platinum": 0.7}, "success_rate.*missing"),
        (("features", "rfm", "tiers"), {"platinum": 13, "gold": 10}, "tiers.*missing"),
        (("export", "lake_partitions"), ["customer_id"], "export.lake_partitions"),
    ],
)
def test_nested_typos_and_wrong_values_are_named(path, value, expect):
    raw = _raw()
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(ParamsError, match=expect if "*" in expect else expect.replace(".", r"\.")):
        parse_params(raw)


@pytest.mark.parametrize("master", ["sc://10.0.0.5:15002", " SC://spark-connect:443 "])
def test_a_spark_connect_master_refuses_server_settings_before_any_stage_runs(master):
    """A Connect client cannot set memory, cores or Java options: named with the params, not
    ignored and not found out after the stages before features have run."""
    raw = _raw()
    raw["spark"] = {"master": master, "conf": {"spark.executor.memory": "4g"}}
    with pytest.raises(ParamsError, match=r"spark: .*spark\.executor\.memory.*Connect server"):
        parse_params(raw)
    raw["spark"]["conf"] = {"spark.sql.shuffle.partitions": 400}  # its own SQL settings: fine
    assert parse_params(raw).spark.conf == {"spark.sql.shuffle.partitions": 400}
    raw["spark"] = {"master": "spark://10.0.0.5:7077", "conf": {"spark.executor.memory": "4g"}}
    assert parse_params(raw).spark.master == "spark://10.0.0.5:7077"


def test_params_are_frozen():
    params = parse_params(_raw())
    with pytest.raises(ValueError, match="frozen"):
        params.features.step_months = 2


def test_reads_are_recorded_by_key_path():
    params = parse_params(_raw())
    with record_reads() as seen:
        params.features.signals.gap_ratio  # noqa: B018
        params.validate_.max_examples  # noqa: B018
        params.generate.model_dump()
    assert {"features.signals.gap_ratio", "validate.max_examples", "generate.n_customers"} <= seen


def test_the_stage_entry_point_stops_on_a_typo_before_anything_runs(tmp_path):
    raw = _raw()
    raw["features"]["range_wrokers"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = CliRunner().invoke(app, ["stage", "generate", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "features.range_wrokers: unknown key" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
