"""Negative samplers for pairwise (BPR) training: uniform, popularity mixture and DNS.

A sampler draws, in one vectorised call per epoch, negatives for every (user, positive) pair on
the model's device, never returning one of the user's training positives. Training positives
are found with a sorted int64 key array ``user * n_items + item`` and ``torch.searchsorted``;
rejected draws are redrawn in rounds (all rejected entries at once), not one sample at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from recsys.data.dataset import Pairs, SplitData
from recsys.errors import RecsysError, require

SAMPLERS = ("uniform", "popularity", "dns")

# After this many rejection rounds the few draws still rejected (users with almost every item as
# a positive, or a pool made only of the user's positives) are drawn exactly from the user's
# non-positives instead, so that sampling always terminates.
MAX_REJECTION_ROUNDS = 32

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class NegativeSampler:
    """Uniform negatives: every item that is not a training positive of the user is equally likely.

    Args:
        train: the training pairs (the only positives rejected; validation items may be drawn).
        n_users: number of users.
        n_items: number of items.
        device: where the keys live and negatives are drawn.
    """

    def __init__(
        self, train: Pairs, n_users: int, n_items: int, device: torch.device | str = "cpu"
    ) -> None:
        self.n_users = n_users
        self.n_items = n_items
        self.device = torch.device(device)
        keys = np.unique(train.keys(n_items))  # sorted, duplicates dropped
        users = keys // n_items
        items = keys % n_items
        degree = np.bincount(users, minlength=n_users)
        if (degree >= n_items).any():
            user = int(np.argmax(degree >= n_items))
            raise RecsysError(
                f"user index {user} has every item as a training positive, so no negative "
                "exists; drop such users when preparing the data"
            )
        start = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(degree, out=start[1:])
        # For the exact fallback: q = item - (its rank among the user's positives) is
        # non-decreasing within a user, so user * n_items + q is globally sorted.
        rank = np.arange(len(keys), dtype=np.int64) - start[users]
        self.keys = torch.from_numpy(keys).to(self.device)
        self._degree = torch.from_numpy(degree).to(self.device)
        self._start = torch.from_numpy(start[:-1].copy()).to(self.device)
        self._gap_keys = torch.from_numpy(users * n_items + items - rank).to(self.device)

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Whether each (user, item) is a training pair; any matching shapes, bool result."""
        query = users * self.n_items + items
        if self.keys.numel() == 0:
            return torch.zeros_like(query, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, query).clamp_(max=self.keys.numel() - 1)
        return self.keys[pos] == query

    def propose(self, n: int) -> torch.Tensor:
        """``n`` raw draws (training positives not yet rejected) from the proposal distribution."""
        return torch.randint(self.n_items, (n,), device=self.device)

    def draw(self, users: torch.Tensor, n: int = 1) -> torch.Tensor:
        """``n`` negatives for each user entry, none a training positive of that user.

        Args:
            users: (N,) int64 user indices on the sampler's device (repeats allowed).
            n: negatives per entry.

        Returns:
            (N, n) int64 item indices.
        """
        flat_users = users.repeat_interleave(n) if n > 1 else users
        items = self.propose(flat_users.numel())
        pending = torch.nonzero(self.is_positive(flat_users, items)).squeeze(1)
        for _ in range(MAX_REJECTION_ROUNDS):
            if pending.numel() == 0:
                break
            items[pending] = self.propose(pending.numel())
            pending = pending[self.is_positive(flat_users[pending], items[pending])]
        if pending.numel() > 0:
            items[pending] = self._exact_uniform(flat_users[pending])
        return items.view(-1, n)

    def pick(
        self, users: torch.Tensor, candidates: torch.Tensor, score_fn: ScoreFn
    ) -> torch.Tensor:
        """The negative to train on for each pair, from its ``draw`` candidates.

        Args:
            users: (B,) user indices.
            candidates: (B, n) candidates from :meth:`draw`.
            score_fn: ``score_fn(users (B,), items (B, n)) -> (B, n)`` with the current model
                (unused here: the uniform and popularity samplers take the first candidate).

        Returns:
            (B,) int64 negatives.
        """
        return candidates[:, 0]

    @property
    def candidates_per_pair(self) -> int:
        """How many candidates :meth:`draw` should return per pair for :meth:`pick`."""
        return 1

    def _exact_uniform(self, users: torch.Tensor) -> torch.Tensor:
        """Uniform draws from each user's non-positives, without rejection.

        The r-th non-positive item of a user is ``r + #{positives p_m : p_m - m <= r}``.
        """
        free = (self.n_items - self._degree[users]).to(torch.float64)
        r = (torch.rand(users.shape, device=self.device, dtype=torch.float64) * free).long()
        r = torch.minimum(r, free.long() - 1)
        below = torch.searchsorted(self._gap_keys, users * self.n_items + r, right=True)
        return r + below - self._start[users]


