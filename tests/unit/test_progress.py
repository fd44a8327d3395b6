"""The progress fallback without a terminal: log lines with counts and remaining time."""

from __future__ import annotations

import logging

import pytest

from churnlight.pipelines import progress as prog


def test_plain_lines_when_no_terminal(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(prog.ENV, "0")
    clock = iter([0.0, 20.0, 21.0, 40.0, 60.0])
    monkeypatch.setattr(prog.time, "monotonic", lambda: next(clock))
    with (
        caplog.at_level(logging.INFO, logger="churnlight.progress"),
        prog.progress("scoring", total=4, unit="ranges") as advance,
    ):
        advance(1)  # t=20: due -> line at 25%
        advance(1)  # t=21: not due
        advance(2)  # t=40: due -> line at 100%
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "scoring: 1/4 ranges (25%), 0:20 elapsed, ~1:00 left"
    assert lines[1].startswith("scoring: 4/4 ranges (100%), 0:40 elapsed, ~0:00 left")
    assert lines[-1].endswith("(done)") and "1:00 elapsed" in lines[-1]


def test_track_yields_every_item_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prog.ENV, "0")
    assert list(prog.track(range(5), "ranges")) == [0, 1, 2, 3, 4]


def test_quick_work_logs_nothing(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(prog.ENV, "0")
    with (
        caplog.at_level(logging.INFO, logger="churnlight.progress"),
        prog.progress("writing", total=3) as advance,
    ):
        for _ in range(3):
            advance()
    assert caplog.records == []
