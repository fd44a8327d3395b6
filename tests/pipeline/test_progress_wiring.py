"""Progress on the long work of the stages (issue 16, item 3): validation per table, the features
per customer range, the segment files per file. Each stage opens `progress(...)` with a total
and the library's callback advances it to that total, no more and no less."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

RECORDED: list[dict] = []


@contextmanager
def _recording(description, total=None, *, unit="", every_s=15.0):
    bar = {"description": description, "total": total, "unit": unit, "done": 0}
    RECORDED.append(bar)

    def advance(n: int = 1) -> None:
        bar["done"] += n

    yield advance


@pytest.fixture(scope="module")
def bars(tmp_path_factory, make_pipeline_params, run_stages) -> dict[str, dict]:
    import churnlight.pipelines.features as features_stage
    import churnlight.pipelines.segment as segment_stage
    import churnlight.pipelines.validate as validate_stage

    patch = pytest.MonkeyPatch()
    for module in (validate_stage, features_stage, segment_stage):
        patch.setattr(module, "progress", _recording)
    params = make_pipeline_params()
    params["features"]["partitions"] = 3  # three customer ranges
    RECORDED.clear()
    try:
        run_stages(tmp_path_factory.mktemp("bars"), params)
    finally:
        patch.undo()
    return {bar["description"]: bar for bar in RECORDED}


def test_validation_advances_once_per_table(bars):
    bar = bars["validate"]
    assert bar["unit"] == "tables"
    # customers, transactions, activity, feedback, market (the tiny world logs no contacts)
    assert bar["total"] == bar["done"] == 5


def test_features_advance_once_per_customer_range(bars):
    bar = bars["features: customer ranges"]
    assert bar["total"] == bar["done"] == 3


def test_segment_files_advance_to_their_total(bars):
    from churnlight.models.export import SEGMENT_FILES

    bar = bars["writing the segment files"]
    assert bar["total"] == bar["done"] == SEGMENT_FILES
