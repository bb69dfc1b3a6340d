"""Negative samplers: never a training positive, the right distribution, DNS picks the hardest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.data.dataset import Pairs
from recsys.errors import RecsysError
from recsys.models import samplers
from recsys.models.samplers import (
    DynamicNegativeSampler,
    NegativeSampler,
    PopularityMixtureSampler,
    make_sampler,
)


def dense_pairs(n_users: int = 40, n_items: int = 30, density: float = 0.7, seed: int = 0):
    """Random pairs where most items are positives (many rejections), plus one user with all
    items but one, whose only possible negative is known."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[0] = True
    mask[0, 7] = False
    users, items = np.nonzero(mask)
    return Pairs(users, items), mask


def all_samplers(train: Pairs, n_users: int, n_items: int) -> list[NegativeSampler]:
    return [
        make_sampler(name, train, n_users, n_items, p_pop=0.8, pool_size=5, n_candidates=4)
        for name in samplers.SAMPLERS
    ]


def test_is_positive_matches_the_training_matrix():
    train, mask = dense_pairs()
    sampler = NegativeSampler(train, *mask.shape)
    users, items = np.meshgrid(np.arange(mask.shape[0]), np.arange(mask.shape[1]), indexing="ij")
    found = sampler.is_positive(torch.from_numpy(users), torch.from_numpy(items))
    np.testing.assert_array_equal(found.numpy(), mask)


@pytest.mark.parametrize("index", range(len(samplers.SAMPLERS)))
def test_samplers_never_return_a_training_positive(index):
    torch.manual_seed(0)
    train, mask = dense_pairs()
    sampler = all_samplers(train, *mask.shape)[index]
    users = torch.from_numpy(train.users).repeat(5)
    neg = sampler.draw(users, 3)
    assert neg.shape == (users.numel(), 3)
    assert neg.dtype == torch.int64
    assert not mask[users.unsqueeze(1).expand_as(neg).numpy(), neg.numpy()].any()
    # User 0's only non-positive item is 7.
    assert (neg[users == 0] == 7).all()


def test_exact_fallback_is_uniform_over_non_positives(monkeypatch):
    """With no rejection round left, every draw comes from the exact complement sampler."""
    monkeypatch.setattr(samplers, "MAX_REJECTION_ROUNDS", 0)
    torch.manual_seed(0)
    train, mask = dense_pairs(n_users=3, n_items=12, density=0.5, seed=3)
    sampler = NegativeSampler(train, *mask.shape)
    draws = 60_000
    for user in range(3):
        neg = sampler.draw(torch.full((draws,), user), 1).squeeze(1)
        counts = np.bincount(neg.numpy(), minlength=12)
        free = ~mask[user]
        assert counts[~free].sum() == 0
        expected = draws / free.sum()
        assert np.abs(counts[free] - expected).max() < 0.06 * expected


def test_uniform_sampler_is_uniform_over_non_positives():
    torch.manual_seed(1)
    train, mask = dense_pairs(n_users=2, n_items=10, density=0.4, seed=5)
    sampler = NegativeSampler(train, *mask.shape)
    neg = sampler.draw(torch.full((50_000,), 1), 1).squeeze(1)
    counts = np.bincount(neg.numpy(), minlength=10)
    free = ~mask[1]
    expected = 50_000 / free.sum()
    assert counts[~free].sum() == 0
    assert np.abs(counts[free] - expected).max() < 0.06 * expected


def test_popularity_mixture_draws_pool_items_at_rate_p_pop():
    """Share of pool items = mixture mass on the user's free pool items over its free mass."""
    rng = np.random.default_rng(0)
    n_users, n_items, pool_size, p_pop = 200, 100, 10, 0.3
    popularity = 1.0 / np.arange(1, n_items + 1)  # item 0 the most popular
    users = np.repeat(np.arange(n_users), 8)
    items = np.concatenate(
        [
            rng.choice(n_items, 8, replace=False, p=popularity / popularity.sum())
            for _ in range(n_users)
        ]
    )
    train = Pairs(users, items)
    sampler = PopularityMixtureSampler(train, n_users, n_items, p_pop=p_pop, pool_size=pool_size)
    pool = np.zeros(n_items, bool)
    pool[sampler.pool.numpy()] = True
    assert pool[np.argsort(-np.bincount(items, minlength=n_items))[:pool_size]].all()

    mask = np.zeros((n_users, n_items), bool)
    mask[users, items] = True
    proposal = np.where(pool, p_pop / pool_size, 0.0) + (1 - p_pop) / n_items
    free_mass = (proposal * ~mask).sum(1)
    pool_mass = (proposal * (~mask & pool)).sum(1)
    expected = (pool_mass / free_mass).mean()  # every user drawn equally often below
    uniform_only = ((~mask & pool).sum(1) / (~mask).sum(1)).mean()
    assert expected > uniform_only + 0.2  # the test can tell the mixture from uniform

    torch.manual_seed(0)
    draw_users = torch.arange(n_users).repeat(1000)
    neg = sampler.draw(draw_users, 1).squeeze(1).numpy()
    assert not mask[draw_users.numpy(), neg].any()
    assert abs(pool[neg].mean() - expected) < 0.01


def test_dns_picks_the_highest_scored_candidate():
    torch.manual_seed(0)
    train, mask = dense_pairs(density=0.3)
    sampler = DynamicNegativeSampler(train, *mask.shape, n_candidates=5)
    users = torch.from_numpy(train.users)
    candidates = sampler.draw(users, sampler.candidates_per_pair)
    assert candidates.shape == (users.numel(), 5)
    weights = torch.randn(mask.shape[1])

    def score_fn(u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled()
        return weights[items] + 0.0 * u.unsqueeze(1)

    chosen = sampler.pick(users, candidates, score_fn)
    best = candidates.gather(1, weights[candidates].argmax(1, keepdim=True)).squeeze(1)
    torch.testing.assert_close(chosen, best)
    assert (weights[chosen] >= weights[candidates].max(1).values).all()


def test_uniform_pick_takes_the_drawn_negative():
    train, mask = dense_pairs()
    sampler = NegativeSampler(train, *mask.shape)
    candidates = torch.tensor([[3], [5]])
    assert sampler.pick(torch.tensor([1, 2]), candidates, None).tolist() == [3, 5]


def test_a_user_with_every_item_is_rejected():
    train = Pairs(np.array([0, 0, 1]), np.array([0, 1, 0]))
    with pytest.raises(RecsysError, match="every item"):
        NegativeSampler(train, 2, 2)


def test_unknown_sampler_name():
    train, mask = dense_pairs()
    with pytest.raises(RecsysError, match="unknown sampler"):
        make_sampler("hard", train, *mask.shape)
