"""A real two-node Ray cluster and a real MLflow server on 127.0.0.1, started and stopped by the
tests: a sweep submitted with ``ray job submit`` runs trials on both nodes and tracks them on the
server, and survives the faults clusters have: a node killed mid-trial, the driver killed
(``kill -9``) then resumed, the tracking server stopped for a while.

Each server runs in its own process group (``ray start --block``, ``mlflow server``) and is
stopped by signalling that group, never with ``ray stop`` (which would stop every Ray on the
machine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from recsys.tuning import tracking
from recsys.tuning.space import default_space_dir

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Two trials of 2 CPUs each, started together: each 2-CPU node can hold one of them only.
LIGHTGCN_SPACE = """
budget: {max_epochs: 20, grace_period: 20, reduction_factor: 2, eval_every: 2, num_samples: 2}
params:
  dim: 8
  lr: {choice: [0.001, 0.01]}
"""
# Trials of about a minute (two at once on this 2-core machine): long enough to fault them
# mid-way.
LONG_SPACE = """
budget: {max_epochs: 50, grace_period: 50, reduction_factor: 2, eval_every: 5, num_samples: 2}
params:
  dim: 8
  lr: {choice: [0.001, 0.01]}
  batch_size: 64
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
    """SIGTERM to the server's process group, SIGKILL to what is left after 10 s.

    The group counts as gone once its leader is reaped (``poll``) and no member answers: an
    unreaped leader is a zombie that still answers a signal, so without the reaping every stop
    waited out both timeouts."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            proc.poll()
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


class Cluster:
    """A Ray head and a second node (2 CPUs each) and an MLflow server, all on 127.0.0.1, each
    in its own process group; every port its own (two nodes on one machine must not share an
    agent port)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Ray's socket paths must stay under 108 bytes: a short folder of its own.
        self.ray_tmp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
        self.gcs = f"127.0.0.1:{_free_port()}"
        self.dashboard_port, self.mlflow_port = _free_port(), _free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.mlflow = f"http://127.0.0.1:{self.mlflow_port}"
        self.head: subprocess.Popen | None = None
        self.node: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None

    def _ray_start(self, *args: str, log: str) -> subprocess.Popen:
        ports = [
            "--dashboard-agent-listen-port", str(_free_port()),
            "--dashboard-agent-grpc-port", str(_free_port()),
            "--runtime-env-agent-port", str(_free_port()),
            "--metrics-export-port", str(_free_port()),
        ]  # fmt: skip
        common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "2", *ports]
        return _start([str(BIN / "ray"), "start", *common, *args], self.folder / log)

    def start(self) -> None:
        self.head = self._ray_start(
            "--head", "--port", self.gcs.rsplit(":", 1)[1],
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
            "--include-dashboard", "true", "--ray-client-server-port", str(_free_port()),
            "--temp-dir", self.ray_tmp,
            log="head.log",
        )  # fmt: skip
        self.start_mlflow()
        # The dashboard's API wants the cluster's token: a node count and an open port will do.
        _wait_for(lambda: _nodes(self.gcs) == 1, "the head", self.procs)
        port = self.dashboard_port
        _wait_for(lambda: socket.create_connection(("127.0.0.1", port), 2), "jobs", self.procs)
        self.add_node()
        self.wait_for_mlflow()

    def add_node(self) -> None:
        """Starts the second node (again, after :meth:`kill_node`)."""
        self.node = self._ray_start("--address", self.gcs, log="node.log")
        _wait_for(lambda: _nodes(self.gcs) == 2, "the second node", self.procs)

    def kill_node(self) -> None:
        """SIGKILL to the second node's whole process group: raylet, workers and all."""
        os.killpg(self.node.pid, signal.SIGKILL)
        self.node.wait()
        _stop(self.node)
        self.node = None

    def start_mlflow(self) -> None:
        self.server = _start(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.mlflow_port),
             "--backend-store-uri", f"sqlite:///{self.folder}/mlflow.db",
             "--artifacts-destination", str(self.folder / "artifacts")],
            self.folder / "mlflow.log",
        )  # fmt: skip

    def wait_for_mlflow(self) -> None:
        url = f"{self.mlflow}/health"
        _wait_for(lambda: urllib.request.urlopen(url, timeout=2), "MLflow", self.procs)

    def stop_mlflow(self) -> None:
        _stop(self.server)
        self.server = None

    @property
    def procs(self) -> list[subprocess.Popen]:
        return [p for p in (self.head, self.node, self.server) if p is not None]

    def close(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """One two-node cluster and MLflow server for the module; a test that kills a node or stops
    the server brings it back before it ends."""
    started = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        started.start()
        yield started
    finally:
        started.close()


def _sweep_argv(tmp_path: Path, cluster: Cluster, space: str, *extra: str) -> list[str]:
    spaces = tmp_path / "spaces"
    spaces.mkdir(exist_ok=True)
    (spaces / "lightgcn.yaml").write_text(space)
    return [
        sys.executable, "launch/sweep.py",  # the job runs with this environment's interpreter
        "--dataset", "synthetic",
        "--dataset-option", "n_users=300",
        "--dataset-option", "n_items=200",
        "--dataset-option", "n_interactions=9000",
        "--models", "lightgcn",
        "--space-dir", str(spaces),
        "--results-dir", str(tmp_path / "results"),
        "--storage-path", str(tmp_path / "ray"),
        "--tracking-uri", cluster.mlflow,
        "--cpus-per-trial", "2",
        "--quiet",
        *extra,
    ]  # fmt: skip


def _ray(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ray"), *args], env=_env(), capture_output=True, text=True, timeout=120
    )


def _submit(cluster: Cluster, tmp_path: Path, argv: list[str]) -> str:
    """Submits ``argv`` with ``ray job submit`` and returns the job's id at once; retried while
    the dashboard's job agent is not ready yet."""
    for _ in range(30):
        job_id = f"{tmp_path.name}-{uuid.uuid4().hex[:8]}"
        submit = _ray(
            "job", "submit", "--address", cluster.dashboard, "--no-wait",
            "--submission-id", job_id, "--working-dir", str(REPO), "--runtime-env-json",
            '{"env_vars": {"RECSYS_TUNE_DATA": "%s"}}' % (tmp_path / "data"), "--", *argv,
        )  # fmt: skip
        # The dashboard answers before its job agent is ready; no job was created then.
        if "No available agent to submit job" not in submit.stdout + submit.stderr:
            assert submit.returncode == 0, submit.stdout + submit.stderr
            return job_id
        time.sleep(2)
    raise AssertionError("the job agent never became ready")


def _job_status(cluster: Cluster, job_id: str) -> tuple[str, str]:
    """The job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED) and what said so."""
    done = _ray("job", "status", "--address", cluster.dashboard, job_id)
    said = done.stdout + done.stderr  # Ray's CLI logs to stderr
    # "Status for job '<id>': RUNNING", "Job '<id>' succeeded", "Job '<id>' failed", ...
    pattern = r"job '[^']+'\W*(pending|running|succeeded|failed|stopped)\b"
    found = re.search(pattern, said, flags=re.IGNORECASE)
    return (found.group(1).upper() if found else "UNKNOWN"), said


def _finish(cluster: Cluster, job_id: str, timeout: float = 600) -> tuple[str, str]:
    """Waits for the job to end: its final status and its whole output."""
    deadline = time.time() + timeout
    while True:
        status, said = _job_status(cluster, job_id)
        assert status != "UNKNOWN", said
        if status not in ("PENDING", "RUNNING"):
            break
        assert time.time() < deadline, f"job {job_id} still {status}"
        time.sleep(1)
    return status, _ray("job", "logs", "--address", cluster.dashboard, job_id).stdout


def _first(tmp_path: Path) -> set[Path]:
    """Trial folders whose only checkpoint is their first."""
    trials = {p.parent for p in tmp_path.glob("ray/*/search/*/checkpoint_*")}
    return {t for t in trials if [c.name for c in t.glob("checkpoint_*")] == ["checkpoint_000000"]}


def _wait_for_checkpoints(
    cluster: Cluster, job_id: str, tmp_path: Path, n: int, timeout: float = 300
) -> None:
    """Until ``n`` trials have saved a checkpoint after their first (the job still running)."""
    deadline = time.time() + timeout
    checked = 0.0
    while (
        len({p.parent for p in tmp_path.glob("ray/*/search/*/checkpoint_*")} - _first(tmp_path)) < n
    ):
        assert time.time() < deadline, "no checkpoints"
        if time.time() - checked > 5:
            status, said = _job_status(cluster, job_id)
            logs = _ray("job", "logs", "--address", cluster.dashboard, job_id).stdout
            assert status in ("PENDING", "RUNNING"), said + logs[-3000:]
            checked = time.time()
        time.sleep(0.3)


def _parent(cluster: Cluster, results: Path):
    state = json.loads((results / ".sweep" / "sweep.json").read_text())
    client = tracking.client(cluster.mlflow)
    return state, client, client.get_run(state["parent_run_id"])


def _epochs_logged_once(client, run, last: int, every: int) -> None:
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch")]
    assert steps == list(range(every, last + 1, every)), steps


def _finished_with_every_epoch_once(cluster: Cluster, tmp_path: Path):
    """The sweep of ``LONG_SPACE`` finished, in its state and on the server, and each of its
    two trial runs FINISHED with every evaluation logged once. Returns the client and runs."""
    state, client, parent = _parent(cluster, tmp_path / "results")
    assert state["status"] == "finished" and parent.info.status == "FINISHED"
    trials = tracking.find_child_runs(cluster.mlflow, parent.info.run_id, "trial")
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials.values())
    for run in trials.values():
        _epochs_logged_once(client, run, 50, 5)
    return client, trials


