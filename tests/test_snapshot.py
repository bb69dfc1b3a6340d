"""Tune's experiment snapshot repaired before a resume (the real-process case is in
``test_faults.py``: a driver killed while its snapshot names a deleted checkpoint)."""

from recsys.tuning.snapshot import replacement


def test_a_trial_whose_checkpoint_is_gone_goes_on_from_the_next_one_left():
    names = {"checkpoint_000001", "checkpoint_000003", "checkpoint_000010"}
    assert replacement("checkpoint_000002", names) == "checkpoint_000003"  # the next registered
    assert replacement("checkpoint_000011", names) == "checkpoint_000010"  # else its best
    assert replacement("checkpoint_000002", set()) is None  # else from epoch 0


def test_state_files_cut_short_by_a_kill_come_back_from_the_staged_copy(tmp_path, monkeypatch):
    import pickle

    import pytest

    from recsys.errors import RecsysError
    from recsys.tuning.snapshot import restore_damaged

    experiment = tmp_path / "storage" / "search"
    experiment.mkdir(parents=True)
    (experiment / "experiment_state-s1.json").write_text('{"trial_data": []}')
    (experiment / "searcher-state-s1.pkl").write_bytes(b"")  # the copy the kill cut short
    # Cut short too (a pickle, whatever its name says).
    (experiment / "search_gen_state-s1.json").write_bytes(pickle.dumps({"a": 1})[:5])
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "tmp"))
    staged = tmp_path / "tmp" / "ray" / "session_1" / "artifacts" / "t0" / "search"
    (staged / "driver_artifacts").mkdir(parents=True)
    (staged / "driver_artifacts" / "searcher-state-s1.pkl").write_bytes(pickle.dumps({"n": 3}))
    with pytest.raises(RecsysError, match="search_gen_state-s1.json: the search's saved state"):
        restore_damaged(str(experiment))  # no whole copy of that one: the search cannot go on
    (staged / "driver_artifacts" / "search_gen_state-s1.json").write_bytes(pickle.dumps({"a": 1}))
    assert restore_damaged(str(experiment)) == ["search_gen_state-s1.json", "searcher-state-s1.pkl"]
    assert pickle.loads((experiment / "searcher-state-s1.pkl").read_bytes()) == {"n": 3}
    assert restore_damaged(str(experiment)) == []  # whole: left alone
