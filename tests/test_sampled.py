"""The sampled protocol: known ranks, Hit and NDCG from fixed scores and fixed negatives; the
negatives never seen, distinct, uniform and seeded; the sweep's protocol merging it into test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import block_split

from recsys.data.dataset import Pairs
from recsys.sampled import (
    SampledCandidates,
    candidates_for,
    sample_candidates,
    sampled_user_metrics,
)
from recsys.train import Trainer
from recsys.tuning.config import SweepConfig
from recsys.tuning.scoring import EvalProtocol

# User 0 has two test items (2 and 4), user 1 one (1); the negatives are fixed.
CANDIDATES = SampledCandidates(
    users=torch.tensor([0, 0, 1]),
    items=torch.tensor([[2, 0, 1, 3], [4, 0, 1, 3], [1, 0, 2, -1]]),
)
SCORES = torch.tensor(
    [
        [0.9, 0.1, 0.5, 0.7, 0.95],  # item 2 (0.5) is below items 0 and 3: rank 3; item 4 first
        [0.3, 0.3, 0.3, 0.0, 0.0],  # a tie: item 0 (lower index) above item 1, item 2 below
        [0.0] * 5,  # user 2 has no test item
    ]
)


def _score(users: torch.Tensor) -> torch.Tensor:
    return SCORES[users].clone()


def test_known_scores_and_fixed_negatives_give_known_hit_and_ndcg():
    out = sampled_user_metrics(_score, CANDIDATES, 3, 5, ks=(1, 2, 3))
    assert out.users.tolist() == [0, 1] and out.users_skipped == 1
    # User 0: ranks 3 and 1, averaged over its two cases; user 1: rank 2.
    v = out.values
    assert v["sampled_hit@1"].tolist() == [0.5, 0.0]
    assert v["sampled_hit@2"].tolist() == [0.5, 1.0]
    assert v["sampled_hit@3"].tolist() == [1.0, 1.0]
    assert v["sampled_ndcg@1"].tolist() == [0.5, 0.0]
    assert v["sampled_ndcg@2"].tolist() == pytest.approx([0.5, 1 / math.log2(3)])
    assert v["sampled_ndcg@3"].tolist() == pytest.approx(
        [(1 / 2 + 1) / 2, 1 / math.log2(3)]
    )  # log2(4) = 2
    assert out.means()["sampled_hit@2"] == pytest.approx(0.75)
    assert out.means()["sampled_ndcg@2"] == pytest.approx((0.5 + 1 / math.log2(3)) / 2)


def test_user_batches_do_not_change_the_values():
    whole = sampled_user_metrics(_score, CANDIDATES, 3, 5, ks=(1, 2))
    single = sampled_user_metrics(_score, CANDIDATES, 3, 5, ks=(1, 2), batch_size=1)
    for name, values in whole.values.items():
        np.testing.assert_allclose(values, single.values[name], rtol=0, atol=1e-12)


def _random_split(seed: int = 0, n_users: int = 60, n_items: int = 40):
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, 900, replace=False)
    users, items = keys // n_items, keys % n_items
    part = rng.integers(0, 3, len(keys))  # train, val, test
    return [Pairs(users[part == p], items[part == p]) for p in range(3)], n_items


def test_negatives_are_unseen_distinct_and_seeded():
    (train, val, test), n_items = _random_split()
    cand = candidates_for(test, [train, val], n_items, 20, seed=5)
    order = np.lexsort((test.items, test.users))
    assert cand.users.tolist() == test.users[order].tolist()
    assert cand.items[:, 0].tolist() == test.items[order].tolist()
    seen = {}
    for p in (train, val, test):
        for u, i in zip(p.users.tolist(), p.items.tolist(), strict=True):
            seen.setdefault(u, set()).add(i)
    for u, row in zip(cand.users.tolist(), cand.items[:, 1:].tolist(), strict=True):
        negatives = [i for i in row if i >= 0]
        assert len(set(negatives)) == len(negatives) == min(20, n_items - len(seen[u]))
        assert not set(negatives) & seen[u]
    again = candidates_for(test, [train, val], n_items, 20, seed=5)
    assert torch.equal(cand.items, again.items)
    other = candidates_for(test, [train, val], n_items, 20, seed=6)
    assert not torch.equal(cand.items, other.items)


def test_a_user_with_few_unseen_items_gets_all_of_them():
    train = Pairs([0, 0], [0, 1])
    cand = candidates_for(Pairs([0], [2]), [train], 5, 3, seed=0)
    assert sorted(cand.items[0, 1:].tolist()) == [-1, 3, 4]
    assert cand.items[0, 3].item() == -1  # the missing one last


def test_negatives_are_uniform_over_the_unseen_items():
    # 2,700 users whose only item is item 0: each draws 3 of items 1..9, 900 times each expected
    # (a standard deviation of about 24).
    n = 2700
    cand = candidates_for(Pairs(np.arange(n), np.zeros(n, dtype=np.int64)), [], 10, 3, seed=1)
    counts = torch.bincount(cand.items[:, 1:].flatten(), minlength=10).tolist()
    assert counts[0] == 0
    assert all(abs(c - 900) < 120 for c in counts[1:]), counts


def test_the_sweeps_protocol_draws_once_and_merges_into_the_test_metrics():
    data = block_split()
    cfg = SweepConfig(dataset="blocks", report_ks=(5,), sampled_negatives=9, seed=3)
    protocol = EvalProtocol.of(cfg, data)
    assert protocol.ks == (5, 10)  # the target's cut-off added
    assert torch.equal(protocol.candidates.items, EvalProtocol.of(cfg, data).candidates.items)
    assert protocol.candidates.items.shape == (len(data.test), 10)
    assert torch.equal(  # drawn from the sweep's seed, not a model's
        protocol.candidates.items, sample_candidates(data, 9, _seed(3)).items
    )
    trainer = Trainer("popularity", {}, data, seed=0)
    test = protocol.test_users(trainer)
    assert {"ndcg@5", "novelty@10", "sampled_hit@5", "sampled_ndcg@10"} <= set(test.values)
    assert "coverage@5" in test.catalogue and len(test.values["sampled_ndcg@10"]) == 40
    full = EvalProtocol((5, 10)).test_users(trainer)
    assert "sampled_hit@5" not in full.values
    np.testing.assert_array_equal(full.values["ndcg@10"], test.values["ndcg@10"])


def _seed(root: int) -> int:
    from recsys.seeds import derive_seed

    return derive_seed(root, "sampled-negatives")