@pytest.mark.slow
def test_a_submitted_sweep_runs_trials_on_both_nodes_and_tracks_them_on_the_server(
    cluster, tmp_path
):
    # Each trial on an actor of its own: with actors reused, the first trial to finish hands
    # its actor (on its node) to the other whenever that one's actor, on the node that just
    # joined, is still starting, and both trials run on one node.
    argv = _sweep_argv(
        tmp_path, cluster, LIGHTGCN_SPACE, "--max-concurrent-trials", "2", "--no-reuse-actors"
    )
    status, logs = _finish(cluster, _submit(cluster, tmp_path, argv))
    assert status == "SUCCEEDED", logs[-3000:]
    assert "| lightgcn |" in logs  # the job's own output
    assert (tmp_path / "results" / "leaderboard.csv").is_file()

    state, client, parent = _parent(cluster, tmp_path / "results")
    assert parent.info.status == "FINISHED"
    trials = tracking.find_child_runs(cluster.mlflow, parent.info.run_id, "trial", "lightgcn")
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials.values())
    nodes = {r.data.tags[tracking.TAG_NODE] for r in trials.values()}
    assert len(nodes) == 2, (nodes, logs[-3000:])  # one trial on each node
    (best,) = tracking.find_child_runs(cluster.mlflow, parent.info.run_id, "best").values()
    assert "test_ndcg_at_10" in best.data.metrics
    artifacts = {a.path for a in client.list_artifacts(best.info.run_id)}
    assert {"config.yaml", "checkpoint", "recommendations"} <= artifacts


