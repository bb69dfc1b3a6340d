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
