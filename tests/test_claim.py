"""The exclusive claim on a results directory (the real-process case is in ``test_faults.py``:
a second sweep started on the folder of a running one)."""

from __future__ import annotations

import os

import pytest

from recsys.errors import RecsysError
from recsys.tuning.claim import Claim


def test_a_claimed_folder_is_refused_until_it_is_let_go(tmp_path):
    results = tmp_path / "a" / "results"
    first = Claim.take(results, ".sweep")
    assert first.lock.read_text() == f"{os.getpid()}\n"
    with pytest.raises(RecsysError, match=f"in use by another sweep \\(pid {os.getpid()}\\)"):
        Claim.take(results, ".sweep")
    first.release()
    Claim.take(results, ".sweep").release()  # free again; the lock file stays for the sweep


def test_undo_removes_only_what_the_claim_made(tmp_path):
    Claim.take(tmp_path / "new" / "results", ".sweep").release(undo=True)
    assert list(tmp_path.iterdir()) == []  # a refused sweep leaves nothing behind
    kept = tmp_path / "kept"
    (kept / ".sweep").mkdir(parents=True)
    (kept / ".sweep" / "sweep.json").write_text("{}")
    Claim.take(kept, ".sweep").release(undo=True)
    assert sorted(p.name for p in (kept / ".sweep").iterdir()) == ["sweep.json"]