def _restarts(tmp_path: Path, model: str) -> list[int]:
    """``resumed_from_epoch`` of every (re)start of ``model``'s trials."""
    return [
        json.loads(line)["resumed_from_epoch"]
        for path in tmp_path.glob(f"ray/*/search/*model={model}*/result.json")
        for line in path.read_text().splitlines()
        if "resumed_from_epoch" in json.loads(line)
    ]


@pytest.mark.slow
def test_a_node_killed_mid_trial_its_trial_resumes_on_the_head(cluster, tmp_path):
    argv = _sweep_argv(tmp_path, cluster, LONG_SPACE, "--max-failures", "3")
    job = _submit(cluster, tmp_path, argv)
    try:
        _wait_for_checkpoints(cluster, job, tmp_path, 2)  # one trial on each node, both mid-way
        cluster.kill_node()
        status, logs = _finish(cluster, job)
    finally:
        if cluster.node is None:
            cluster.add_node()
    assert status == "SUCCEEDED", logs[-3000:]
    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert board.loc[0, "trials"] == 2 and board.loc[0, "trials_failed"] == 0
    client, trials = _finished_with_every_epoch_once(cluster, tmp_path)
    # The killed node's trial went on from its checkpoint, on the node that was left.
    assert max(_restarts(tmp_path, "lightgcn")) >= 5
    assert len({r.data.tags[tracking.TAG_NODE] for r in trials.values()}) == 1


