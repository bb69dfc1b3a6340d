"""EASE: a closed-form linear item-item autoencoder (Steck, WWW 2019)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError, require
from recsys.models.base import Recommender
from recsys.models.history import History


@dataclass(frozen=True)
class EASEConfig:
    """EASE's one hyperparameter: the L2 weight lambda on the item-item matrix."""

    l2: float = 250.0

    def __post_init__(self) -> None:
        require(
            isinstance(self.l2, int | float) and math.isfinite(self.l2) and self.l2 > 0,
            f"l2 must be a number > 0 (G + l2*I must be invertible), got {self.l2!r}",
        )


def ease_weights(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """The EASE item-item matrix B from the co-occurrence matrix G = X^T X.

    P = (G + lambda I)^-1, B = -P / diag(P) column-wise, diag(B) = 0. The inverse is taken in
    float64: with a small lambda, G + lambda I is ill-conditioned enough for float32 to lose
    several digits.

    Args:
        gram: (n_items, n_items) co-occurrence matrix.
        l2: lambda > 0.

    Returns:
        (n_items, n_items) float32 B on ``gram``'s device.
    """
    g = gram.to(torch.float64)
    g.diagonal().add_(l2)
    # Drop each n_items^2 intermediate as soon as the next exists: at 25k items each is 5 GB.
    factor = torch.linalg.cholesky(g)
    del g
    p = torch.cholesky_inverse(factor)
    del factor
    p.div_(-p.diagonal().clone().unsqueeze(0))
    p.diagonal().zero_()
    return p.to(torch.float32)


class EASE(Recommender):
    """EASE (Steck: "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

    Scores are X_u B with B the closed-form solution of min ||X - XB||^2 + lambda ||B||^2
    subject to diag(B) = 0.

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for scoring.
        weights: (n_items, n_items) fitted B (see :func:`ease_weights` and :meth:`fit`).
    """

    def __init__(self, train_csr: torch.Tensor, weights: torch.Tensor) -> None:
        super().__init__()
        self.history = History(train_csr)
        self.n_users, self.n_items = self.history.n_users, self.history.n_items
        self.register_buffer("weights", weights)

    @classmethod
    def fit(cls, train_csr: torch.Tensor, l2: float, device: torch.device | None = None) -> EASE:
        """Fits B on ``device`` (CPU by default) and returns the model there."""
        if not l2 > 0:
            raise RecsysError(f"ease: l2 must be > 0 (G + l2*I must be invertible), got {l2}")
        history = History(train_csr).to(device or "cpu")
        weights = ease_weights(history.cooccurrence(), l2)
        return cls(train_csr, weights).to(device or "cpu")

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.history.rows(users) @ self.weights


def build(cfg: EASEConfig, data: SplitData, device: torch.device) -> EASE:
    return EASE.fit(data.train_csr(), cfg.l2, device)
