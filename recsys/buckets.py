"""Buckets of users and items for the leaderboard's breakdowns: users by training activity (cold
users below a threshold), items by training popularity (head / torso / tail), and the ranking
metrics restricted to each item bucket.

**Item popularity** (``popularity_buckets``): with pop_i an item's TRAINING interactions,
N = sum_i pop_i, and S(p) = sum of pop_j over the items with pop_j <= p,

- head: S(pop_i) > (1 - HEAD_SHARE) N, i.e. the items more popular than i hold less than
  HEAD_SHARE of the interactions: the most popular items that together make the first 20% of
  the training interactions (the item that crosses 20% included);
- tail: S(pop_i) <= TAIL_SHARE N: the least popular items that together make at most 20% of the
  interactions (items never seen in training among them);
- torso: the rest.

This is the head / mid / tail split of the popularity-bias literature (Abdollahpouri, Mansoury,
Burke and Mobasher, "The Connection Between Popularity Bias, Calibration, and Fairness in
Recommendation", RecSys 2020; "User-centered Evaluation of Popularity Bias in Recommender
Systems", UMAP 2021: head = the most popular items making 20% of the ratings, tail = the least
popular making 20%, mid the rest). The rule reads popularities, not positions in a sorted list,
so items of equal popularity always share a bucket; head and tail never meet (they would hold
more than 80% of N between them).

**Metrics per item bucket** (``bucket_metrics``): the model's list is its usual full-ranking top k
(nothing re-ranked); the relevant set is the user's held-out items in the bucket, T_u^b:

- Recall_b@k = |top-k ∩ T_u^b| / |T_u^b|;
- NDCG_b@k = sum over the ranks r <= k holding an item of T_u^b of 1 / log2(r + 1), over the
  IDCG of min(|T_u^b|, k) hits;

users with no held-out item in the bucket have no value (NaN; left out of means and intervals).
Names: ``head_recall@10``, ``torso_ndcg@10``, ``tail_ndcg@20``...

**User activity** (``activity_buckets``): a user's training interactions n_u; ``cold`` the users
with n_u < threshold (``--cold-user-threshold``, default 5), then the others in up to four
quantile buckets ``q1`` .. ``q4`` of n_u over the evaluated users (each bucket's range is inclusive;
fewer buckets where counts tie across a quartile, so a user's bucket depends on n_u alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recsys.metrics import ndcg, recall

POPULARITY_BUCKETS = ("head", "torso", "tail")
HEAD_SHARE = 0.2
TAIL_SHARE = 0.2
# What is measured within each item bucket (recall and NDCG, at every reported cut-off).
BUCKET_METRICS = {"recall": recall, "ndcg": ndcg}
# Users with fewer training interactions than this are cold: the bound of a 5-core, the
# filtering most benchmark datasets get, so below it are the users such benchmarks never score.
COLD_USER_THRESHOLD = 5
QUANTILES = 4


def popularity_buckets(popularity: torch.Tensor) -> dict[str, torch.Tensor]:
    """Head, torso and tail of the catalogue (see the module docstring).

    Args:
        popularity: (I,) training interactions of each item.

    Returns:
        bucket name -> (I,) bool mask; the masks partition the items.
    """
    pop = popularity.to(torch.float64)
    total = float(pop.sum())
    ordered = torch.sort(pop).values
    cumulative = torch.cumsum(ordered, 0)
    # S(pop_i): the interactions of every item at most as popular as item i.
    upto = torch.searchsorted(ordered, pop, right=True) - 1
    at_most = cumulative[upto]
    head = at_most > (1 - HEAD_SHARE) * total
    tail = (at_most <= TAIL_SHARE * total) & ~head
    return {"head": head, "torso": ~(head | tail), "tail": tail}


def bucket_names(ks: Sequence[int], buckets: Sequence[str] = POPULARITY_BUCKETS) -> list[str]:
    """``head_recall@10``, ``head_ndcg@10``, ... for every bucket and cut-off."""
    return [f"{b}_{m}@{k}" for b in buckets for k in ks for m in BUCKET_METRICS]


def bucket_metrics(
    relevant: torch.Tensor,
    top: torch.Tensor,
    valid: torch.Tensor,
    buckets: Mapping[str, torch.Tensor],
    ks: Sequence[int],
) -> dict[str, torch.Tensor]:
    """Recall and NDCG of each user's list against its held-out items in each bucket.

    Args:
        relevant: (B, I) bool, the users' held-out items.
        top: (B, K) the ranked lists' item indices; ``valid`` (B, K) which positions hold one.
        buckets: name -> (I,) bool mask, on ``relevant``'s device.
        ks: cut-offs, each at most K (or the catalogue).

    Returns:
        ``{"head_recall@10": (B,) float64, ...}``, NaN for a user without held-out items in
        the bucket.
    """
    out = {}
    for name, mask in buckets.items():
        inside = relevant & mask.unsqueeze(0)
        n_relevant = inside.sum(1)
        hits = inside.gather(1, top) & valid
        missing = n_relevant == 0
        for k in ks:
            for metric, fn in BUCKET_METRICS.items():
                values = fn(hits, n_relevant.clamp(min=1), k).to(torch.float64)
                out[f"{name}_{metric}@{k}"] = values.masked_fill(missing, float("nan"))
    return out


@dataclass(frozen=True)
class ActivityBucket:
    """Users whose training interactions lie in ``[low, high]``."""

    name: str
    low: int
    high: int

    @property
    def label(self) -> str:
        return f"{self.low}" if self.low == self.high else f"{self.low}-{self.high}"


def activity_buckets(
    counts: np.ndarray, threshold: int = COLD_USER_THRESHOLD, quantiles: int = QUANTILES
) -> list[ActivityBucket]:
    """The cold bucket (when ``threshold`` > 0) and the quantile buckets of the others.

    Args:
        counts: (U,) training interactions of each evaluated user.
        threshold: users below it are cold.
        quantiles: how many buckets the warm users make at most.

    Returns:
        The buckets, ascending and covering every count of ``counts``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    out = [ActivityBucket("cold", 0, threshold - 1)] if threshold > 0 else []
    warm = counts[counts >= threshold]
    if not len(warm):
        return out
    top = int(warm.max())
    edges = np.quantile(warm, np.arange(1, quantiles) / quantiles, method="lower")
    cuts = sorted({int(e) for e in edges if e < top})
    lows = [int(warm.min()), *(c + 1 for c in cuts)]
    highs = [*cuts, top]
    for j, (low, high) in enumerate(zip(lows, highs, strict=True), 1):
        out.append(ActivityBucket(f"q{j}", low, high))
    return out


def assign(counts: np.ndarray, buckets: Sequence[ActivityBucket]) -> np.ndarray:
    """(U,) each user's bucket index in ``buckets`` (-1: in none)."""
    counts = np.asarray(counts, dtype=np.int64)
    if not buckets:
        return np.full(len(counts), -1)
    lows = np.array([b.low for b in buckets], dtype=np.int64)
    highs = np.array([b.high for b in buckets], dtype=np.int64)
    index = np.minimum(np.searchsorted(highs, counts, side="left"), len(buckets) - 1)
    inside = (counts >= lows[index]) & (counts <= highs[index])
    return np.where(inside, index, -1)
