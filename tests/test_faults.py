"""Faults on real processes: the sweep driver interrupted from the terminal, or killed, then
resumed.

A ``python launch/sweep.py`` process on small synthetic data is sent SIGINT to its whole process
group (what a terminal's Ctrl-C does), or SIGKILL to itself alone, in the middle of a trial.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from recsys.tuning import snapshot, tracking
from recsys.tuning.space import default_space_dir

REPO = Path(__file__).resolve().parents[1]
BPR_SPACE = """
budget: {max_epochs: 60, grace_period: 60, reduction_factor: 2, eval_every: 2, num_samples: 2}
params:
  dim: 8
  lr: {choice: [0.001, 0.01]}
"""

SLOW_BPR_SPACE = BPR_SPACE + "  batch_size: 64\n"  # slower epochs: a trial outlasts a snapshot


def _sweep_command(tmp_path: Path, bpr_space: str = BPR_SPACE) -> list[str]:
    spaces = tmp_path / "spaces"
    spaces.mkdir(exist_ok=True)
    (spaces / "bpr_mf.yaml").write_text(bpr_space)
    shutil.copy(default_space_dir() / "popularity.yaml", spaces)
    return [
        sys.executable,
        str(REPO / "launch" / "sweep.py"),
        "--dataset", "synthetic",
        "--dataset-option", "n_users=300",
        "--dataset-option", "n_items=200",
        "--dataset-option", "n_interactions=9000",
        "--models", "popularity,bpr_mf",
        "--space-dir", str(spaces),
        "--results-dir", str(tmp_path / "results"),
        "--storage-path", str(tmp_path / "ray"),
        "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
        "--max-concurrent-trials", "1",
        "--quiet",
    ]  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RECSYS_TUNE_DATA": str(tmp_path / "data"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def _start(tmp_path: Path, bpr_space: str = BPR_SPACE) -> subprocess.Popen:
    """A sweep process in its own process group (as a terminal gives it)."""
    return subprocess.Popen(
        _sweep_command(tmp_path, bpr_space),
        cwd=tmp_path,
        env=_env(tmp_path),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_mid_trial(tmp_path: Path, proc: subprocess.Popen) -> subprocess.Popen:
    """``proc``, once its BPR-MF trial has saved a checkpoint after epoch 4."""
    deadline = time.time() + 240
    # Checkpoints neither best nor latest are deleted at once: look for any past the second.
    while not any(
        int(p.name.rsplit("_", 1)[1]) >= 2
        for p in tmp_path.glob("ray/*/search/*model=bpr_mf*/checkpoint_*")
    ):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    return proc


def _start_mid_trial(tmp_path: Path, bpr_space: str = BPR_SPACE) -> subprocess.Popen:
    """A sweep process (see :func:`_start`), returned mid-trial (:func:`_wait_mid_trial`)."""
    return _wait_mid_trial(tmp_path, _start(tmp_path, bpr_space))


def _resume(tmp_path: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(REPO / "launch" / "sweep.py"), "--resume"]
    argv += ["--results-dir", str(tmp_path / "results")]
    return subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)


def _one_finished_run_per_trial(tmp_path: Path) -> None:
    """After the resume: the leaderboard, the sweep finished, every trial's MLflow run once,
    FINISHED, with every evaluation logged once, and a trial that went on from a checkpoint."""
    results = tmp_path / "results"
    board = pd.read_csv(results / "leaderboard.csv")
    assert sorted(board["model"]) == ["bpr_mf", "popularity"]
    assert board["trials_failed"].sum() == 0
    state = json.loads((results / ".sweep" / "sweep.json").read_text())
    assert state["status"] == "finished"
    uri = state["tracking_uri"]
    client = tracking.client(uri)
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert all(r.info.status == "FINISHED" for r in children)
    trials = tracking.find_child_runs(uri, parent.info.run_id, "trial", "bpr_mf")
    assert len(trials) == 2
    for run in trials.values():
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch")]
        assert steps == list(range(2, 61, 2))  # every evaluation logged once
    assert len(tracking.find_child_runs(uri, parent.info.run_id, "trial", "popularity")) == 1
    restarts = [
        json.loads(line).get("resumed_from_epoch", 0)
        for path in tmp_path.glob("ray/*/search/*model=bpr_mf*/result.json")
        for line in path.read_text().splitlines()
    ]
    assert max(restarts) >= 2, restarts  # not back to epoch 0


@pytest.mark.slow
def test_ctrl_c_mid_trial_ends_honestly_and_resume_finishes_from_checkpoints(tmp_path):
    proc = _start(tmp_path)
    # A second sweep on the same results directory, once the first has claimed it: refused in
    # one line, before anything of its own starts. The first is held still meanwhile (SIGSTOP to
    # the driver, which claims before its Ray starts), so that it is mid-trial only afterwards.
    lock = tmp_path / "results" / ".sweep" / "lock"
    while not (lock.exists() and lock.read_text() == f"{proc.pid}\n"):  # written once held
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(
            _sweep_command(tmp_path), cwd=tmp_path, env=_env(tmp_path), capture_output=True,
            text=True,
        )  # fmt: skip
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"is in use by another sweep (pid {proc.pid})" in second.stderr
    _wait_mid_trial(tmp_path, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=180)

    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    resume = re.search(r"continue it with (python launch/sweep.py --resume --results-dir \S+)", err)
    assert resume, err
    results = tmp_path / "results"
    assert not (results / "leaderboard.csv").exists() and not (results / "leaderboard.md").exists()
    assert "| bpr_mf |" not in out  # no leaderboard that looks final
    state = json.loads((results / ".sweep" / "sweep.json").read_text())
    assert state["status"] == "interrupted"
    uri = state["tracking_uri"]
    client = tracking.client(uri)
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "KILLED" and parent.data.tags[tracking.TAG_STATUS] == "interrupted"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert children and all(r.info.status != "RUNNING" for r in children)

    argv = [sys.executable, str(REPO / "launch" / "sweep.py"), *resume.group(1).split()[2:]]
    done = subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    _one_finished_run_per_trial(tmp_path)


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` (Ray's head processes, its workers...), with its command."""
    out = subprocess.run(["ps", "-eww", "-o", "pid=,ppid=,args="], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    args: dict[int, str] = {}
    for line in out.stdout.splitlines():
        child, parent, command = (
            line.split(None, 2) if len(line.split()) > 2 else (*line.split(), "")
        )
        children.setdefault(int(parent), []).append(int(child))
        args[int(child)] = command
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = args[child]
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # it exited since the signal
        return False
    return "\nState:\tZ" not in status  # zombies are gone


def _stale_snapshot(tmp_path: Path, proc: subprocess.Popen) -> tuple[Path, bytes]:
    """A snapshot of the search (its path and bytes) that names a BPR-MF checkpoint the trial
    has deleted since (``num_to_keep``): what a driver killed at that moment leaves behind.
    Every version of the snapshot is kept until one of them is such a snapshot."""
    deadline = time.time() + 240
    (experiment,) = tmp_path.glob("ray/*/search")
    seen: dict[bytes, tuple[Path, dict[str, str]]] = {}
    while True:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        path = snapshot.newest(str(experiment))[2]
        text = Path(path).read_bytes() if path else b""
        if text and text not in seen:
            with contextlib.suppress(ValueError):  # a file caught while being written
                named = snapshot.latest_checkpoints(str(experiment))
                seen[text] = (Path(path), {t: n for t, n in named.items() if "bpr_mf" in t})
        for stale, (path, named) in seen.items():
            if any(not (experiment / t / n).exists() for t, n in named.items()):
                return path, stale
        time.sleep(0.02)


@pytest.mark.slow
def test_a_driver_killed_leaves_no_ray_process_and_resume_finishes(tmp_path):
    """The driver killed with ``kill -9`` while its last snapshot names a checkpoint deleted
    since (the race of a snapshot taken every few seconds and ``num_to_keep``), forced on every
    run: the snapshot left behind is one taken before the trial deleted that checkpoint."""
    proc = _start_mid_trial(tmp_path, SLOW_BPR_SPACE)
    ray_processes = _descendants(proc.pid)
    assert any("raylet" in c for c in ray_processes.values()), ray_processes
    path, stale = _stale_snapshot(tmp_path, proc)
    proc.kill()  # kill -9 of the driver alone, not of its process group
    proc.communicate()
    for old in path.parent.glob("experiment_state-*.json"):
        old.unlink()
    path.write_bytes(stale)

    # Ray's two agents see their raylet die at once, then give the dead GCS a last error report,
    # with a timeout of 60 s fixed inside Ray (ray._private.utils.publish_error_to_driver).
    deadline = time.time() + 90
    while (
        left := {p: c for p, c in ray_processes.items() if _alive(p)}
    ) and time.time() < deadline:
        time.sleep(0.5)
    assert not left, left  # the local Ray it started went with it
    state = json.loads((tmp_path / "results" / ".sweep" / "sweep.json").read_text())
    assert state["status"] == "running"  # a driver killed outright cannot say more

    done = _resume(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    _one_finished_run_per_trial(tmp_path)


@pytest.mark.slow
def test_sigterm_during_the_seed_runs_ends_honestly_and_resume_finishes(tmp_path):
    """SIGTERM after the search, while the extra seeds of the best config train: exit 130, the
    state and runs say interrupted, no leaderboard; --resume runs the seeds and finishes."""
    argv = _sweep_command(tmp_path) + ["--seeds", "4"]
    # Slower epochs (small batches), so the seed runs last long enough to be interrupted.
    (tmp_path / "spaces" / "bpr_mf.yaml").write_text(SLOW_BPR_SPACE)
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=_env(tmp_path), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    state_file = tmp_path / "results" / ".sweep" / "sweep.json"
    deadline = time.time() + 300
    while not (state_file.exists() and json.loads(state_file.read_text())["search_seconds"] > 0):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.terminate()  # SIGTERM to the driver alone, as a scheduler sends it
    out, err = proc.communicate(timeout=180)

    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert re.search(r"continue it with python launch/sweep.py --resume --results-dir \S+", err)
    results = tmp_path / "results"
    assert not (results / "leaderboard.csv").exists()
    state = json.loads(state_file.read_text())
    assert state["status"] == "interrupted"
    client = tracking.client(state["tracking_uri"])
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "KILLED" and parent.data.tags[tracking.TAG_STATUS] == "interrupted"

    done = _resume(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    board = pd.read_csv(results / "leaderboard.csv").set_index("model")
    assert board.loc["bpr_mf", "seeds"] == 4 and board.loc["bpr_mf", "test_ndcg_at_10_std"] > 0
    best = tracking.find_child_runs(state["tracking_uri"], parent.info.run_id, "best", "bpr_mf")
    (best_run,) = best.values()
    seed_runs = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{best_run.info.run_id}'"
    )
    assert len(seed_runs) == 4 and all(r.info.status == "FINISHED" for r in seed_runs)


@pytest.mark.slow
def test_a_tracking_database_deleted_mid_search_loses_no_result_and_resume_logs_it(tmp_path):
    proc = _start_mid_trial(tmp_path)
    (tmp_path / "mlflow.db").unlink()  # a user's `rm mlflow.db` while the search runs
    out, err = proc.communicate(timeout=300)

    # The search and the results are complete; the exit status and the summary say what was
    # not logged, in lines of their own, without a traceback or a wait for a server.
    assert proc.returncode == 1, out + err
    # The driver's own lines (a worker Ray stops at the end of the search may print Python's
    # "Exception ignored" note when its SIGTERM lands inside a weakref callback).
    driver = "\n".join(line for line in err.splitlines() if " pid=" not in line)
    assert "Traceback" not in driver and "sqlalchemy" not in driver.lower(), err
    assert err.count("is broken: its database file") == 1, err
    results = tmp_path / "results"
    board = pd.read_csv(results / "leaderboard.csv")
    assert sorted(board["model"]) == ["bpr_mf", "popularity"]
    assert "MLflow:   NOT LOGGED" in out and "log the sweep again with" in out
    state = json.loads((results / ".sweep" / "sweep.json").read_text())
    assert state["status"] == "untracked" and "was deleted" in state["tracking_problem"]

    # The advice works: the resume logs the whole sweep into a new database where it was.
    done = _resume(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    again = pd.read_csv(results / "leaderboard.csv")
    pd.testing.assert_series_equal(again["test_ndcg_at_10"], board["test_ndcg_at_10"])
    state = json.loads((results / ".sweep" / "sweep.json").read_text())
    assert state["status"] == "finished" and state["tracking_problem"] is None
    uri = state["tracking_uri"]
    client = tracking.client(uri)
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    trials = tracking.find_child_runs(uri, parent.info.run_id, "trial", "bpr_mf")
    assert len(trials) == 2
    for run in trials.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags[tracking.TAG_STATUS] == "completed"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_ndcg_at_10")]
        assert steps == list(range(2, 61, 2))
    best = tracking.find_child_runs(uri, parent.info.run_id, "best")
    assert sorted(r.data.tags[tracking.TAG_MODEL] for r in best.values()) == [
        "bpr_mf",
        "popularity",
    ]
    champion = client.get_model_version_by_alias("recsys-tune-synthetic", "champion")
    assert champion.tags["recsys.best_run_id"] in {r.info.run_id for r in best.values()}


_FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size=4m tmpfs "$RESULTS" || exit 97
"$@" > "$OUT/first.out" 2> "$OUT/first.err" &
sweep=$!
while [ ! -e "$OUT/fill" ] && kill -0 "$sweep" 2>/dev/null; do sleep 0.1; done
dd if=/dev/zero of="$RESULTS/filler" bs=64k 2> /dev/null  # until the disk is full
wait "$sweep"; echo $? > "$OUT/first.rc"
rm -f "$RESULTS/filler"  # the user frees space
"$1" "$2" --resume --results-dir "$RESULTS" > "$OUT/resume.out" 2> "$OUT/resume.err"
echo $? > "$OUT/resume.rc"
cp -r "$RESULTS" "$OUT/results"  # the disk goes with the mount namespace
"""


def _private_mount() -> list[str] | None:
    """``unshare`` arguments giving a command a mount namespace of its own (None: this machine
    allows none, e.g. no user namespaces; the test is then skipped, saying why)."""
    prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


@pytest.mark.slow
def test_a_full_disk_while_results_are_written_ends_in_one_line_and_resume_finishes(tmp_path):
    prefix = _private_mount()
    if prefix is None:
        pytest.skip("no mount namespace here (unshare --mount): a real full disk needs one")
    results, out = tmp_path / "results", tmp_path / "out"
    results.mkdir()
    out.mkdir()
    command = _sweep_command(tmp_path, SLOW_BPR_SPACE)
    proc = subprocess.Popen(
        [*prefix, "bash", "-c", _FULL_DISK_SCRIPT, "full-disk", *command],
        cwd=tmp_path, env={**_env(tmp_path), "RESULTS": str(results), "OUT": str(out)},
        start_new_session=True,
    )  # fmt: skip
    _wait_mid_trial(tmp_path, proc)  # the results disk fills while the search runs
    (out / "fill").touch()
    assert proc.wait(timeout=600) == 0
    first_err = (out / "first.err").read_text()
    assert (out / "first.rc").read_text().strip() == "1", first_err
    driver = [line for line in first_err.splitlines() if " pid=" not in line]
    assert "Traceback" not in "\n".join(driver), first_err
    ending = [line for line in driver if line.startswith("failed: ")]
    assert len(ending) == 1 and "No space left on device" in ending[0], first_err
    assert f"--resume --results-dir {results}" in ending[0]

    resume_out = (out / "resume.out").read_text()
    assert (out / "resume.rc").read_text().strip() == "0", (
        resume_out + (out / "resume.err").read_text()
    )
    board = pd.read_csv(out / "results" / "leaderboard.csv")
    assert sorted(board["model"]) == ["bpr_mf", "popularity"]
    state = json.loads((out / "results" / ".sweep" / "sweep.json").read_text())
    assert state["status"] == "finished"
    parent = tracking.client(state["tracking_uri"]).get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
