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
    """The ranking metrics' columns as before; then (added deliberately with the
    beyond-accuracy metrics) each cut-off's coverage, Gini, novelty and ARP on test, with their
    spread (no intervals here: these per-user frames have no novelty or ARP)."""
    columns = list(_board("ndcg@10").to_frame().columns)
    metrics = [f"{m}_at_{k}" for k in (10, 20) for m in ("recall", "ndcg", "precision", "hit")]
    tests = [f"test_{m}{s}" for m in metrics for s in ("", "_ci_low", "_ci_high", "_std")]
    beyond = [f"{m}_at_{k}" for k in (10, 20) for m in ("coverage", "gini", "novelty", "arp")]
    assert columns == [
        "model",
        *(f"val_{m}" for m in metrics),
        *tests,
        *(f"test_{m}{s}" for m in beyond for s in ("", "_std")),
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


def _with(outcome, **test):
    """``outcome`` with more test metrics (the sampled and beyond-accuracy ones)."""
    import dataclasses

    values = {**outcome.test, **test}
    return dataclasses.replace(outcome, test=values, seed_tests=[dict(values)])


def test_report_ks_put_every_metric_at_each_cutoff_and_the_target_s_is_added():
    board = Leaderboard.build([_outcome("a", 0.5, 0.5)], "ndcg@10", ks=(5, 50))
    assert board.metrics == tuple(
        f"{m}@{k}" for k in (5, 10, 50) for m in ("recall", "ndcg", "precision", "hit")
    )
    assert board.beyond == tuple(
        f"{m}@{k}" for k in (5, 10, 50) for m in ("coverage", "gini", "novelty", "arp")
    )
    columns = set(board.to_frame().columns)
    assert {"val_recall_at_5", "test_hit_at_50", "test_gini_at_50", "test_arp_at_5_std"} <= columns
    assert "test_ndcg_at_20" not in columns and "val_gini_at_10" not in columns  # test only
    # A target outside the shown metrics comes last; coverage as target is not shown twice.
    assert Leaderboard.build([], "mrr@20", ks=(10,)).metrics[-1] == "mrr@20"
    assert "coverage@10" not in Leaderboard.build([], "coverage@10").beyond


def test_beyond_accuracy_columns_hold_the_values_and_per_user_ones_their_intervals():
    outcomes = [
        _with(_outcome(m, *SCORES[m]), **{"gini@10": g}) for m, g in (("a", 0.4), ("b", 0.8))
    ]
    per_user = {m: _per_user(*SCORES[m]) for m in "ab"}
    per_user["a"]["test_novelty_at_10"] = np.linspace(1.0, 3.0, len(USERS))  # mean 2
    per_user["b"]["test_novelty_at_10"] = 1.0
    frame = Leaderboard.build(outcomes, "ndcg@10", per_user).to_frame().set_index("model")
    assert frame.loc["a", "test_gini_at_10"] == 0.4 and frame.loc["b", "test_gini_at_10"] == 0.8
    assert "test_gini_at_10_ci_low" not in frame  # a catalogue metric has no per-user values
    low, high = frame.loc["a", ["test_novelty_at_10_ci_low", "test_novelty_at_10_ci_high"]]
    assert 1.0 < low < 2.0 < high < 3.0
    assert (
        frame.loc["b", "test_novelty_at_10_ci_low"] == frame.loc["b", "test_novelty_at_10_ci_high"]
    )


def _sampled_board(per_user=None):
    """Full ranking: a (0.75) above b (0.25) above d (0.1); sampled NDCG@10: b, d, a."""
    sampled = {"a": 0.3, "b": 0.6, "d": 0.5}
    outcomes = [
        _with(_outcome(m, n, 0.5), **{"sampled_ndcg@10": s, "sampled_hit@10": 2 * s})
        for m, n, s in (("b", 0.25, sampled["b"]), ("a", 0.75, sampled["a"]), ("d", 0.1, 0.5))
    ]
    outcomes.append(ModelOutcome.failed("c", "every trial failed", SearchCost(1, 0, 1, 0, 0, 0)))
    return Leaderboard.build(outcomes, "ndcg@10", per_user, negatives=99)


def test_the_sampled_table_puts_both_orders_side_by_side():
    from recsys.tuning.leaderboard import order_agreement

    board = _sampled_board()
    assert board.sampled == (
        "sampled_hit@10",
        "sampled_ndcg@10",
        "sampled_hit@20",
        "sampled_ndcg@20",
    )
    assert [r.model for r in board.rows] == ["a", "b", "d", "c"]
    frame = board.to_sampled_frame()
    assert list(frame["model"]) == ["b", "d", "a"]  # c has no scores
    assert list(frame["rank_sampled"]) == [1, 2, 3] and list(frame["rank_full"]) == [2, 3, 1]
    assert list(frame["test_sampled_ndcg_at_10"]) == [0.6, 0.5, 0.3]
    assert list(frame["test_ndcg_at_10"]) == [0.25, 0.1, 0.75]
    assert "test_sampled_hit_at_10" not in board.to_frame()  # the full table stays as it was
    # a > b, a > d, b > d in full; b > d > a sampled: (a, b) and (a, d) are the other way round.
    assert order_agreement(["a", "b", "d"], ["b", "d", "a"]) == (2, 3)
    assert order_agreement(["a", "b"], ["a", "b"]) == (0, 1)
    assert Leaderboard.build([_outcome("a", 0.5, 0.5)]).to_sampled_frame().empty


def test_results_write_the_sampled_table_only_with_the_sampled_protocol(tmp_path):
    from conftest import block_split

    from recsys.tuning.results import write_results

    board = _sampled_board()
    data = block_split()
    write_results(tmp_path / "on", data, [r.outcome for r in board.rows], "ndcg@10", negatives=99)
    csv = pd.read_csv(tmp_path / "on" / "leaderboard_sampled.csv")
    assert list(csv["model"]) == ["b", "d", "a"] and list(csv["rank_full"]) == [2, 3, 1]
    md = (tmp_path / "on" / "leaderboard_sampled.md").read_text()
    assert "among itself and 99 items sampled" in md and "Ordered by test sampled_ndcg@10" in md
    assert "| b | 1 | 2 | 0.2500 | 1.2000 | 0.6000 |" in md
    assert "disagree on 2 of 3 model pairs (Kendall's tau -0.33)" in md
    assert "Krichene and Rendle" in md
    full = (tmp_path / "on" / "leaderboard.md").read_text()
    assert "| model | coverage@10 | gini@10 | novelty@10 | arp@10 | coverage@20 |" in full
    write_results(tmp_path / "off", data, [r.outcome for r in board.rows], "ndcg@10")
    assert not (tmp_path / "off" / "leaderboard_sampled.csv").exists()
    assert not (tmp_path / "off" / "leaderboard_sampled.md").exists()


def test_per_user_files_keep_every_per_user_metric_shown():
    from recsys.tuning.results import per_user_names

    names = per_user_names("mrr@10", (10,), negatives=99)
    assert names == [
        *(f"{m}@10" for m in ("recall", "ndcg", "precision", "hit")),
        "mrr@10",
        "novelty@10",
        "arp@10",
        "sampled_hit@10",
        "sampled_ndcg@10",
        *(f"{b}_{m}@10" for b in ("head", "torso", "tail") for m in ("recall", "ndcg")),
    ]
    assert "sampled_hit@10" not in per_user_names("mrr@10", (10,))
