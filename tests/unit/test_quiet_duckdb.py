"""DuckDB draws its own progress bar on long queries, also when stderr is a log file: at a
million customers that filled the features stage's log with bars. The stages have their own
progress (pipelines/progress.py), so the connections they use have DuckDB's off. Checked in a
child process with stderr to a file, as a stage runs under `dvc repro` (under pytest DuckDB
starts with the bar off, which would prove nothing)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys, tempfile, duckdb
from pathlib import Path
from churnlight.features.build import connect
q = "SELECT current_setting('enable_progress_bar')"
tmp = Path(tempfile.mkdtemp())
con = connect(tmp, set(), tmp, None, None)
print(duckdb.connect().execute(q).fetchone()[0], con.execute(q).fetchone()[0],
      con.cursor().execute(q).fetchone()[0])
"""


def test_the_feature_connection_and_its_range_cursors_draw_no_bar(tmp_path):
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        out = subprocess.run(
            [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=err, text=True, check=True
        ).stdout.split()
    default, ours, cursor = out
    assert default == "True"  # DuckDB's default where a stage runs: the test can fail
    assert (ours, cursor) == ("False", "False")  # the connection and the range workers' cursors
