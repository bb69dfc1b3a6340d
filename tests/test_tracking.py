"""The MLflow store: checked before a sweep writes anything, created by one process at a time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Waits for a shared start time, so that the processes open the new store at the same moment.
OPEN_AT = """
import sys, time
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
from recsys.tuning import tracking
uri = f"sqlite:///{sys.argv[1]}"
tracking.open_store(uri)
tracking.experiment_id(uri, "exp-" + sys.argv[3])
"""


@pytest.mark.slow
def test_sweeps_starting_together_share_a_new_sqlite_store(tmp_path):
    """Three processes open a new sqlite store at once; without the lock, MLflow's schema
    migration runs in each and all of them fail (and the file stays broken)."""
    db = tmp_path / "mlflow.db"
    start = time.time() + 8  # after every process has imported MLflow
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, str(db), str(start), str(i)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs[0][-2000:]
    from mlflow.tracking import MlflowClient

    names = {e.name for e in MlflowClient(f"sqlite:///{db}").search_experiments()}
    assert {"exp-0", "exp-1", "exp-2"} <= names


class _Server:
    """A stand-in for a tracking server that is down for ``down`` calls, then answers."""

    def __init__(self, down: int) -> None:
        self.down, self.log = down, []

    def call(self, name: str):
        def send() -> None:
            from mlflow.exceptions import MlflowException

            if self.down > 0:
                self.down -= 1
                raise MlflowException("API request to http://127.0.0.1:1/api failed with exception")
            self.log.append(name)

        return send


def test_updates_wait_in_order_while_the_server_is_down_then_all_arrive(monkeypatch, capsys):
    from recsys.tuning import trial_runs

    monkeypatch.setattr(trial_runs, "RETRY_EVERY_S", 0.0)
    server = _Server(down=2)
    outbox = trial_runs.Outbox("http://127.0.0.1:1")
    outbox.put(server.call("create"))  # down: waits
    outbox.put(server.call("epoch 1"))  # retried at once (RETRY_EVERY_S 0): down again
    assert server.log == [] and len(outbox) == 2
    outbox.put(server.call("epoch 2"))  # answers: everything, in order
    assert server.log == ["create", "epoch 1", "epoch 2"] and len(outbox) == 0
    err = capsys.readouterr().err  # warnings: on stderr, also with --quiet
    assert "does not answer" in err and "answers again" in err


def test_a_server_that_never_comes_back_fails_with_the_count(monkeypatch):
    from recsys.tuning import trial_runs

    monkeypatch.setattr(trial_runs, "RETRY_EVERY_S", 0.01)
    outbox = trial_runs.Outbox("http://127.0.0.1:1")
    server = _Server(down=10**9)
    for i in range(3):
        outbox.put(server.call(f"epoch {i}"))
    with pytest.raises(trial_runs.TrackingLost, match="3 trial updates were not logged"):
        outbox.drain(timeout=0.05)


def test_a_refused_call_is_not_retried():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    from recsys.tuning import trial_runs

    def bad() -> None:
        raise MlflowException("bad param", error_code=INVALID_PARAMETER_VALUE)

    with pytest.raises(MlflowException, match="bad param"):
        trial_runs.Outbox("sqlite:///x.db").put(bad)


def test_one_try_per_call_while_buffering_and_settings_restored(monkeypatch):
    from recsys.tuning import trial_runs

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    seen = {}

    def look() -> None:
        import os

        seen.update({k: os.environ.get(k) for k in trial_runs._ONE_TRY})

    trial_runs.Outbox("http://x").put(look)
    assert seen == trial_runs._ONE_TRY
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_a_restored_search_gets_the_sweeps_live_trial_callback_without_credentials():
    import pickle

    from recsys.tuning import trial_runs

    live = trial_runs.MlflowTrialCallback("http://u:secret@h:1", "parent", {"m": 3}, 0, "s1")
    assert pickle.loads(pickle.dumps(live)) is live  # what the driver drains and checks
    stale = pickle.dumps(trial_runs.MlflowTrialCallback("http://u:secret@h:1", "p", {}, 0, "s2"))
    assert b"secret" not in stale
    trial_runs._LIVE.pop("s2")
    copy = pickle.loads(stale)  # another process: a copy, its credentials left out
    assert copy.parent_run_id == "p" and "secret" not in copy.tracking_uri


class _Client:
    """Records the metrics each run is sent (MLflow's client, without a store)."""

    def __init__(self) -> None:
        self.metrics: dict[str, dict[str, float]] = {}

    def log_batch(self, run_id, metrics=(), params=()):
        self.metrics.setdefault(run_id, {}).update({m.key: m.value for m in metrics})


def test_statistics_cover_beyond_accuracy_and_sampled_metrics_and_both_orders(monkeypatch):
    """Each best run gets the intervals of the per-user beyond-accuracy (novelty) and sampled
    metrics, the spread of every one, and the model's place in both orders."""
    import dataclasses

    from test_leaderboard import _outcome, _per_user

    from recsys.tuning import tracking
    from recsys.tuning.leaderboard import Leaderboard

    client = _Client()
    monkeypatch.setattr(tracking, "client", lambda uri: client)
    outcomes, per_user = [], {}
    for model, ndcg, sampled, novelty in (("a", 0.75, 0.1, 2.0), ("b", 0.25, 0.9, 3.0)):
        o = _outcome(model, ndcg, 0.5)
        test = {**o.test, "sampled_ndcg@10": sampled, "novelty@10": novelty}
        outcomes.append(dataclasses.replace(o, test=test, test_std={"gini@10": 0.01}))
        frame = _per_user(ndcg, 0.5)
        frame["test_novelty_at_10"] = novelty
        frame["test_sampled_ndcg_at_10"] = (frame["user_id"] % 2).astype(float)  # mean 0.5
        per_user[model] = frame
    board = Leaderboard.build(outcomes, "ndcg@10", per_user, negatives=99)
    tracking.log_statistics("sqlite:///unused.db", board)
    a, b = client.metrics["run-a"], client.metrics["run-b"]
    assert a["test_novelty_at_10_ci_low"] == a["test_novelty_at_10_ci_high"] == 2.0
    assert 0 < a["test_sampled_ndcg_at_10_ci_low"] < 0.5 < a["test_sampled_ndcg_at_10_ci_high"]
    assert a["test_gini_at_10_std"] == 0.01 and "test_gini_at_10_ci_low" not in a
    assert (a["rank_full"], a["rank_sampled"]) == (1, 2)
    assert (b["rank_full"], b["rank_sampled"]) == (2, 1)
    client.metrics.clear()
    unsampled = Leaderboard.build(outcomes, "ndcg@10", per_user)  # no sampled protocol
    tracking.log_statistics("sqlite:///unused.db", unsampled)
    assert "rank_sampled" not in client.metrics["run-a"]
    assert "test_sampled_ndcg_at_10_ci_low" not in client.metrics["run-a"]


def test_the_sweeps_run_records_the_reported_cutoffs_and_sampled_negatives():
    from recsys.tuning import tracking
    from recsys.tuning.config import SweepConfig
    from recsys.tuning.resources import TrialResources

    cfg = SweepConfig(models=("popularity",), report_ks=(5, 10, 50), sampled_negatives=99)
    params = tracking.sweep_params(cfg, TrialResources(1.0, 0.0), {})
    assert params["report_ks"] == "5,10,50" and params["sampled_negatives"] == 99
