"""Full-ranking evaluation: every item scored for every evaluated user, seen items masked.

For each evaluated user the model scores the whole catalogue; the user's training items (and, when
evaluating the test split, its validation items; and always the items it has seen without liking
them, ``SplitData.seen_only``) are set to ``-inf`` so they can never be recommended;
``torch.topk`` picks the top ``max(ks)``; the metrics of ``recsys.metrics`` are computed on the
hit matrix. All of it runs in user batches on the model's device, with no
per-user Python loop. Within a list, items with equal scores are ordered by item index.

On a cold-item split (``SplitData.cold_items``) each split ranks among its own cold items only,
the cold-start literature's protocol: every other item is masked like a seen one
(:func:`candidate_items`); ``all_items=True`` ranks among the whole catalogue instead (the test
figures' second reading, named ``all_<metric>``).

The same lists give the beyond-accuracy metrics of ``recsys.beyond_accuracy`` (coverage and Gini
of the catalogue; with the training popularity, each user's novelty and ARP) and, given item
buckets, recall and NDCG against each user's held-out items in each bucket
(``recsys.buckets``: head / torso / tail of training popularity).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recsys import beyond_accuracy as beyond
from recsys import buckets as item_buckets
from recsys.data.dataset import Pairs, SplitData
from recsys.metrics import ranking_metrics
from recsys.models.base import Recommender
from recsys.sparse import row_gather

DEFAULT_KS = (10, 20, 50)
# Scores of one batch are (batch, n_items) floats: keep them around 64 MB.
_BATCH_ELEMENTS = 1 << 24

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


class UserItemIndex:
    """Per-user item lists (CSR) on a device, gathered for a batch of users without loops."""

    def __init__(self, pairs: Sequence[Pairs], n_users: int, device: torch.device) -> None:
        tensors = [p.tensors() for p in pairs]
        users = torch.cat([u for u, _ in tensors]) if tensors else torch.empty(0, dtype=torch.int64)
        items = torch.cat([i for _, i in tensors]) if tensors else torch.empty(0, dtype=torch.int64)
        order = torch.argsort(users, stable=True)
        self.items = items[order].to(device)
        counts = torch.bincount(users, minlength=n_users)
        self.indptr = torch.zeros(n_users + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=self.indptr[1:])
        self.indptr = self.indptr.to(device)
        self.counts = counts.to(device)

    def gather(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row positions (within the batch) and item indices of every item of ``users``."""
        return row_gather(self.indptr, self.items, users)


