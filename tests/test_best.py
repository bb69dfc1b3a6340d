"""The steps after the search as pure functions of hand-built trial records: the best
checkpoint, the search's cost and the curves (no Ray, no model, milliseconds)."""

from __future__ import annotations

import pytest

from recsys.tuning.best import ModelFailed, choose, search_cost, trial_curves
from recsys.tuning.records import TrialEnd, TrialRecord


def _trial(trial_id, values, end=TrialEnd.FINISHED, checkpoints=None, error=None, start=0.0):
    """A trial that reported ``values`` (epoch -> val ndcg@10), one second per epoch."""
    reports = tuple({"epoch": e, "val_ndcg_at_10": v, "val_mrr_at_10": 1 - v} for e, v in values)
    kept = checkpoints if checkpoints is not None else [e for e, _ in values[-1:]]
    return TrialRecord(
        trial_id=trial_id,
        path=f"/runs/{trial_id}",
        model="m",
        config={"lr": float(len(trial_id))},
        seed=7,
        reports=reports,
        checkpoints=tuple((f"{trial_id}/{e}", r) for r in reports for e in kept if r["epoch"] == e),
        end=end,
        error=error,
        started_at=start if values else None,
        last_report_at=start + values[-1][0] if values else None,
        train_seconds=float(values[-1][0]) if values else 0.0,
    )


def test_choose_takes_the_best_kept_checkpoint_over_trials_and_epochs():
    a = _trial("a", [(1, 0.2), (2, 0.5), (3, 0.4)], checkpoints=[2, 3])  # best kept: epoch 2
    b = _trial("bb", [(1, 0.3), (2, 0.45)], end=TrialEnd.STOPPED)
    chosen = choose([a, b], "ndcg@10")
    assert (chosen.trial_id, chosen.checkpoint, chosen.epoch) == ("a", "a/2", 2)
    assert chosen.value == 0.5 and chosen.config == {"lr": 1.0} and chosen.seed == 7
    # Another target, another choice: the target's name decides, whatever it is.
    assert choose([a, b], "mrr@10").checkpoint == "a/3"  # mrr 0.6, kept


def test_a_tie_keeps_the_first_trial():
    assert choose([_trial("a", [(1, 0.5)]), _trial("b", [(1, 0.5)])], "ndcg@10").trial_id == "a"


def test_a_model_without_a_usable_checkpoint_fails_in_one_line():
    failed = _trial("a", [], end=TrialEnd.FAILED, error="Traceback...\nValueError: diverged")
    with pytest.raises(ModelFailed, match="every trial of 'm' failed; first error: ValueError"):
        choose([failed, failed], "ndcg@10")
    with pytest.raises(ModelFailed, match="no trial of 'm' reported val_hit_at_5"):
        choose([_trial("a", [(1, 0.5)])], "hit@5")


def test_search_cost_counts_trials_epochs_and_the_span():
    records = [
        _trial("a", [(1, 0.2), (10, 0.5)], start=100.0),
        _trial("b", [(1, 0.3), (4, 0.4)], end=TrialEnd.STOPPED, start=105.0),
        _trial("c", [], end=TrialEnd.FAILED, error="x"),
    ]
    cost = search_cost(records)
    assert (cost.trials, cost.stopped, cost.failed, cost.epochs) == (3, 1, 1, 14)
    assert cost.seconds == 14.0 and cost.wall_seconds == 110.0 - 100.0


def test_curves_list_every_report_and_mark_stopped_trials():
    rows = trial_curves(
        [_trial("a", [(1, 0.2), (2, 0.5)]), _trial("b", [(1, 0.3)], end=TrialEnd.STOPPED)],
        "val_ndcg_at_10",
    )
    assert [(r["trial_id"], r["epoch"], r["value"], r["stopped_early"]) for r in rows] == [
        ("a", 1, 0.2, False),
        ("a", 2, 0.5, False),
        ("b", 1, 0.3, True),
    ]
