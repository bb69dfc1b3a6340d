"""The leaderboard's breakdowns: item-popularity and user-activity buckets (hand-computed), the
evaluator's metrics within an item bucket, pairs of models compared with Holm across the pairs,
their files, and the flags that ask for them (a bad one ends in one line before Ray)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import block_split
from scipy import stats as scipy_stats
from sweep_fakes import FolderCheckpoint

from recsys import cli
from recsys.buckets import activity_buckets, assign, popularity_buckets
from recsys.data.dataset import Pairs
from recsys.errors import RecsysError
from recsys.evaluate import user_metrics
from recsys.stats import bootstrap_ci, holm
from recsys.tuning import breakdown
from recsys.tuning.config import SweepConfig, comparison_pairs, validate
from recsys.tuning.leaderboard import Leaderboard
from recsys.tuning.outcome import ModelOutcome

# Training counts 10, 6, 3, 1, 0 (20 in all); S(p), the interactions of the items at most as
# popular: 20, 10, 4, 1, 0. Head: S > 16 (item 0, which alone crosses 20%); tail: S <= 4.
POPULARITY = torch.tensor([10, 6, 3, 1, 0])


def test_head_torso_and_tail_of_a_hand_computed_catalogue():
    masks = popularity_buckets(POPULARITY)
    assert {b: torch.nonzero(m).flatten().tolist() for b, m in masks.items()} == {
        "head": [0],
        "torso": [1],
        "tail": [2, 3, 4],
    }
    # Equal popularity, the same bucket: nothing is more popular than any, so all are head.
    assert popularity_buckets(torch.tensor([5, 5, 5, 5]))["head"].all()
    # Ten items of 1 and one of 90: the head is that one; the tail holds 10% of interactions.
    masks = popularity_buckets(torch.tensor([90] + [1] * 10))
    assert masks["head"].tolist() == [True] + [False] * 10
    assert masks["tail"].sum() == 10 and not masks["torso"].any()


def test_recall_and_ndcg_within_each_item_bucket_by_hand():
    masks = popularity_buckets(POPULARITY)
    # Both users rank items 2, 1, 0, 3, 4; top 2 = [2, 1].
    scores = torch.tensor([[3.0, 4.0, 5.0, 2.0, 1.0]] * 2)
    heldout = Pairs(np.array([0, 0, 0, 1]), np.array([0, 2, 3, 1]))
    out = user_metrics(lambda u: scores[u], heldout, [], 2, 5, ks=(2,), buckets=masks)
    v = {name: values.tolist() for name, values in out.values.items()}
    # User 0: head {0} missed; no torso item; tail {2, 3}: item 2 first. User 1: torso {1}, 2nd.
    assert v["head_recall@2"][0] == 0 and math.isnan(v["head_recall@2"][1])
    assert math.isnan(v["torso_recall@2"][0]) and v["torso_recall@2"][1] == 1
    assert v["torso_ndcg@2"][1] == pytest.approx(1 / math.log2(3))
    assert v["tail_recall@2"][0] == 0.5 and math.isnan(v["tail_recall@2"][1])
    assert v["tail_ndcg@2"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    means = out.means()  # over the users with items in the bucket
    assert means["head_ndcg@2"] == 0 and means["torso_recall@2"] == 1
    assert means["tail_recall@2"] == 0.5 and means["recall@2"] == pytest.approx((1 / 3 + 1) / 2)


def test_cold_users_and_quartiles_of_the_others():
    counts = np.array([1, 2, 5, 5, 6, 7, 8, 9, 20, 100])
    buckets = activity_buckets(counts, threshold=5)
    # Warm counts 5 5 6 7 8 9 20 100: lower quartiles at positions 1.75, 3.5, 5.25 -> 5, 7, 9.
    assert [(b.name, b.label) for b in buckets] == [
        ("cold", "0-4"),
        ("q1", "5"),
        ("q2", "6-7"),
        ("q3", "8-9"),
        ("q4", "10-100"),
    ]
    assert assign(counts, buckets).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # Tied counts make one bucket; no threshold, no cold bucket.
    assert [b.label for b in activity_buckets(np.full(6, 10), threshold=0)] == ["10"]


def _outcome(model: str, ndcg: float) -> ModelOutcome:
    test = {"ndcg@10": ndcg, "recall@10": ndcg}
    return ModelOutcome(
        model, f"t-{model}", {}, 1, 1, dict(test), test, 1, 1, 1.0, 1.0, best_run_id=None
    )


def _frame(users: np.ndarray, values: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": users, "seed": 1, **values})


def test_activity_and_popularity_tables_from_per_user_frames(tmp_path):
    data = block_split()  # 40 users with 8 training items each
    users = data.user_ids
    # The first 10 users lose 5 training pairs each: 3 left, so cold.
    keep = ~((data.train.users < 10) & (np.arange(len(data.train)) % 8 < 5))
    data = dataclasses.replace(data, train=Pairs(data.train.users[keep], data.train.items[keep]))
    a = (np.arange(40) >= 10).astype(float)  # "a" hits every warm user, no cold one
    tail = np.where(np.arange(40) % 2 == 0, 1.0, np.nan)  # half the users have tail test items
    per_user = {
        "a": _frame(users, {"test_ndcg_at_10": a, "test_recall_at_10": a,
                            "test_tail_ndcg_at_10": tail, "test_tail_recall_at_10": tail}),
        "b": _frame(users, {"test_ndcg_at_10": 1 - a, "test_recall_at_10": 1 - a}),
    }  # fmt: skip
    board = Leaderboard.build([_outcome("b", 0.25), _outcome("a", 0.75)], "ndcg@10")
    out = breakdown.build(board, per_user, data, threshold=5, pairs=[("a", "b")], seed=3)
    rows = {(r.model, r.bucket, r.metric): r for r in out.buckets}
    cold = rows[("a", "cold", "ndcg@10")]
    assert (cold.users, cold.mean, cold.ci_low, cold.ci_high) == (10, 0.0, 0.0, 0.0)
    assert rows[("b", "cold", "ndcg@10")].mean == 1.0
    warm = [r for (m, b, k), r in rows.items() if m == "a" and b.startswith("q") and k == "ndcg@10"]
    assert [r.label for r in warm] == ["8 training interactions"]  # every warm user has 8
    assert warm[0].users == 30 and warm[0].mean == 1.0
    tail_row = rows[("a", "tail", "ndcg@10")]
    assert tail_row.users == 20 and tail_row.mean == 1.0 and tail_row.kind == "popularity"
    assert ("b", "tail", "ndcg@10") not in rows  # b has no bucket metrics: left out
    cold_rows = [r.model for r in out.buckets if r.bucket == "cold" and r.metric == "ndcg@10"]
    assert cold_rows == ["a", "b"]  # leaderboard order
    # The files, and the pair: a - b = 0.75 - 0.25 on 40 users.
    paths = breakdown.write(tmp_path, out)
    assert sorted(p.name for p in paths) == sorted(breakdown.FILES)
    compare = pd.read_csv(tmp_path / "compare.csv")
    assert list(compare["metric"]) == ["ndcg@10", "recall@10"]
    assert compare.loc[0, "difference"] == pytest.approx(0.5) and compare.loc[0, "users"] == 40
    assert bool(compare.loc[0, "differ"])
    text = (tmp_path / "leaderboard_buckets.md").read_text()
    assert "cold (0-4 training interactions; 10 users)" in text
    assert "tail (" in text and "20 users)" in text
    assert "| a | b | test ndcg@10 | 40 |" in (tmp_path / "compare.md").read_text()
    # Without pairs, no compare files.
    alone = breakdown.Breakdown(out.metric, out.threshold, out.buckets)
    assert [p.name for p in breakdown.write(tmp_path / "alone", alone)] == [
        "leaderboard_buckets.csv",
        "leaderboard_buckets.md",
    ]


def test_pairs_are_tested_and_holm_corrected_across_the_pairs_asked():
    rng = np.random.default_rng(0)
    base = rng.random(60)
    values = {
        "a": pd.DataFrame({"test_ndcg_at_10": base + 0.05 + 0.1 * rng.random(60)}),
        "b": pd.DataFrame({"test_ndcg_at_10": base}),
        "c": pd.DataFrame({"test_ndcg_at_10": base + 0.01 * rng.standard_normal(60)}),
    }
    pairs = [("a", "b"), ("c", "b"), ("a", "c")]
    out = breakdown.comparisons(values, pairs, ["ndcg@10"], seed=1)
    x = {m: f["test_ndcg_at_10"].to_numpy() for m, f in values.items()}
    raw = [scipy_stats.wilcoxon(x[p], x[q]).pvalue for p, q in pairs]
    ttest = [scipy_stats.ttest_rel(x[p], x[q]).pvalue for p, q in pairs]
    assert [c.p_wilcoxon for c in out] == pytest.approx(raw)
    assert [c.p_wilcoxon_holm for c in out] == pytest.approx(holm(np.array(raw)).tolist())
    assert [c.p_ttest_holm for c in out] == pytest.approx(holm(np.array(ttest)).tolist())
    first = out[0]
    assert first.difference == pytest.approx((x["a"] - x["b"]).mean())
    assert (first.ci_low, first.ci_high) == tuple(bootstrap_ci(x["a"] - x["b"], seed=1))
    assert first.differ and first.ci_low > 0
    # A pair with a model without per-user metrics: NaNs, out of the correction.
    lost = breakdown.comparisons(values, [("a", "b"), ("a", "gone")], ["ndcg@10"])
    assert lost[0].p_wilcoxon_holm == pytest.approx(raw[0]) and math.isnan(lost[1].difference)


def test_compare_names_pairs_of_the_sweep():
    cfg = cli.parse_args(["--models", "ease,lightgcn,popularity", "--compare", "lightgcn:ease"])
    assert comparison_pairs(cfg) == [("lightgcn", "ease")]
    assert SweepConfig.from_dict(cfg.to_dict()) == cfg  # a resume reads it back
    every = cli.parse_args(["--models", "ease,lightgcn,popularity", "--compare", "all"])
    assert comparison_pairs(every) == [
        ("ease", "lightgcn"),
        ("ease", "popularity"),
        ("lightgcn", "popularity"),
    ]
    assert cli.parse_args([]).cold_user_threshold == 5 and cli.parse_args([]).compare == ()
    for text, message in [
        ("lightgcn", "pairs a:b"),
        ("lightgcn:", "pairs a:b"),
        (",", "names no pair"),
        ("a:b:c", "pairs a:b"),
    ]:
        with pytest.raises(RecsysError, match=message):
            cli.parse_args(["--compare", text])
    for compare, message in [
        (("lightgcn:bpr_mf",), "'bpr_mf' is not a model of this sweep"),
        (("ease:ease",), "with itself"),
        (("ease:lightgcn", "lightgcn:ease"), "twice"),
    ]:
        cfg = SweepConfig(models=("ease", "lightgcn"), compare=compare)
        with pytest.raises(RecsysError, match=message):
            validate(cfg)
    with pytest.raises(RecsysError, match="--cold-user-threshold must be 0 or more"):
        validate(SweepConfig(models=("ease",), cold_user_threshold=-1))


def test_a_name_not_in_the_sweep_ends_in_one_line_before_ray(monkeypatch, tmp_path):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was reached")

    monkeypatch.setattr("recsys.tuning.sweep.connect", no_ray)
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    argv = ["--models", "popularity,ease", "--compare", "popularity:lightgcn_text",
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]  # fmt: skip
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    assert code == cli.EXIT_BAD_INPUT
    assert err.getvalue().count("\n") == 1 and "'lightgcn_text' is not a model" in err.getvalue()
    assert os.listdir(tmp_path) == []  # nothing written


def test_scored_models_file_their_bucket_metrics_for_the_breakdown(tmp_path):
    from recsys.train import Trainer
    from recsys.tuning.best import Choice
    from recsys.tuning.results import per_user_names, write_model_outputs, write_results
    from recsys.tuning.scoring import EvalProtocol, score
    from recsys.tuning.trainable import save_checkpoint

    data = block_split()
    models = ("itemknn", "popularity")
    cfg = SweepConfig(dataset="blocks", models=models, report_ks=(10,), compare=("all",))
    protocol = EvalProtocol.of(cfg, data)
    masks = torch.stack(list(protocol.buckets.values()))
    assert (masks.sum(0) == 1).all()  # head, torso and tail partition the catalogue
    outcomes = []
    for model in models:
        folder = tmp_path / model
        folder.mkdir()
        save_checkpoint(Trainer(model, {}, data, seed=1), folder)
        choice = Choice(model, f"t-{model}", FolderCheckpoint(folder), {}, 1, 1, 0.0)
        scored = score(choice, [], data, cfg.metric, protocol)
        names = per_user_names(cfg.metric, cfg.report_ks)
        write_model_outputs(
            tmp_path / "results", scored.outcome, scored.trainer.model, data, cfg.metric,
            scored.per_user, names,
        )  # fmt: skip
        outcomes.append(scored.outcome)
    board = write_results(tmp_path / "results", data, outcomes, cfg.metric, ks=cfg.report_ks)
    assert "leaderboard_buckets.md" in (tmp_path / "results" / "leaderboard.md").read_text()
    per_user = breakdown.read_per_user(tmp_path / "results", outcomes)
    out = breakdown.build(board, per_user, data, 5, comparison_pairs(cfg))
    items = [r for r in out.buckets if r.kind == "popularity" and r.metric == "recall@10"]
    # One test item per user, so the buckets' users add up to the 40; the checkerboard: ItemKNN
    # finds every user's test item in its top 10, whatever its bucket.
    assert sum(r.users for r in items if r.model == "itemknn") == 40
    assert all(r.mean == 1.0 for r in items if r.model == "itemknn" and r.users)
    assert [(c.a, c.b) for c in out.comparisons][:1] == [("itemknn", "popularity")]


class _Client:
    def __init__(self) -> None:
        self.metrics: dict[str, dict[str, float]] = {}
        self.artifacts: list[tuple[str, str]] = []

    def log_artifact(self, run_id, path, artifact_path=None):
        self.artifacts.append((run_id, f"{artifact_path}/{os.path.basename(path)}"))

    def log_batch(self, run_id, metrics=()):
        self.metrics.setdefault(run_id, {}).update({m.key: m.value for m in metrics})


def test_the_breakdown_goes_to_the_sweeps_run_and_each_best_run(monkeypatch, tmp_path):
    fake = _Client()
    monkeypatch.setattr("recsys.tuning.tracking.client", lambda uri: fake)
    row = breakdown.BucketRow("activity", "cold", "0-4", "a", "ndcg@10", 3, 0.5, 0.2, 0.8)
    pair = breakdown.Comparison("a", "b", "ndcg@10", 3, 0.5, 0.25, 0.25, 0.1, 0.4, *[0.01] * 4)
    out = breakdown.Breakdown("ndcg@10", 5, (row,), (pair,))
    outcome = dataclasses.replace(_outcome("a", 0.5), best_run_id="best-a")
    board = Leaderboard.build([outcome], "ndcg@10")
    breakdown.log("uri", "parent", board, out, breakdown.write(tmp_path, out))
    assert ("parent", "breakdown/compare.md") in fake.artifacts
    assert fake.metrics["parent"]["compare/a-vs-b/test_ndcg_at_10_diff"] == 0.25
    assert fake.metrics["parent"]["compare/a-vs-b/test_ndcg_at_10_p_wilcoxon"] == 0.01
    assert fake.metrics["best-a"] == {
        "test_cold_ndcg_at_10": 0.5,
        "test_cold_ndcg_at_10_ci_low": 0.2,
        "test_cold_ndcg_at_10_ci_high": 0.8,
        "test_cold_ndcg_at_10_users": 3,
    }
