"""Metric values computed by hand on tiny ranked lists."""

import math

import pytest
import torch

from recsys import metrics


def _h(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_single_user_known_values():
    # Ranked list: miss, hit, miss, hit; 3 held-out items in total.
    hits = _h([0, 1, 0, 1])
    n = torch.tensor([3])
    k = 4
    assert metrics.precision(hits, n, k).item() == pytest.approx(2 / 4)
    assert metrics.recall(hits, n, k).item() == pytest.approx(2 / 3)
    assert metrics.hit(hits, n, k).item() == 1.0
    assert metrics.mrr(hits, n, k).item() == pytest.approx(1 / 2)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg(hits, n, k).item() == pytest.approx(dcg / idcg)
    # AP: precision at the hit ranks (1/2 and 2/4) over min(3, 4) = 3.
    assert metrics.average_precision(hits, n, k).item() == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_cutoff_smaller_than_list_and_ideal_dcg_uses_min_of_relevant_and_k():
    hits = _h([1, 0, 1, 1])
    n = torch.tensor([5])
    # At k=2 only the first hit counts, and the ideal is 2 hits (min(5, 2)).
    assert metrics.ndcg(hits, n, 2).item() == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert metrics.recall(hits, n, 2).item() == pytest.approx(1 / 5)
    assert metrics.average_precision(hits, n, 2).item() == pytest.approx(1 / 2)


def test_k_larger_than_catalogue_counts_missing_ranks_as_misses():
    # A catalogue of 3 items ranked, cutoff 10.
    hits = _h([1, 1, 0])
    n = torch.tensor([2])
    assert metrics.precision(hits, n, 10).item() == pytest.approx(2 / 10)
    assert metrics.recall(hits, n, 10).item() == 1.0
    assert metrics.ndcg(hits, n, 10).item() == pytest.approx(1.0)
    assert metrics.average_precision(hits, n, 10).item() == pytest.approx(1.0)


def test_no_hit_gives_zero_everywhere():
    hits = _h([0, 0, 0])
    n = torch.tensor([1])
    for name, fn in metrics.FUNCTIONS.items():
        assert fn(hits, n, 3).item() == 0.0, name


def test_perfect_ranking_gives_one():
    hits = _h([1, 1, 0, 0])
    n = torch.tensor([2])
    for name in ("recall", "ndcg", "hit", "mrr", "map"):
        assert metrics.FUNCTIONS[name](hits, n, 4).item() == pytest.approx(1.0), name


def test_batch_of_users_is_per_user():
    hits = _h([1, 0], [0, 1])
    n = torch.tensor([1, 1])
    out = metrics.ranking_metrics(hits, n, (1, 2))
    assert out["hit@1"].tolist() == [1.0, 0.0]
    assert out["mrr@2"].tolist() == pytest.approx([1.0, 0.5])
    assert set(out) == {f"{m}@{k}" for m in metrics.METRICS for k in (1, 2)}


def test_invalid_cutoff():
    with pytest.raises(ValueError):
        metrics.recall(_h([1]), torch.tensor([1]), 0)


def test_reported_cutoffs_always_hold_the_target_s():
    assert metrics.report_ks("ndcg@10") == (10, 20)
    assert metrics.report_ks("ndcg@10", (50, 5)) == (5, 10, 50)
    assert metrics.report_ks("mrr@20", (20,)) == (20,)
    assert metrics.reported_metrics("ndcg@5", (10,)) == [
        *(f"{m}@5" for m in metrics.REPORTED),
        *(f"{m}@10" for m in metrics.REPORTED),
    ]
    assert metrics.reported_metrics("map@10", (10,))[-1] == "map@10"
    assert metrics.beyond_metrics("ndcg@10", (10,)) == ["coverage@10", "gini@10"] + [
        "novelty@10",
        "arp@10",
    ]
    assert metrics.sampled_metrics("hit@5", (10,)) == [
        "sampled_hit@5",
        "sampled_ndcg@5",
        "sampled_hit@10",
        "sampled_ndcg@10",
    ]
    assert metrics.sampled_target("recall@20") == "sampled_ndcg@20"
    assert metrics.metric_key("test", "sampled_ndcg@10") == "test_sampled_ndcg_at_10"
