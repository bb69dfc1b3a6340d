"""Approximate top-k for dot-product models (``VectorScorer``) in serving: a FAISS IVF index over
the item vectors, queried with each user's vector, the user's seen items removed afterwards.

Only serving uses it, and only for catalogues large enough for it to pay
(``benchmarks/ann_serving.py`` measures where); evaluation always scores every item exactly.

The index is IVF-Flat with inner products (Jegou, Douze and Schmid, TPAMI 2011; FAISS: Johnson,
Douze and Jegou, 2019), over the item vectors augmented by one coordinate
sqrt(M^2 - ||v_i||^2), M the largest item norm, with 0 for the query (Bachrach et al., "Speeding
up the Xbox recommender system using a Euclidean transformation for inner-product spaces",
RecSys 2014). Every augmented item has norm M, so the largest inner product is the nearest
neighbour and spherical k-means cells hold the candidates of a query, whatever the norms of the
model's item vectors (a factor model's differ; a text model's are 1), while the inner product
with the query is unchanged: the returned scores are the model's.

IVF rather than HNSW (``benchmarks/ann_serving.py --hnsw``, 50k and 100k items, one core): IVF
found 0.96-1.00 of the exact top 10 on both 64-d factor-like and 384-d text-like vectors, HNSW
(M 32, efSearch 128) 1.00 on the 64-d ones but 0.80-0.87 on the 384-d ones; IVF builds 6-17x
faster (1-8 s against 14-46 s: the first request pays it) and stores no graph (HNSW's M 32 adds
256 bytes per item). HNSW answers 384-d queries faster (0.3 ms against 2-3 ms alone); an index
that keeps its recall on text vectors was preferred.

A user's list must hold k items that are not seen (training and validation items), so the index
is asked for k + (the most items a user of the batch has seen) candidates; users who have seen
more than ``max_seen`` items, or whose probed cells held fewer than k unseen candidates, are
scored exactly instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from recsys.data.dataset import SplitData
from recsys.errors import require
from recsys.evaluate import UserItemIndex, recommend
from recsys.models.base import Recommender, VectorScorer

# Measured with benchmarks/ann_serving.py (one core): from 100k items the index answers a
# one-user request 4-13x faster than exact scoring (64-d and 384-d vectors) and a 100-user one
# 0.7-3x; at 50k, 2-3x and 0.4-1.2x, not worth losing up to 4% of the exact top 10.
DEFAULT_MIN_ITEMS = 100_000
DEFAULT_NPROBE = 32
DEFAULT_MAX_SEEN = 1_000
# k-means on at most this many points per cell, for ten iterations: 16x less work than FAISS's
# default (256 points, 25 iterations); the whole build takes 10-70 s at 500k items on one core.
_TRAIN_POINTS_PER_LIST = 40
_TRAIN_ITERATIONS = 10


@dataclass(frozen=True)
class AnnConfig:
    """When and how serving answers top-k through the index (``model_config`` keys ``ann_*``).

    Attributes:
        min_items: catalogues of at least this many items use the index; ``None``: never.
        nprobe: IVF cells searched per user (of sqrt(n_items)); more is slower and
            finds more of the exact top-k.
        max_seen: users who have seen more items than this are scored exactly (the index
            would be asked for k + max_seen candidates).
    """

    min_items: int | None = DEFAULT_MIN_ITEMS
    nprobe: int = DEFAULT_NPROBE
    max_seen: int = DEFAULT_MAX_SEEN

    def __post_init__(self) -> None:
        for name in ("min_items", "nprobe", "max_seen"):
            value = getattr(self, name)
            if name == "min_items" and value is None:
                continue
            low = 0 if name != "nprobe" else 1
            require(
                isinstance(value, int) and not isinstance(value, bool) and value >= low,
                f"ann_{name} must be an integer >= {low}"
                + (" (or null to turn the index off)" if name == "min_items" else "")
                + f", got {value!r}",
            )

    @classmethod
    def from_model_config(cls, config: dict) -> AnnConfig:
        """The ``ann_min_items``, ``ann_nprobe`` and ``ann_max_seen`` keys of an MLflow
        ``model_config`` (others are ignored); missing keys keep their defaults."""
        values = {}
        for name in ("min_items", "nprobe", "max_seen"):
            if f"ann_{name}" in config:
                value = config[f"ann_{name}"]
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                values[name] = value
        return cls(**values)

    def applies(self, model: Recommender) -> bool:
        """Whether ``model``'s top-k goes through the index: a dot-product model on the CPU with
        a catalogue of at least ``min_items`` items. On CUDA, exact scoring is one matrix
        product on the GPU, which the CPU index (faiss-cpu) does not beat."""
        return (
            self.min_items is not None
            and model.n_items >= self.min_items
            and isinstance(model, VectorScorer)
            and model.device.type == "cpu"
        )


def list_count(n_items: int) -> int:
    """IVF cells for ``n_items`` vectors: sqrt(n), the low end of FAISS's advice (1-16 sqrt(n)),
    since building costs n x cells x d (about a minute at 500k items of 384-d on 2 cores)."""
    return max(1, min(n_items, round(math.sqrt(n_items))))


class ItemIndex:
    """The IVF-Flat inner-product index of a model's item vectors (see the module docstring).

    Args:
        vectors: (n_items, d) float item vectors (``VectorScorer.item_vectors()``).
        nprobe: cells searched per query.
        seed: k-means seed (the index is the same for the same vectors).
    """

    def __init__(self, vectors: torch.Tensor, nprobe: int = DEFAULT_NPROBE, seed: int = 0) -> None:
        import faiss

        # FAISS and torch share the process's cores: as many threads as torch's intra-op pool.
        faiss.omp_set_num_threads(torch.get_num_threads())
        items = vectors.detach().to("cpu", torch.float32).numpy()
        self.n_items, self.dim = items.shape
        squared = np.einsum("ij,ij->i", items, items)
        extra = np.sqrt(np.maximum(squared.max() - squared, 0.0)).astype(np.float32)
        augmented = np.ascontiguousarray(np.hstack([items, extra[:, None]]))
        nlist = list_count(self.n_items)
        quantizer = faiss.IndexFlatIP(self.dim + 1)
        index = faiss.IndexIVFFlat(quantizer, self.dim + 1, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical = True
        index.cp.niter = _TRAIN_ITERATIONS
        index.cp.seed = seed
        index.cp.max_points_per_centroid = _TRAIN_POINTS_PER_LIST
        index.cp.min_points_per_centroid = 1  # small catalogues: no warning for few points
        index.train(augmented)
        index.add(augmented)
        index.nprobe = min(nprobe, nlist)
        self.index = index

    def search(self, queries: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best items by inner product of each query.

        Args:
            queries: (B, d) user vectors.
            n: candidates per query (at most n_items).

        Returns:
            ``scores`` (B, n) float32 inner products and ``items`` (B, n) int64, best first;
            slots the probed cells could not fill hold item -1 and score -inf.
        """
        q = queries.detach().to("cpu", torch.float32).numpy()
        q = np.ascontiguousarray(np.hstack([q, np.zeros((q.shape[0], 1), np.float32)]))
        scores, items = self.index.search(q, n)
        scores[items < 0] = -np.inf
        return scores, items


