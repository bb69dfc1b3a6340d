"""The leaderboard from hand-built outcomes and per-user metrics: ranked by the target whatever
its name, tested on it, the champion its first row with scores, the table's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.tuning.leaderboard import Leaderboard
from recsys.tuning.outcome import ModelOutcome, SearchCost

USERS = np.arange(40)


def _outcome(model, ndcg10, mrr10, run_id=None):
    test = {"ndcg@10": ndcg10, "recall@10": ndcg10, "mrr@10": mrr10}
    return ModelOutcome(
        model=model,
        trial_id=f"t-{model}",
        config={},
        seed=1,
        best_epoch=3,
        val=dict(test),
        test=test,
        trials=2,
        epochs=6,
        wall_seconds=1.0,
        seconds_per_epoch=0.1,
        best_run_id=run_id or f"run-{model}",
        seeds=[1],
        seed_tests=[dict(test)],
    )


def _per_user(ndcg, mrr):
    """Users whose values average to ``ndcg`` and ``mrr``: 0/1 per user, the first ones hit."""
    hits = lambda mean: (USERS < round(mean * len(USERS))).astype(float)  # noqa: E731
    shown = [f"test_{m}_at_{k}" for k in (10, 20) for m in ("recall", "ndcg", "precision", "hit")]
    frame = pd.DataFrame({"user_id": USERS, "seed": 1, **{c: hits(ndcg) for c in shown}})
    frame["test_mrr_at_10"] = hits(mrr)
    return frame


# "a" is best on ndcg@10, "b" on mrr@10; "c" has no scores; the list starts with the worst.
SCORES = {"c": None, "b": (0.25, 0.9), "a": (0.75, 0.1)}


def _board(metric):
    outcomes = [
        _outcome(m, *s)
        if s
        else ModelOutcome.failed(m, "every trial failed", SearchCost(2, 0, 2, 0, 0.0, 0.0))
        for m, s in SCORES.items()
    ]
    per_user = {m: _per_user(*s) for m, s in SCORES.items() if s}
    return Leaderboard.build(outcomes, metric, per_user, seed=0)


@pytest.mark.parametrize(("metric", "order"), [("ndcg@10", "abc"), ("mrr@10", "bac")])
def test_rank_tests_and_champion_follow_the_target(metric, order):
    board = _board(metric)
    assert "".join(r.model for r in board.rows) == order
    best, other, failed = board.rows
    assert board.best_model() is best and best.tied_with_best and best.p_wilcoxon is None
    assert other.p_wilcoxon < 0.05 and other.p_ttest < 0.05 and other.tied_with_best is False
    assert failed.model == "c" and not failed.has_scores and failed.tied_with_best is None
    key = f"test_{metric.replace('@', '_at_')}"
    low, high = best.intervals[key]
    assert low < best.test(metric) < high


def test_a_target_outside_the_shown_metrics_gets_its_columns():
    frame = _board("mrr@10").to_frame()
    assert {
        "val_mrr_at_10",
        "test_mrr_at_10",
        "test_mrr_at_10_ci_low",
        "test_mrr_at_10_std",
    } <= set(frame.columns)
    assert list(frame["model"]) == ["b", "a", "c"]
    assert frame.loc[0, "best_run_id"] == "run-b" and frame.loc[2, "error"]


def test_the_default_columns_keep_their_order():
    columns = list(_board("ndcg@10").to_frame().columns)
    metrics = [f"{m}_at_{k}" for k in (10, 20) for m in ("recall", "ndcg", "precision", "hit")]
    tests = [f"test_{m}{s}" for m in metrics for s in ("", "_ci_low", "_ci_high", "_std")]
    assert columns == [
        "model",
        *(f"val_{m}" for m in metrics),
        *tests,
        "seeds",
        "epochs",
        "trials",
        "trials_finished",
        "trials_stopped",
        "trials_failed",
        "wall_seconds",
        "seconds_per_epoch",
        "best_epoch",
        "best_trial",
        "best_run_id",
        "error",
        "p_wilcoxon",
        "p_ttest",
        "tied_with_best",
    ]


def test_without_per_user_metrics_there_are_no_statistics():
    board = Leaderboard.build([_outcome("a", 0.5, 0.5)], "ndcg@10")
    frame = board.to_frame()
    assert board.best_model().model == "a" and not board.tested
    assert "p_wilcoxon" not in frame and "test_ndcg_at_10_ci_low" not in frame
