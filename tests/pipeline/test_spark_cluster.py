"""The Spark engine on a real (standalone) cluster, not only local mode (issue 18).

A master and two workers are started from PySpark's own installation (bin/spark-class) on the
loopback address only, on free ports, with small memory; the features stage runs against
spark://127.0.0.1:<port> in a process of its own (one Spark driver per process) and must write
the DuckDB engine's files. The master and the workers are stopped whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import spark_available

from churnlight.features.snapshots import snapshot_differences
from pipeline.test_spark import FILES, run_features

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(spark_available() is not None, reason=str(spark_available())),
]

HOST = "127.0.0.1"  # the only address used


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait(what: str, ready, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} not up after {timeout:.0f} s")


def _master_state(ui_port: int) -> dict:
    """The master's own report (its web UI's JSON, on the loopback address)."""
    with urllib.request.urlopen(f"http://{HOST}:{ui_port}/json/", timeout=5) as r:
        return json.load(r)


@pytest.fixture
def standalone(tmp_path) -> Iterator[tuple[str, int]]:
    """A standalone master and two 1-core, 512 MiB workers on 127.0.0.1; its spark:// URL and
    web UI port."""
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    spark_class = home / "bin" / "spark-class"
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOG_DIR": str(logs),
        "SPARK_NO_DAEMONIZE": "1",
    }
    port, ui = _free_port(), _free_port()
    url = f"spark://{HOST}:{port}"
    procs: list[subprocess.Popen] = []

    def start(args: list[str], name: str) -> None:
        out = (logs / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                ["bash", str(spark_class), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one below
            )
        )

    try:
        start(
            [
                "org.apache.spark.deploy.master.Master",
                *("--host", HOST, "--port", str(port), "--webui-port", str(ui)),
            ],
            "master",
        )
        _wait("the master", lambda: socket.create_connection((HOST, port), timeout=1).close() or 1)
        for i in range(2):
            work = tmp_path / f"worker{i}"
            work.mkdir()
            start(
                [
                    "org.apache.spark.deploy.worker.Worker",
                    *("--host", HOST, "--port", str(_free_port())),
                    *("--webui-port", str(_free_port()), "--cores", "1", "--memory", "512m"),
                    *("--work-dir", str(work), url),
                ],
                f"worker{i}",
            )
        _wait("two workers", lambda: int(_master_state(ui).get("aliveworkers", 0)) == 2)
        yield url, ui
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_the_feature_stage_on_a_standalone_cluster_writes_duckdbs_files(
    standalone, tmp_path, make_pipeline_params, run_stages
):
    url, ui = standalone
    params = make_pipeline_params()
    world = run_stages(tmp_path / "world", params, ("generate", "validate"))
    duck = run_features(world["interim"], tmp_path / "duck", params, "duckdb")
    root = tmp_path / "cluster"
    (root / "data").mkdir(parents=True)
    (root / "data" / "interim").symlink_to(world["interim"].resolve())
    params["features"]["engine"] = "spark"
    params["base"]["log_level"] = "INFO"
    params["spark"] = {
        "master": url,
        "conf": {
            "spark.driver.host": HOST,
            "spark.driver.bindAddress": HOST,
            "spark.executor.memory": "512m",
            "spark.executor.cores": "1",
            "spark.cores.max": "2",
            "spark.sql.shuffle.partitions": "4",
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    cmd = [sys.executable, "-m", "churnlight.pipelines.cli", "stage", "features", "--root", "."]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"on {url}" in done.stdout + done.stderr  # the driver's own log line
    apps = _master_state(ui)["completedapps"]  # and the master ran it, on both workers' cores
    assert [a["name"] for a in apps] == ["churnlight-features"]
    assert apps[0]["cores"] == 2
    assert snapshot_differences(duck, root / "data" / "processed") == {f: [] for f in FILES}
