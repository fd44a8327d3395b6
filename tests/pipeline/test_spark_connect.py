"""The Spark engine through a Spark Connect server (`spark.master: sc://...`, issue 18).

A Connect server is started from PySpark's own installation (sbin/start-connect-server.sh) on
the loopback address only, on a free port; the features and segment stages run as Connect
clients in processes of their own (a Connect client switches its whole process to Connect's
API) and must write the DuckDB engine's files; the tiers and reasons of the scoring snapshot,
cut on the global ranking, must be the single machine's. The server is stopped whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import spark_available

from churnlight.features.params import parse_params
from churnlight.features.snapshots import snapshot_differences
from churnlight.models.artifacts import load_champion
from churnlight.models.explain.workflow import reasons_for_tiers
from churnlight.models.segment import risk_tiers
from churnlight.pipelines.common import Layout
from pipeline.test_spark import FILES
from pipeline.test_spark_cluster import HOST, _free_port, _wait


def _connect_missing() -> str | None:
    """Why a Spark Connect client cannot run here, or None."""
    try:
        import pyspark.sql.connect.session  # noqa: F401  (needs grpcio, zstandard, ...)
    except ImportError as e:
        return f"pyspark's Spark Connect client needs {e.name} (the churnlight[spark] extra)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(spark_available() is not None, reason=str(spark_available())),
    pytest.mark.skipif(_connect_missing() is not None, reason=str(_connect_missing())),
]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory) -> Iterator[str]:
    """A Spark Connect server on local[2] at 127.0.0.1:<free port>; its sc:// URL."""
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    logs = tmp_path_factory.mktemp("connect-server")
    port = _free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOG_DIR": str(logs),
        "SPARK_PID_DIR": str(logs),
        # its Python workers (scoring, the BTYD fits) run this interpreter, with churnlight
        "PYSPARK_PYTHON": sys.executable,
    }
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    env.pop("SPARK_REMOTE", None)
    conf = {
        "spark.connect.grpc.binding.address": HOST,
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
    }
    cmd = ["bash", str(home / "sbin" / "start-connect-server.sh"), "--wait"]
    cmd += ["--master", "local[2]", *[a for k, v in conf.items() for a in ("--conf", f"{k}={v}")]]
    with (logs / "server.log").open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the Connect server exited: see {logs / 'server.log'}")
            socket.create_connection((HOST, port), timeout=1).close()
            return True

        _wait("the Spark Connect server", up)
        yield f"sc://{HOST}:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def one_machine(tmp_path_factory, make_pipeline_params, run_stages) -> tuple[dict, dict]:
    """The pipeline up to the segment files on one machine (DuckDB); its layout and params."""
    params = make_pipeline_params()
    stages = ("generate", "validate", "features", "train", "explain", "segment")
    return run_stages(tmp_path_factory.mktemp("one"), params, stages), params


def _stage(root: Path, params: dict, stage: str, url: str, conf: dict | None = None):
    """The stage `stage` in `root` with the Spark engine on `url`, in a process of its own."""
    params = json.loads(json.dumps(params))
    params["features"]["engine"] = "spark"
    params["base"]["log_level"] = "INFO"
    params["spark"] = {"master": url, "conf": conf or {"spark.sql.shuffle.partitions": "4"}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    cmd = [sys.executable, "-m", "churnlight.pipelines.cli", "stage", stage, "--root", "."]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900)


def test_the_feature_and_segment_stages_through_spark_connect_write_duckdbs_files(
    connect_server, one_machine, tmp_path
):
    paths, params = one_machine
    root = tmp_path / "connect"
    (root / "data").mkdir(parents=True)
    (root / "data" / "interim").symlink_to(paths["interim"].resolve())
    done = _stage(root, params, "features", connect_server)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(Spark Connect)" in done.stdout + done.stderr  # the client's own log line
    found = snapshot_differences(paths["processed"], root / "data" / "processed")
    assert found == {f: [] for f in FILES}

    # the segment stage in a copy of the one-machine project (the fixture stays as it is)
    copy = tmp_path / "segment"
    shutil.copytree(paths["params"].parent, copy, symlinks=True)
    one = {f.name: pd.read_csv(f) for f in paths["segments"].glob("*.csv")}
    done = _stage(copy, params, "segment", connect_server)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(Spark Connect)" in done.stdout + done.stderr
    got = {f.name: pd.read_csv(f) for f in Layout(copy).segments.glob("*.csv")}
    assert sorted(got) == sorted(one) and "high.csv" in one
    for name, frame in one.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)


