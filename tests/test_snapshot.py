"""Tune's experiment snapshot repaired before a resume (the real-process case is in
``test_faults.py``: a driver killed while its snapshot names a deleted checkpoint)."""

from recsys.tuning.snapshot import replacement


def test_a_trial_whose_checkpoint_is_gone_goes_on_from_the_next_one_left():
    names = {"checkpoint_000001", "checkpoint_000003", "checkpoint_000010"}
    assert replacement("checkpoint_000002", names) == "checkpoint_000003"  # the next registered
    assert replacement("checkpoint_000011", names) == "checkpoint_000010"  # else its best
    assert replacement("checkpoint_000002", set()) is None  # else from epoch 0
