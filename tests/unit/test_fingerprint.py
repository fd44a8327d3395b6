"""The reference comparison can fail: a changed value, a changed text or a missing column is
reported, floats within the tolerance are not."""

from __future__ import annotations

import pandas as pd
from reference.fingerprint import compare, frame_fingerprint  # tests/ is on sys.path (rootdir)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0], "n": [1, 2]})


def test_equal_frames_have_equal_fingerprints():
    assert compare(frame_fingerprint(_frame()), frame_fingerprint(_frame())) == []


def test_a_moved_value_a_changed_text_and_a_lost_column_are_reported():
    want = frame_fingerprint(_frame())
    moved = _frame().assign(x=[1.0, 2.0 + 1e-6])
    assert compare(frame_fingerprint(moved), want, rel=1e-9) != []
    renamed = _frame().assign(id=["a", "c"])
    assert compare(frame_fingerprint(renamed), want) != []
    assert compare(frame_fingerprint(_frame().drop(columns="n")), want) != []
    assert compare(frame_fingerprint(_frame().iloc[:1]), want) != []


def test_float_noise_within_the_tolerance_is_equal():
    noisy = _frame().assign(x=[1.0, 2.0 * (1 + 1e-13)])
    assert compare(frame_fingerprint(noisy), frame_fingerprint(_frame()), rel=1e-9) == []
