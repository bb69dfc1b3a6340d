"""UserKNN: user-based nearest neighbours with shrunk cosine or Pearson similarity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from recsys.data.dataset import SplitData
from recsys.errors import require
from recsys.models.base import Recommender
from recsys.models.history import History

SIMILARITIES = ("cosine", "pearson")


@dataclass(frozen=True)
class UserKNNConfig:
    """UserKNN hyperparameters: neighbours per user, the shrinkage term, the similarity, and
    whether a user's neighbour weights are rescaled to sum 1 in absolute value.

    Defaults: the reference's (``UserKNNCFRecommender.fit``: topK 50, shrink 100, cosine).
    """

    k: int = 50
    shrink: float = 100.0
    similarity: str = "cosine"
    normalize: bool = False

    def __post_init__(self) -> None:
        require(
            isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 1,
            f"k must be an integer >= 1 (neighbour users per user), got {self.k!r}",
        )
        require(
            isinstance(self.shrink, int | float)
            and not isinstance(self.shrink, bool)
            and math.isfinite(self.shrink)
            and self.shrink >= 0,
            f"shrink must be a number >= 0, got {self.shrink!r}",
        )
        require(
            self.similarity in SIMILARITIES,
            f"similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}",
        )
        require(
            isinstance(self.normalize, bool),
            f"normalize must be true or false, got {self.normalize!r}",
        )


def user_neighbours(
    history: History, k: int, shrink: float, similarity: str = "cosine", block: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` users most similar to each user.

    With x_u the binary training row of u, a_u = |I_u| and n = n_items:

    - ``cosine``: sim(u, v) = x_u . x_v / (|x_u| |x_v| + shrink) = |I_u & I_v| /
      (sqrt(a_u a_v) + shrink);
    - ``pearson``: the same on rows centred on their mean over all n items, x_u - a_u / n:
      (|I_u & I_v| - a_u a_v / n) / (sqrt(a_u - a_u^2/n) sqrt(a_v - a_v^2/n) + shrink), the
      correlation of the two 0/1 rows. The data hold no ratings (positives are thresholded when
      prepared), and centring on the mean over the *rated* items, as for ratings, would make
      every centred entry of a 0/1 row 0.

    sim(u, u) = 0, and a user with a zero norm has similarity 0 to everyone (not NaN). Computed
    in blocks of users, so the dense (n_users, n_users) similarity is never built whole.

    Args:
        history: the training matrix.
        k: neighbours kept per user (clipped to n_users).
        shrink: shrinkage >= 0.
        similarity: ``"cosine"`` or ``"pearson"``.
        block: users per block (default: see :meth:`History.cooccurrence_blocks`).

    Returns:
        ``neighbours`` (n_users, k) int64, sorted within each row, and ``weights`` (n_users, k)
        float32: row u lists its neighbours v and sim(u, v).
    """
    n_users, n_items = history.n_users, history.n_items
    k = min(k, n_users)
    activity = (history.crow[1:] - history.crow[:-1]).to(torch.float32)
    if similarity == "pearson":
        norms = (activity - activity**2 / n_items).clamp_min(0).sqrt()
    else:
        norms = activity.sqrt()
    # History of X^T: its "item" co-occurrences are the users' X X^T.
    by_item = History(history.item_csr())
    neighbours, weights = [], []
    for users, overlap in by_item.cooccurrence_blocks(block):
        if similarity == "pearson":
            overlap = overlap - activity.unsqueeze(1) * activity[users].unsqueeze(0) / n_items
        denom = norms.unsqueeze(1) * norms[users].unsqueeze(0) + shrink
        zero_norm = (norms.unsqueeze(1) == 0) | (norms[users].unsqueeze(0) == 0)
        sim = torch.where(
            zero_norm | (denom <= 0), torch.zeros_like(overlap), overlap / denom.clamp_min(1e-12)
        )
        sim[users, torch.arange(users.shape[0], device=sim.device)] = 0.0
        top = torch.topk(sim, k, dim=0)
        index, order = torch.sort(top.indices.T, dim=1)
        neighbours.append(index)
        weights.append(torch.gather(top.values.T, 1, order))
    return torch.cat(neighbours), torch.cat(weights)


class UserKNN(Recommender):
    """User-based k-nearest-neighbour collaborative filtering (Resnick et al., CSCW 1994;
    Herlocker et al., SIGIR 1999): score(u, i) = sum over the k users v most similar to u of
    sim(u, v) r_vi, with ``normalize`` divided by sum_v |sim(u, v)|.

    The normalisation divides all of a user's scores by one positive number, so it changes no
    ranking; it puts scores on the [-1, 1] scale of a weighted vote. (Dacrema et al.'s
    ``UserKNNCFRecommender`` keeps the top-k per *column* of the similarity, i.e. sums over the
    users v that count u among *their* k nearest; this keeps each user's own k nearest.)

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for scoring.
        neighbours: (n_users, k) int64 neighbour users of each user.
        weights: (n_users, k) float32 weights of those neighbours.
    """

    def __init__(
        self, train_csr: torch.Tensor, neighbours: torch.Tensor, weights: torch.Tensor
    ) -> None:
        super().__init__()
        self.history = History(train_csr)
        self.item_rows = History(self.history.item_csr())  # X^T, for X^T S_u^T
        self.n_users, self.n_items = self.history.n_users, self.history.n_items
        self.register_buffer("neighbours", neighbours)
        self.register_buffer("weights", weights)

    @classmethod
    def fit(
        cls,
        train_csr: torch.Tensor,
        k: int,
        shrink: float,
        similarity: str = "cosine",
        normalize: bool = False,
        device: torch.device | None = None,
    ) -> UserKNN:
        """Computes the neighbourhoods on ``device`` (CPU by default); returns the model there."""
        history = History(train_csr).to(device or "cpu")
        neighbours, weights = user_neighbours(history, k, shrink, similarity)
        if normalize:
            total = weights.abs().sum(dim=1, keepdim=True)
            weights = torch.where(total > 0, weights / total.clamp_min(1e-30), weights)
        return cls(train_csr, neighbours, weights).to(device or "cpu")

    def score(self, users: torch.Tensor) -> torch.Tensor:
        rows = torch.zeros(users.shape[0], self.n_users, device=users.device)
        rows.scatter_(1, self.neighbours[users], self.weights[users])  # S[users], (B, n_users)
        return (self.item_rows.csr() @ rows.T).T


def build(cfg: UserKNNConfig, data: SplitData, device: torch.device) -> UserKNN:
    return UserKNN.fit(data.train_csr(), cfg.k, cfg.shrink, cfg.similarity, cfg.normalize, device)