class PopularityMixtureSampler(NegativeSampler):
    """With probability ``p_pop`` a negative from the ``pool_size`` most popular training items
    (uniform within the pool), otherwise a uniform item; training positives are rejected.

    Popular items the user has not interacted with are harder negatives than uniform ones
    (Rendle & Freudenthaler, WSDM 2014 argue for such oversampling).
    """

    def __init__(
        self,
        train: Pairs,
        n_users: int,
        n_items: int,
        device: torch.device | str = "cpu",
        *,
        p_pop: float = 0.1,
        pool_size: int = 100,
    ) -> None:
        super().__init__(train, n_users, n_items, device)
        if not 0.0 <= p_pop <= 1.0:
            raise RecsysError(f"p_pop must lie in [0, 1], got {p_pop}")
        if pool_size < 1:
            raise RecsysError(f"pool_size must be at least 1, got {pool_size}")
        self.p_pop = float(p_pop)
        counts = torch.bincount(train.tensors()[1], minlength=n_items)
        self.pool = torch.topk(counts, min(pool_size, n_items)).indices.to(self.device)

    def propose(self, n: int) -> torch.Tensor:
        from_pool = torch.rand(n, device=self.device) < self.p_pop
        pooled = self.pool[torch.randint(self.pool.numel(), (n,), device=self.device)]
        uniform = torch.randint(self.n_items, (n,), device=self.device)
        return torch.where(from_pool, pooled, uniform)


class DynamicNegativeSampler(NegativeSampler):
    """DNS: of ``n_candidates`` uniform negatives, train on the one the current model scores
    highest (Zhang et al., "Optimizing Top-N Collaborative Filtering via Dynamic Negative Item
    Sampling", SIGIR 2013).

    Candidates are drawn for the whole epoch at once; the choice among them is made per batch
    with the model as it is at that step, without gradient.
    """

    def __init__(
        self,
        train: Pairs,
        n_users: int,
        n_items: int,
        device: torch.device | str = "cpu",
        *,
        n_candidates: int = 8,
    ) -> None:
        super().__init__(train, n_users, n_items, device)
        if n_candidates < 1:
            raise RecsysError(f"n_candidates must be at least 1, got {n_candidates}")
        self.n_candidates = int(n_candidates)

    @property
    def candidates_per_pair(self) -> int:
        return self.n_candidates

    def pick(
        self, users: torch.Tensor, candidates: torch.Tensor, score_fn: ScoreFn
    ) -> torch.Tensor:
        with torch.no_grad():
            best = score_fn(users, candidates).argmax(dim=1, keepdim=True)
        return candidates.gather(1, best).squeeze(1)


def check_sampler_fields(cfg: Any) -> None:
    """The checks of a config's sampler fields (``sampler``, ``p_pop``, ``pool_size``,
    ``n_candidates``), shared by every model that samples negatives."""
    require(
        cfg.sampler in SAMPLERS,
        f"sampler must be one of {', '.join(SAMPLERS)}, got {cfg.sampler!r}",
    )
    require(0.0 <= cfg.p_pop <= 1.0, f"p_pop must lie in [0, 1], got {cfg.p_pop}")
    require(cfg.pool_size >= 1, f"pool_size must be >= 1, got {cfg.pool_size}")
    require(cfg.n_candidates >= 1, f"n_candidates must be >= 1, got {cfg.n_candidates}")


def sampler_for(cfg: Any, data: SplitData, device: torch.device | str) -> NegativeSampler:
    """The sampler a pairwise model's config names (``sampler``, and ``p_pop``, ``pool_size``,
    ``n_candidates`` where the config has them: see ``recsys.models.lightgcn.PairwiseConfig``)
    over ``data.train``; a config without a ``sampler`` field samples uniformly."""
    options = {
        k: getattr(cfg, k) for k in ("p_pop", "pool_size", "n_candidates") if hasattr(cfg, k)
    }
    name = getattr(cfg, "sampler", "uniform")
    return make_sampler(name, data.train, data.n_users, data.n_items, device, **options)


def make_sampler(
    name: str,
    train: Pairs,
    n_users: int,
    n_items: int,
    device: torch.device | str = "cpu",
    *,
    p_pop: float = 0.1,
    pool_size: int = 100,
    n_candidates: int = 8,
) -> NegativeSampler:
    """The sampler called ``name`` (one of :data:`SAMPLERS`) over the training pairs."""
    if name == "uniform":
        return NegativeSampler(train, n_users, n_items, device)
    if name == "popularity":
        return PopularityMixtureSampler(
            train, n_users, n_items, device, p_pop=p_pop, pool_size=pool_size
        )
    if name == "dns":
        return DynamicNegativeSampler(train, n_users, n_items, device, n_candidates=n_candidates)
    raise RecsysError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
