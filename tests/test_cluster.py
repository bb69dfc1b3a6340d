"""A real two-node Ray cluster and a real MLflow server on 127.0.0.1, started and stopped by the
tests: a sweep submitted with ``ray job submit`` runs trials on both nodes and tracks them on the
server.

Each server runs in its own process group (``ray start --block``, ``mlflow server``) and is
stopped by signalling that group, never with ``ray stop`` (which would stop every Ray on the
machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys.tuning import tracking

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Two trials of 2 CPUs each, started together: each 2-CPU node can hold one of them only.
LIGHTGCN_SPACE = """
budget: {max_epochs: 20, grace_period: 20, reduction_factor: 2, eval_every: 2, num_samples: 2}
params:
  dim: 8
  lr: {choice: [0.01, 0.02]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    # Ray 2.60 turns token authentication on; nodes and the job client read ~/.ray/auth_token.
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", **extra}


def _start(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env=_env(),
        start_new_session=True,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL to what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _wait_for(check, what: str, procs: list[subprocess.Popen], timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert all(p.poll() is None for p in procs), f"a server exited while waiting for {what}"
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not come up in {timeout} s")


def _nodes(gcs: str) -> int:
    out = subprocess.run(
        [str(BIN / "ray"), "status", "--address", gcs], env=_env(), capture_output=True, text=True
    ).stdout
    return out.count("node_")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A Ray head and a second node (2 CPUs each) and an MLflow server, all on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("cluster")
    # Ray's socket paths must stay under 108 bytes: a short folder of its own.
    ray_tmp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    gcs_port, dashboard, mlflow_port = _free_port(), _free_port(), _free_port()
    gcs = f"127.0.0.1:{gcs_port}"
    ray = str(BIN / "ray")
    common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "2"]
    procs = [
        _start(
            [ray, "start", "--head", *common, "--port", str(gcs_port),
             "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
             "--include-dashboard", "true", "--temp-dir", ray_tmp],
            folder / "head.log",
        ),
        _start(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
             "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
             "--artifacts-destination", str(folder / "artifacts")],
            folder / "mlflow.log",
        ),
    ]  # fmt: skip
    try:
        url = f"http://127.0.0.1:{dashboard}"
        # The dashboard's API wants the cluster's token: a node count and an open port will do.
        _wait_for(lambda: _nodes(gcs) == 1, "the head", procs)
        _wait_for(lambda: socket.create_connection(("127.0.0.1", dashboard), 2), "jobs", procs)
        procs.append(_start([ray, "start", *common, "--address", gcs], folder / "node.log"))
        _wait_for(lambda: _nodes(gcs) == 2, "the second node", procs)
        mlflow = f"http://127.0.0.1:{mlflow_port}"
        _wait_for(lambda: urllib.request.urlopen(f"{mlflow}/health", timeout=2), "MLflow", procs)
        yield {"dashboard": url, "gcs": gcs, "mlflow": mlflow, "folder": str(folder)}
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_a_submitted_sweep_runs_trials_on_both_nodes_and_tracks_them_on_the_server(
    cluster, tmp_path
):
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "lightgcn.yaml").write_text(LIGHTGCN_SPACE)
    sweep = [
        "python", "launch/sweep.py",
        "--dataset", "synthetic",
        "--dataset-option", "n_users=300",
        "--dataset-option", "n_items=200",
        "--dataset-option", "n_interactions=9000",
        "--models", "lightgcn",
        "--space-dir", str(spaces),
        "--results-dir", str(tmp_path / "results"),
        "--storage-path", str(tmp_path / "ray"),
        "--tracking-uri", cluster["mlflow"],
        "--cpus-per-trial", "2",
        "--max-concurrent-trials", "2",
        "--quiet",
    ]  # fmt: skip
    sweep[0] = sys.executable  # the job runs with this environment's interpreter
    submit = [
        str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"],
        "--working-dir", str(REPO), "--runtime-env-json",
        '{"env_vars": {"RECSYS_TUNE_DATA": "%s"}}' % (tmp_path / "data"), "--", *sweep,
    ]  # fmt: skip
    for _ in range(30):
        job = subprocess.run(submit, env=_env(), capture_output=True, text=True, timeout=600)
        # The dashboard answers before its job agent is ready; no job was created then.
        if "No available agent to submit job" not in job.stdout + job.stderr:
            break
        time.sleep(2)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "| lightgcn |" in job.stdout  # the job's own output, streamed back
    assert (tmp_path / "results" / "leaderboard.csv").is_file()

    uri = cluster["mlflow"]
    client = tracking.client(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "recsys-tune-synthetic"]
    (parent,) = client.search_runs(
        [experiment.experiment_id], f"tags.`{tracking.TAG_ROLE}` = 'sweep'"
    )
    assert parent.info.status == "FINISHED"
    trials = tracking.find_child_runs(uri, parent.info.run_id, "trial", "lightgcn")
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials.values())
    nodes = {r.data.tags[tracking.TAG_NODE] for r in trials.values()}
    assert len(nodes) == 2, nodes  # one trial on each node
    (best,) = tracking.find_child_runs(uri, parent.info.run_id, "best", "lightgcn").values()
    assert "test_ndcg_at_10" in best.data.metrics
    artifacts = {a.path for a in client.list_artifacts(best.info.run_id)}
    assert {"config.yaml", "checkpoint", "recommendations"} <= artifacts