def _batch_size(n_items: int, batch_size: int | None) -> int:
    return batch_size or max(1, min(4096, _BATCH_ELEMENTS // max(n_items, 1)))


def _ranked(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k values and item indices per row; equal scores go to the lower item index first.

    ``torch.topk`` promises nothing among equal values, which would make results depend on the
    device and the batch. Rows where the k-th value is tied with items left outside the list are
    re-selected deterministically; then each list is ordered by (score desc, index asc).
    """
    extra = 1 if k < scores.shape[1] else 0
    values, items = torch.topk(scores, k + extra, dim=1)
    kth = values[:, k - 1 : k]
    # A tie crosses the cut exactly when the (k+1)-th best equals the k-th best.
    crossing = values[:, k] == kth[:, 0] if extra else torch.zeros_like(kth[:, 0], dtype=bool)
    values, items = values[:, :k], items[:, :k]
    rows = torch.nonzero(crossing).flatten()
    if rows.numel():
        sub, sub_kth = scores[rows], kth[rows]
        above = sub > sub_kth
        slots = k - above.sum(1, keepdim=True)
        tied = sub == sub_kth
        chosen = above | (tied & (torch.cumsum(tied, 1) <= slots))
        # Exactly k chosen per row: their indices in ascending order, then sorted by score below.
        idx = torch.nonzero(chosen)[:, 1].view(rows.shape[0], k)
        items[rows] = idx
        values[rows] = sub.gather(1, idx)
    by_index = torch.argsort(items, dim=1)
    values, items = values.gather(1, by_index), items.gather(1, by_index)
    by_score = torch.argsort(values, dim=1, descending=True, stable=True)
    return values.gather(1, by_score), items.gather(1, by_score)


def masked_top_k(
    score_fn: ScoreFn,
    users: torch.Tensor,
    exclude: UserItemIndex,
    n_items: int,
    k: int,
    candidates: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items of ``users`` with excluded items masked out.

    Args:
        candidates: (n_items,) bool on the scores' device: only these items are ranked (the
            others are masked for every user); None: every item.

    Returns:
        (values, items), each (B, min(k, n_items)); masked positions (when a user has fewer than k
        unexcluded items) have value ``-inf``.
    """
    # Scorers return new tensors, which are masked in place; a view (Popularity's expanded row)
    # is materialised first so that masking never writes into the model's own tensors.
    scores = score_fn(users).to(torch.float32)
    if not scores.is_contiguous() or scores._base is not None:
        scores = scores.contiguous() if not scores.is_contiguous() else scores.clone()
    rows, items = exclude.gather(users)
    scores[rows, items] = float("-inf")
    if candidates is not None:
        scores[:, ~candidates] = float("-inf")
    return _ranked(scores, min(k, n_items))


@dataclass
class UserMetrics:
    """Per-user metrics: ``users`` (U,) evaluated user indices, ascending; ``values`` metric name
    (``"ndcg@10"``, ``"novelty@10"``...) -> (U,) float64; ``catalogue`` the metrics of the whole
    set of lists, ``"coverage@k"`` (share of the catalogue in at least one top-k list) and
    ``"gini@k"``; ``users_skipped`` users with nothing held out. A user without a value of a
    metric (NaN: no held-out item in an item bucket) is left out of its mean."""

    users: np.ndarray
    values: dict[str, np.ndarray]
    catalogue: dict[str, float]
    users_skipped: int

    def means(self) -> dict[str, float]:
        """Each metric's mean over the evaluated users, the catalogue's and the user counts."""
        n = len(self.users)
        out = {name: _mean(v) for name, v in self.values.items()} if n else {}
        out.update(self.catalogue)
        out["users"] = n
        out["users_skipped"] = self.users_skipped
        return out

    def merged(self, other: UserMetrics) -> UserMetrics:
        """These metrics and ``other``'s (another protocol on the same users) together."""
        if not np.array_equal(self.users, other.users):
            raise ValueError("merged metrics must be of the same users, in the same order")
        return UserMetrics(
            self.users,
            {**self.values, **other.values},
            {**self.catalogue, **other.catalogue},
            self.users_skipped,
        )

    def prefixed(self, prefix: str) -> UserMetrics:
        """These metrics under names with ``prefix`` (``all_ndcg@10``), to merge beside others
        of the same users."""
        return UserMetrics(
            self.users,
            {prefix + k: v for k, v in self.values.items()},
            {prefix + k: v for k, v in self.catalogue.items()},
            self.users_skipped,
        )


def _mean(values: np.ndarray) -> float:
    known = values[~np.isnan(values)]
    return float(known.mean()) if len(known) else float("nan")


def user_metrics(
    score_fn: ScoreFn,
    heldout: Pairs,
    exclude: Sequence[Pairs],
    n_users: int,
    n_items: int,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    popularity: torch.Tensor | None = None,
    candidates: torch.Tensor | None = None,
    buckets: Mapping[str, torch.Tensor] | None = None,
) -> UserMetrics:
    """Full-ranking metrics of a scorer against held-out pairs, for every evaluated user
    (``.means()``: averaged over them), and the beyond-accuracy metrics of the same lists.

    Args:
        score_fn: maps (B,) user indices on ``device`` to (B, n_items) scores.
        heldout: the pairs to find (validation or test); users without any are skipped.
        exclude: pairs masked from the ranking (training, plus validation when testing).
        n_users, n_items: catalogue sizes.
        ks: cutoffs.
        batch_size: users per batch (default: about 16M scores per batch).
        device: where scores, masks and top-k live.
        popularity: (n_items,) training interactions per item: with it, each user's
            ``novelty@k`` and ``arp@k`` too (``recsys.beyond_accuracy``).
        candidates: (n_items,) bool: rank among these items only (a cold split's); None: all.
        buckets: item bucket name -> (n_items,) bool mask (``recsys.buckets.popularity_buckets``):
            with them, each user's ``<bucket>_recall@k`` and ``<bucket>_ndcg@k`` too (NaN for a
            user without held-out items in the bucket).
    """
    device = torch.device(device)
    if candidates is not None:
        candidates = candidates.to(device)
    ks = tuple(sorted(set(int(k) for k in ks)))
    if not ks or ks[0] < 1:
        raise ValueError(f"cutoffs must be positive integers, got {ks}")
    target = UserItemIndex([heldout], n_users, device)
    mask = UserItemIndex(list(exclude), n_users, device)
    users = torch.nonzero(target.counts > 0).flatten()
    parts: dict[str, list[torch.Tensor]] = {}
    counts = {k: torch.zeros(n_items, dtype=torch.int64, device=device) for k in ks}
    if popularity is not None:
        popularity = popularity.to(device)
    buckets = {name: mask.to(device) for name, mask in (buckets or {}).items()}
    step = _batch_size(n_items, batch_size)
    for start in range(0, users.shape[0], step):
        batch = users[start : start + step]
        values, top = masked_top_k(score_fn, batch, mask, n_items, ks[-1], candidates)
        rows, items = target.gather(batch)
        relevant = torch.zeros(batch.shape[0], n_items, dtype=torch.bool, device=device)
        relevant[rows, items] = True
        hits = relevant.gather(1, top) & torch.isfinite(values)
        for name, per_user in ranking_metrics(hits, target.counts[batch], ks).items():
            parts.setdefault(name, []).append(per_user.to(torch.float64).cpu())
        valid = torch.isfinite(values)
        for name, per_user in item_buckets.bucket_metrics(
            relevant, top, valid, buckets, ks
        ).items():
            parts.setdefault(name, []).append(per_user.cpu())
        for k in ks:
            counts[k] += beyond.item_counts(top, valid, n_items, k)
        if popularity is not None:
            for k in ks:
                novelty = beyond.novelty(top, valid, popularity, n_users, k)
                arp = beyond.average_popularity(top, valid, popularity, k)
                parts.setdefault(f"novelty@{k}", []).append(novelty.cpu())
                parts.setdefault(f"arp@{k}", []).append(arp.cpu())
    catalogue = {}
    for k, c in counts.items():
        catalogue[f"coverage@{k}"] = beyond.coverage(c)
        catalogue[f"gini@{k}"] = beyond.gini(c)
    return UserMetrics(
        users=users.cpu().numpy(),
        values={name: torch.cat(p).numpy() for name, p in parts.items()},
        catalogue=catalogue,
        users_skipped=n_users - int(users.shape[0]),
    )


def training_popularity(data: SplitData) -> torch.Tensor:
    """(n_items,) int64: each item's training interactions (what novelty and ARP measure)."""
    return torch.bincount(data.train.tensors()[1], minlength=data.n_items)


def split_pairs(data: SplitData, split: str) -> tuple[Pairs, list[Pairs]]:
    """Held-out pairs of ``split`` and the pairs masked when ranking for it (with the
    low-rated ``seen_only`` pairs, when the split has them)."""
    if split == "val":
        return data.val, data.masked(("train",))
    if split == "test":
        if data.test is None:
            raise ValueError("this SplitData carries no test split (it is a tuning trial's copy)")
        return data.test, data.masked(("train", "val"))
    raise ValueError(f"split must be 'val' or 'test', got {split!r}")


def candidate_items(data: SplitData, split: str) -> torch.Tensor | None:
    """(n_items,) bool: the items a ranking for ``split`` is among; a cold-item split's own
    cold items, None (every item) for any other split."""
    if data.cold_items is None:
        return None
    allowed = torch.zeros(data.n_items, dtype=torch.bool)
    allowed[torch.tensor(data.cold_items.of(split))] = True  # a copy: may be read-only
    return allowed


@torch.no_grad()
def evaluate(
    model: Recommender,
    data: SplitData,
    split: str = "val",
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Full-ranking metrics of ``model`` on the validation or test split of ``data``, averaged
    over users.

    Training items are always masked; validation items too when ``split == "test"``. Beside the
    ranking metrics: each cut-off's coverage, Gini, novelty and ARP of the same lists, novelty
    and ARP from the training popularity.
    """
    return evaluate_users(model, data, split, ks, batch_size).means()


@torch.no_grad()
def evaluate_users(
    model: Recommender,
    data: SplitData,
    split: str = "val",
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int | None = None,
    all_items: bool = False,
    buckets: Mapping[str, torch.Tensor] | None = None,
) -> UserMetrics:
    """Like :func:`evaluate`, with every evaluated user's metrics.

    Args:
        all_items: on a cold-item split, rank among every item, not the split's cold items.
        buckets: item buckets whose metrics each user gets too (see :func:`user_metrics`).
    """
    heldout, exclude = split_pairs(data, split)
    candidates = None if all_items else candidate_items(data, split)
    was_training = model.training
    model.eval()
    try:
        return user_metrics(
            model.score,
            heldout,
            exclude,
            data.n_users,
            data.n_items,
            ks,
            batch_size,
            model.device,
            popularity=training_popularity(data),
            candidates=candidates,
            buckets=buckets,
        )
    finally:
        model.train(was_training)


@torch.no_grad()
def recommend(
    model: Recommender,
    data: SplitData,
    users: torch.Tensor,
    k: int = 100,
    exclude_splits: Sequence[str] = ("train", "val"),
    batch_size: int | None = None,
    mask: UserItemIndex | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k recommendations of ``users`` with the items of ``exclude_splits`` removed (and the
    split's ``seen_only`` pairs, when it has them).

    Args:
        mask: the index of those items on the model's device, when the caller keeps one (a
            served model answers many small requests); built from ``exclude_splits`` and
            ``seen_only`` if None.

    Returns:
        (items, scores), each (len(users), min(k, n_items)) on the CPU; positions a user cannot
        fill (fewer unexcluded items than k) hold item -1 and score -inf.
    """
    if mask is None:
        mask = UserItemIndex(data.masked(tuple(exclude_splits)), data.n_users, model.device)
    was_training = model.training
    model.eval()
    out_items, out_scores = [], []
    step = _batch_size(data.n_items, batch_size)
    try:
        for start in range(0, users.shape[0], step):
            batch = users[start : start + step].to(model.device)
            values, top = masked_top_k(model.score, batch, mask, data.n_items, k)
            top = torch.where(torch.isfinite(values), top, torch.full_like(top, -1))
            out_items.append(top.cpu())
            out_scores.append(values.cpu())
    finally:
        model.train(was_training)
    width = min(k, data.n_items)
    if not out_items:
        return torch.empty(0, width, dtype=torch.int64), torch.empty(0, width)
    return torch.cat(out_items), torch.cat(out_scores)