def _driver_pid(tmp_path: Path) -> int:
    """The job's driver: the ``launch/sweep.py`` process writing to this test's folder."""
    mine = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        words = [a.decode(errors="replace") for a in args]
        if "launch/sweep.py" in words and str(tmp_path / "results") in words:
            mine.append(int(cmdline.parent.name))
    assert len(mine) == 1, mine
    return mine[0]


@pytest.mark.slow
def test_a_driver_killed_mid_sweep_is_finished_by_resume(cluster, tmp_path):
    argv = _sweep_argv(tmp_path, cluster, LONG_SPACE, "--models", "popularity,lightgcn")
    shutil.copy(default_space_dir() / "popularity.yaml", tmp_path / "spaces")
    job = _submit(cluster, tmp_path, argv)
    _wait_for_checkpoints(cluster, job, tmp_path, 2)  # popularity's trial done, LightGCN's mid-way
    os.kill(_driver_pid(tmp_path), signal.SIGKILL)
    status, _ = _finish(cluster, job)
    assert status == "FAILED"
    state, client, parent = _parent(cluster, tmp_path / "results")
    assert state["status"] == "running" and parent.info.status == "RUNNING"  # as it was left
    popularity = _restarts(tmp_path, "popularity")
    assert popularity == [0]

    resume = [sys.executable, "launch/sweep.py", "--resume"]
    resume += ["--results-dir", str(tmp_path / "results"), "--quiet"]
    status, logs = _finish(cluster, _submit(cluster, tmp_path, resume))
    assert status == "SUCCEEDED", logs[-3000:]
    state, client, parent = _parent(cluster, tmp_path / "results")
    assert state["status"] == "finished" and parent.info.status == "FINISHED"
    assert _restarts(tmp_path, "popularity") == popularity  # finished: not run again
    assert max(_restarts(tmp_path, "lightgcn")) >= 5  # went on from its checkpoints
    runs = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert all(r.info.status == "FINISHED" for r in runs)
    trials = tracking.find_child_runs(cluster.mlflow, parent.info.run_id, "trial")
    assert len(trials) == 3  # one run per trial, none duplicated
    for run in trials.values():
        if run.data.tags[tracking.TAG_MODEL] == "lightgcn":
            _epochs_logged_once(client, run, 50, 5)


@pytest.mark.slow
def test_the_tracking_server_stopped_mid_sweep_loses_no_metric(cluster, tmp_path):
    argv = _sweep_argv(tmp_path, cluster, LONG_SPACE)
    job = _submit(cluster, tmp_path, argv)
    try:
        _wait_for_checkpoints(cluster, job, tmp_path, 2)
        cluster.stop_mlflow()
        time.sleep(15)  # trials go on reporting meanwhile
    finally:
        if cluster.server is None:
            cluster.start_mlflow()
            cluster.wait_for_mlflow()
    status, logs = _finish(cluster, job)
    assert status == "SUCCEEDED", logs[-3000:]
    assert "does not answer" in logs and "answers again" in logs
    client, trials = _finished_with_every_epoch_once(cluster, tmp_path)
    for run in trials.values():
        values = client.get_metric_history(run.info.run_id, "val_ndcg_at_10")
        assert len(values) == 10  # every evaluation, the ones made while it was down too