def index_top_k(
    model: Recommender,
    index: ItemIndex,
    users: torch.Tensor,
    counts: np.ndarray,
    seen: UserItemIndex,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k unseen items of ``users`` (who have seen ``counts`` items) from the index.

    Returns:
        ``answered`` (B,) bool: the index's candidates held the user's whole list; ``items``
        (B, k) int64 and ``scores`` (B, k) float32, valid where ``answered``.
    """
    n_items = index.n_items
    n = min(n_items, k + int(counts.max(initial=0)))
    scores, items = index.search(model.user_vectors(users.to(model.device)), n)
    rows, seen_items = seen.gather(users.to(seen.counts.device))
    seen_keys = rows.cpu().numpy() * n_items + seen_items.cpu().numpy()
    keys = np.arange(len(users))[:, None] * n_items + items
    scores[(items >= 0) & np.isin(keys, seen_keys)] = -np.inf
    # By score, best first, then by item index: the exact ranking's order of ties.
    order = np.lexsort((items, -scores), axis=1)[:, :k]
    items = np.take_along_axis(items, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    filled = np.isfinite(scores)
    # A user's exact list holds min(k, unseen items) entries; a shorter one is the index's doing.
    answered = filled.sum(axis=1) >= np.minimum(k, n_items - counts)
    items[~filled] = -1
    return answered, items, scores


@torch.no_grad()
def recommend_ann(
    model: Recommender,
    data: SplitData,
    index: ItemIndex,
    users: torch.Tensor,
    k: int,
    seen: UserItemIndex,
    max_seen: int = DEFAULT_MAX_SEEN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`recommend` with ``mask=seen``, through the index where it can answer.

    Users who have seen more than ``max_seen`` items, and those whose candidates held too few
    unseen items, are scored exactly.

    Args:
        model: a ``VectorScorer`` whose item vectors ``index`` holds, in eval mode.
        data: the split the model was built on (for the exact scoring).
        index: see :class:`ItemIndex`.
        users: (B,) int64 user indices.
        k: list length (at most n_items).
        seen: every user's seen items (training and validation), on the model's device.
        max_seen: see :class:`AnnConfig`.

    Returns:
        (items, scores), each (B, k) on the CPU, as :func:`recommend` returns them.
    """
    counts = seen.counts[users.to(seen.counts.device)].cpu().numpy()
    items = np.full((len(users), k), -1, dtype=np.int64)
    scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    exact = counts > max_seen
    asked = np.flatnonzero(~exact)
    if asked.size:
        answered, top, values = index_top_k(model, index, users[asked], counts[asked], seen, k)
        items[asked[answered]], scores[asked[answered]] = top[answered], values[answered]
        exact[asked[~answered]] = True
    if exact.any():
        top, values = recommend(model, data, users[exact], k=k, mask=seen)
        items[exact], scores[exact] = top.numpy(), values.numpy()
    return torch.from_numpy(items), torch.from_numpy(scores)