# run by a Connect client process: the tiers and reasons of models/spark_score on Spark Connect
_SCORE = """
import sys
from pathlib import Path
import pandas as pd
import pyarrow.parquet as pq
from churnlight.pipelines.common import load_params
from churnlight.features.spark_session import spark_session
from churnlight.models.artifacts import load_champion
from churnlight.models.spark_score import reasons_for_tiers, score_snapshot

root, url, policy, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
params = load_params(out / "params.yaml")
sp = params.segment.model_copy(update={"policy": policy})
_, model, features = load_champion(root / "data" / "artifacts" / "models")
path = root / "data" / "processed" / "scoring.parquet"
registry = pd.read_csv(root / "data" / "processed" / "feature_registry.csv")
dtypes = pd.read_parquet(path).dtypes.to_dict()
# three ranges that stay apart however small (the global rank's offsets at work)
conf = {"spark.sql.shuffle.partitions": 3, "spark.sql.adaptive.coalescePartitions.enabled": False}
with spark_session(url, conf) as spark:
    frame = spark.read.parquet(path.resolve().as_uri())
    scored = score_snapshot(spark, frame, model, features, dtypes, sp.policy, sp.tier_policy())
    pq.write_table(scored.toArrow(), out / "tiers.parquet")
    acted = list(params.explain.reason_tiers)
    reasons = reasons_for_tiers(
        spark, frame, scored, model, features, dtypes, acted, registry, params.explain.top_reasons
    )
    pq.write_table(reasons.toArrow(), out / "reasons.parquet")
"""


@pytest.mark.parametrize("policy", ["capacity", "threshold"])
def test_tiers_and_reasons_through_spark_connect_equal_the_single_machines(
    connect_server, one_machine, tmp_path, policy
):
    """The global ranking (each row's index after a distributed sort, without an RDD) and the
    champion sent with the plan (no broadcast) give the single machine's tiers and reasons."""
    paths, raw = one_machine
    params = parse_params(raw)
    sp = params.segment.model_copy(update={"policy": policy})
    _, model, features = load_champion(paths["models"])
    scoring = pd.read_parquet(paths["processed"] / "scoring.parquet")
    registry = pd.read_csv(paths["processed"] / "feature_registry.csv")
    p = model.predict_proba(scoring[features])[:, 1]
    tiers = risk_tiers(p, sp.policy, **sp.tier_policy())
    acted = list(params.explain.reason_tiers)
    x, ids = scoring[features], scoring["customer_id"]
    top = params.explain.top_reasons
    one = reasons_for_tiers(model.pipeline, x, ids, tiers, acted, registry, top, 1).reasons

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    root = str(paths["params"].parent)
    cmd = [sys.executable, "-c", _SCORE, root, connect_server, policy, str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = pd.read_parquet(tmp_path / "tiers.parquet").set_index("customer_id").loc[ids]
    assert (got["p"].to_numpy() == p).all()  # the same model on the same rows, bit for bit
    assert (got["risk_tier"].to_numpy() == tiers).all()
    assert (tiers == "high").sum() > 0
    reasons = pd.read_parquet(tmp_path / "reasons.parquet")
    reasons = reasons.sort_values("customer_id", ignore_index=True)
    expected = one.sort_values("customer_id", ignore_index=True)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(reasons, expected, check_dtype=False)


def test_a_connect_client_refuses_server_settings_with_the_reason(monkeypatch):
    """Memory, cores and Java options belong to the server: asked from a client, they are an
    error that says where to set them, not a silent no-op. (Refused before connecting; were it
    not, the Connect mode a client switches its process to is undone after the test.)"""
    from churnlight.features.spark_session import spark_session

    monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)

    with (
        pytest.raises(ValueError, match=r"spark.executor.memory.*Spark Connect.*server starts"),
        spark_session("sc://127.0.0.1:1", {"spark.executor.memory": "4g"}),
    ):
        pass
