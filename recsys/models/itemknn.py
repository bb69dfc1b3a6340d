"""ItemKNN: item-based nearest neighbours with shrunk cosine similarity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError, require
from recsys.models.base import Recommender
from recsys.models.history import History
from recsys.sparse import sparse_csr


@dataclass(frozen=True)
class ItemKNNConfig:
    """ItemKNN hyperparameters: neighbours kept per item, and the cosine shrinkage term."""

    k: int = 100
    shrink: float = 0.0

    def __post_init__(self) -> None:
        require(
            isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 1,
            f"k must be an integer >= 1, got {self.k!r}",
        )
        require(
            isinstance(self.shrink, int | float)
            and math.isfinite(self.shrink)
            and self.shrink >= 0,
            f"shrink must be a number >= 0, got {self.shrink!r}",
        )


def knn_neighbours(
    history: History, k: int, shrink: float, block: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k items most similar to each item under shrunk cosine similarity.

    sim(i, j) = |U_i & U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink), and sim(j, j) = 0. Computed
    block by block over items, so the dense (n_items, n_items) similarity is never built whole.

    Args:
        history: the training matrix.
        k: neighbours kept per item (at most n_items).
        shrink: shrinkage >= 0; larger values discount similarities of rarely seen items.
        block: items per block (default: see :meth:`History.cooccurrence_blocks`).

    Returns:
        ``neighbours`` (n_items, k) int64, sorted within each row, and ``weights`` (n_items, k)
        float32: row j lists the items i whose interactions count towards the score of j.
    """
    n = history.n_items
    k = min(k, n)
    norms = torch.bincount(history.col, minlength=n).to(torch.float32).sqrt()
    neighbours, weights = [], []
    for items, counts in history.cooccurrence_blocks(block):
        denom = norms.unsqueeze(1) * norms[items].unsqueeze(0) + shrink
        # An item nobody interacted with has zero counts; keep its similarities at 0, not NaN.
        sim = torch.where(denom > 0, counts / denom.clamp_min(1e-12), torch.zeros_like(counts))
        sim[items, torch.arange(items.shape[0], device=sim.device)] = 0.0
        top = torch.topk(sim, k, dim=0)
        # Sparse CSR wants the column indices of each row in ascending order.
        index, order = torch.sort(top.indices.T, dim=1)
        neighbours.append(index)
        weights.append(torch.gather(top.values.T, 1, order))
    return torch.cat(neighbours), torch.cat(weights)


class ItemKNN(Recommender):
    """Item-based k-nearest-neighbour collaborative filtering (Sarwar et al., WWW 2001;
    Deshpande and Karypis, TOIS 2004): score(u, j) = sum of sim(i, j) over the user's training
    items i among the k neighbours of j.

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for scoring.
        neighbours: (n_items, k) int64 neighbour indices of each item.
        weights: (n_items, k) float32 similarities to those neighbours.
    """

    def __init__(
        self, train_csr: torch.Tensor, neighbours: torch.Tensor, weights: torch.Tensor
    ) -> None:
        super().__init__()
        self.history = History(train_csr)
        self.n_users, self.n_items = self.history.n_users, self.history.n_items
        self.register_buffer("neighbours", neighbours)
        self.register_buffer("weights", weights)

    @classmethod
    def fit(
        cls, train_csr: torch.Tensor, k: int, shrink: float, device: torch.device | None = None
    ) -> ItemKNN:
        """Computes the neighbourhoods on ``device`` (CPU by default); returns the model there."""
        if k < 1 or shrink < 0:
            raise RecsysError(f"itemknn: need k >= 1 and shrink >= 0, got k={k}, shrink={shrink}")
        history = History(train_csr).to(device or "cpu")
        neighbours, weights = knn_neighbours(history, k, shrink)
        return cls(train_csr, neighbours, weights).to(device or "cpu")

    def similarity_t(self) -> torch.Tensor:
        """S^T as an (n_items, n_items) sparse CSR tensor (row j: the neighbours of item j)."""
        n, k = self.neighbours.shape
        crow = torch.arange(0, n * k + 1, k, device=self.neighbours.device)
        return sparse_csr(crow, self.neighbours.reshape(-1), self.weights.reshape(-1), (n, n))

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return (self.similarity_t() @ self.history.rows(users).T).T


def build(cfg: ItemKNNConfig, data: SplitData, device: torch.device) -> ItemKNN:
    return ItemKNN.fit(data.train_csr(), cfg.k, cfg.shrink, device)
