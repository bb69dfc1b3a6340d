"""Sampled evaluation: each held-out item ranked among n items sampled for its user.

The protocol of NCF (He et al., WWW 2017) and of the HybridVAE project: for every (user,
held-out item) case, ``n`` negatives are drawn uniformly without replacement from the items the
user has NOT interacted with in any split (train, validation or test), and the held-out item is
ranked among those n + 1 candidates by the model's scores. A negative ranks above the held-out
item when its score is higher, or equal and its item index lower (the full ranking's tie rule).
With rank r (1 = first):

- sampled Hit@k = 1 if r <= k, else 0 (with one relevant item, Recall@k is the same);
- sampled NDCG@k = 1 / log2(r + 1) if r <= k, else 0 (the ideal DCG is 1).

A user with several held-out items has one case per item, each with its own negatives; a user's
value is the mean over its cases, and the reported value the mean over users (as the full
ranking's, so every user weighs the same). A user with fewer than n items left to sample from
gets all of them. The negatives are drawn once per sweep from a seed (``sample_candidates``), so
every model is ranked on the same candidates.

Sampled metrics are not full-ranking metrics made cheaper: Krichene and Rendle (KDD 2020, "On
Sampled Metrics for Item Recommendation") show that they can order models differently from the
full ranking; the sweep writes both orders side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recsys.data.dataset import Pairs, SplitData
from recsys.evaluate import ScoreFn, UserMetrics, _batch_size
from recsys.metrics import SAMPLED

_BATCH_ELEMENTS = 1 << 24  # candidate draws per chunk


@dataclass(frozen=True)
class SampledCandidates:
    """One row per (user, held-out item) case, ordered by user then item.

    Attributes:
        users: (C,) int64 user index of each case.
        items: (C, 1 + n) int64: the held-out item first, then its n negatives (-1 where a user
            had fewer than n items left to sample).
    """

    users: torch.Tensor
    items: torch.Tensor

    @property
    def negatives(self) -> int:
        return self.items.shape[1] - 1


def sample_candidates(data: SplitData, n: int, seed: int) -> SampledCandidates:
    """The test split's cases, each with ``n`` negatives drawn uniformly without replacement
    from the items its user has in no split (seeded: the same seed and split, the same
    candidates)."""
    assert data.test is not None, "sampled evaluation ranks the test items"
    return candidates_for(data.test, [data.train, data.val], data.n_items, n, seed)


def candidates_for(
    heldout: Pairs, seen: Sequence[Pairs], n_items: int, n: int, seed: int
) -> SampledCandidates:
    """The cases of ``heldout``, with ``n`` negatives each: items its user has in no pair of
    ``heldout`` or ``seen``.

    Negatives are drawn by rejection, vectorised: each pending case draws a block of items with
    replacement; the first ``n`` draws that its user has not seen and that repeat no earlier
    draw are kept (the first n distinct items of an i.i.d. uniform sequence over the allowed
    items: a uniform sample without replacement); a case still short draws a twice larger block.
    """
    keys = np.unique(np.concatenate([p.keys(n_items) for p in (heldout, *seen)]))
    order = np.lexsort((heldout.items, heldout.users))
    users = torch.from_numpy(heldout.users[order].copy())
    positives = torch.from_numpy(heldout.items[order].copy())
    seen_keys = torch.from_numpy(keys)
    # How many items each user has in some split (every case's user has its held-out item).
    per_user = torch.bincount(seen_keys // n_items)
    wanted = torch.clamp(n_items - per_user[users], min=0, max=n)
    generator = torch.Generator().manual_seed(int(seed))
    negatives = torch.full((len(users), n), -1, dtype=torch.int64)
    pending = torch.nonzero(wanted > 0).flatten()
    # Enough for most cases at once: seen items and repeats are few unless the catalogue is small.
    draws = n + max(16, n // 4)
    while pending.numel():
        step = max(1, _BATCH_ELEMENTS // draws)
        short = []
        for start in range(0, pending.numel(), step):
            rows = pending[start : start + step]
            drawn = torch.randint(0, n_items, (rows.numel(), draws), generator=generator)
            ok = ~_seen(seen_keys, users[rows], drawn, n_items) & ~_repeats(drawn)
            kept = ok & (torch.cumsum(ok, 1) <= wanted[rows, None])
            done = kept.sum(1) == wanted[rows]
            # The kept draws of each finished row, in draw order, into its first columns.
            first = torch.argsort((~kept[done]).to(torch.int8), dim=1, stable=True)[:, :n]
            picked = drawn[done].gather(1, first)
            width = torch.arange(n)[None, :] < wanted[rows[done], None]
            negatives[rows[done]] = torch.where(width, picked, torch.full_like(picked, -1))
            short.append(rows[~done])
        pending = torch.cat(short)
        draws *= 2
    return SampledCandidates(users, torch.cat([positives[:, None], negatives], 1))


def _seen(
    keys: torch.Tensor, users: torch.Tensor, items: torch.Tensor, n_items: int
) -> torch.Tensor:
    """(R, D) whether each drawn item is one its row's user has (``keys`` sorted)."""
    wanted = users[:, None] * n_items + items
    if keys.numel() == 0:
        return torch.zeros_like(wanted, dtype=torch.bool)
    at = torch.searchsorted(keys, wanted).clamp(max=keys.numel() - 1)
    return keys[at] == wanted


