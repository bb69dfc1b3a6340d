"""The sweep's saved state: credentials left out of ``sweep.json`` and given back on resume."""

from __future__ import annotations

import json

import pytest

from recsys.errors import RecsysError
from recsys.tuning.config import SweepConfig
from recsys.tuning.state import SweepState

URI = "http://alice:s3cret@127.0.0.1:5000"


def _started(tmp_path) -> SweepState:
    cfg = SweepConfig(results_dir=str(tmp_path / "results"), tracking_uri=URI, command="x")
    state = SweepState.create(cfg)
    state.save()
    state.release()
    return state


def test_the_saved_state_holds_no_credentials(tmp_path):
    _started(tmp_path)
    text = (tmp_path / "results" / ".sweep" / "sweep.json").read_text()
    assert "s3cret" not in text and "alice" not in text
    assert json.loads(text)["tracking_uri"] == "http://***@127.0.0.1:5000"


def test_a_resume_takes_the_credentials_from_the_flag_or_the_environment(tmp_path, monkeypatch):
    _started(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    where = str(tmp_path / "results")
    with pytest.raises(RecsysError, match="had credentials, which are not saved"):
        SweepState.resume(SweepConfig(resume=True, results_dir=where))
    with pytest.raises(RecsysError, match="names another"):
        SweepState.resume(SweepConfig(resume=True, results_dir=where, tracking_uri="http://x:1"))
    state = SweepState.resume(SweepConfig(resume=True, results_dir=where, tracking_uri=URI))
    assert state.tracking_uri == URI
    state.release()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", URI)
    state = SweepState.resume(SweepConfig(resume=True, results_dir=where))
    assert state.tracking_uri == URI
    state.release()
