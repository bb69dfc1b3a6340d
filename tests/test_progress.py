"""The console's progress lines: counts by model from Tune's trials, known answers."""

from types import SimpleNamespace

from recsys.tuning.progress import ProgressLines
from recsys.tuning.trainable import MODEL_KEY


def _trial(model, status, epoch=0, best=None):
    return SimpleNamespace(
        config={MODEL_KEY: model},
        status=status,
        last_result={"epoch": epoch},
        metric_analysis={"val_ndcg_at_10": {"max": best}} if best is not None else {},
    )


def test_one_line_per_ended_trial_with_the_models_counts():
    lines = []
    progress = ProgressLines({"a": 5, "bb": 2}, {"a": 10, "bb": 1}, "ndcg@10", lines.append)
    trials = [
        _trial("a", "TERMINATED", 10, 0.25),  # finished its budget
        _trial("a", "TERMINATED", 3, 0.31),  # stopped by ASHA
        _trial("a", "ERROR", 2),
        _trial("a", "RUNNING", 4, 0.2),
        _trial("bb", "PENDING"),
    ]
    ending = _trial("a", "RUNNING", 10, 0.1)  # Tune calls back before marking it ended
    progress.on_trial_complete(0, [*trials, ending], ending)
    (line,) = lines
    assert line.endswith(
        "a   running 1  finished 2  stopped 1  failed 1  of 5  best val ndcg@10 0.3100"
    )
    assert line.startswith("[  0m0")
    progress.on_trial_error(0, trials, trials[2])
    assert "running 1  finished 1  stopped 1  failed 1" in lines[-1]


def test_a_model_with_nothing_reported_shows_a_dash_and_quiet_minutes_print_nothing():
    lines = []
    progress = ProgressLines({"bb": 2}, {"bb": 1}, "ndcg@10", lines.append)
    trials = [_trial("bb", "RUNNING")]
    progress.on_step_end(0, trials)  # under a minute since the start: no line
    assert lines == []
    progress.last_beat -= 61
    progress.on_step_end(1, trials)
    assert lines[-1].endswith(
        "bb  running 1  finished 0  stopped 0  failed 0  of 2  best val ndcg@10 -"
    )