def _repeats(drawn: torch.Tensor) -> torch.Tensor:
    """(R, D) whether each draw repeats an earlier draw of its row."""
    values, order = torch.sort(drawn, dim=1, stable=True)
    again = torch.zeros_like(values, dtype=torch.bool)
    again[:, 1:] = values[:, 1:] == values[:, :-1]
    return torch.zeros_like(again).scatter_(1, order, again)


def ranks(scores: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """(C,) rank of each case's held-out item among its candidates (1 = first).

    Args:
        scores: (C, 1 + n) the candidates' scores, the held-out item's first.
        items: (C, 1 + n) their item indices (-1: no candidate, never ranked above).
    """
    target, others = scores[:, :1], scores[:, 1:]
    negatives = items[:, 1:]
    above = (others > target) | ((others == target) & (negatives < items[:, :1]))
    return 1 + (above & (negatives >= 0)).sum(1)


def case_metrics(rank: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Each case's sampled Hit@k and NDCG@k from its rank: ``{"sampled_hit@10": (C,), ...}``."""
    r = rank.to(torch.float64)
    out = {}
    for k in ks:
        inside = (rank <= k).to(torch.float64)
        values = {"hit": inside, "ndcg": inside / torch.log2(r + 1)}
        out.update({f"sampled_{m}@{k}": values[m] for m in SAMPLED})
    return out


@torch.no_grad()
def sampled_user_metrics(
    score_fn: ScoreFn,
    candidates: SampledCandidates,
    n_users: int,
    n_items: int,
    ks: Sequence[int],
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> UserMetrics:
    """Sampled Hit@k and NDCG@k of a scorer, per user with a case (mean over its cases).

    Each batch of users is scored once (``score_fn``: (B,) users -> (B, n_items)), and every
    case of those users reads its candidates' scores from their rows.
    """
    device = torch.device(device)
    ks = tuple(sorted(set(int(k) for k in ks)))
    users, case_user = torch.unique_consecutive(candidates.users, return_inverse=True)
    per_user = torch.bincount(case_user, minlength=users.numel())
    indptr = torch.zeros(users.numel() + 1, dtype=torch.int64)
    torch.cumsum(per_user, 0, out=indptr[1:])
    sums: dict[str, list[torch.Tensor]] = {}
    step = _batch_size(n_items, batch_size)
    for start in range(0, users.numel(), step):
        stop = min(start + step, users.numel())
        scores = score_fn(users[start:stop].to(device)).to(torch.float32)
        cases = slice(int(indptr[start]), int(indptr[stop]))
        rows = (case_user[cases] - start).to(device)
        items = candidates.items[cases].to(device)
        rank = ranks(scores[rows[:, None], items.clamp(min=0)], items)
        # Each user's cases are contiguous: its sum is a difference of running sums (the same
        # on every device, unlike a scattered add).
        bounds = (indptr[start : stop + 1] - indptr[start]).to(device)
        for name, values in case_metrics(rank, ks).items():
            running = torch.cat([values.new_zeros(1), torch.cumsum(values, 0)])
            sums.setdefault(name, []).append((running[bounds[1:]] - running[bounds[:-1]]).cpu())
    counts = per_user.to(torch.float64)
    return UserMetrics(
        users=users.numpy(),
        values={name: (torch.cat(parts) / counts).numpy() for name, parts in sums.items()},
        catalogue={},
        users_skipped=n_users - users.numel(),
    )
