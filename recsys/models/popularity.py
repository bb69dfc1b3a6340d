"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recsys.data.dataset import SplitData
from recsys.models.base import Recommender


@dataclass(frozen=True)
class PopularityConfig:
    """Popularity has no hyperparameters."""


class Popularity(Recommender):
    """Scores each item by its number of training interactions, the same for every user."""

    def __init__(self, n_users: int, n_items: int, item_counts: torch.Tensor) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.register_buffer("item_counts", item_counts.to(torch.float32))

    @classmethod
    def fit(cls, data: SplitData, device: torch.device | None = None) -> Popularity:
        counts = torch.bincount(data.train.tensors()[1], minlength=data.n_items)
        return cls(data.n_users, data.n_items, counts).to(device or "cpu")

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.item_counts.unsqueeze(0).expand(users.shape[0], -1)


def build(cfg: PopularityConfig, data: SplitData, device: torch.device) -> Popularity:
    return Popularity.fit(data, device)
