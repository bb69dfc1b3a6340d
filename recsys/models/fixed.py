"""A recommender over given user and item vectors, scored by their inner products.

Not a registered model (nothing is trained): it wraps vectors computed elsewhere, e.g. to serve
precomputed embeddings or to measure the FAISS item index (``recsys.ann``) on vectors of a
known shape. It is a ``VectorScorer``.
"""

from __future__ import annotations

import torch

from recsys.models.base import Recommender


class FixedVectors(Recommender):
    """score(u, i) = <users[u], items[i]>.

    Args:
        users: (n_users, d) user vectors.
        items: (n_items, d) item vectors.
    """

    def __init__(self, users: torch.Tensor, items: torch.Tensor) -> None:
        super().__init__()
        self.n_users, self.n_items = users.shape[0], items.shape[0]
        self.register_buffer("users", users)
        self.register_buffer("items", items)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.users[users]

    def item_vectors(self) -> torch.Tensor:
        return self.items

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(users) @ self.items.T
