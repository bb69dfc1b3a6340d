"""Checks shared by the model tests: ranking on the checkerboard, stand-in item text and
entities."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from recsys.data.dataset import ItemEntities, SplitData
from recsys.models.base import Recommender


@torch.no_grad()
def held_out_on_top(model: Recommender, data: SplitData) -> float:
    """Fraction of users whose validation and test items are their two best unseen items."""
    model.eval()
    users = torch.arange(data.n_users)
    scores = model.score(users).clone()
    assert scores.shape == (data.n_users, data.n_items)
    assert torch.isfinite(scores).all()
    scores[torch.from_numpy(data.train.users), torch.from_numpy(data.train.items)] = -torch.inf
    top = scores.topk(2, dim=1).indices.sort(dim=1).values
    held_out = torch.zeros(data.n_users, 2, dtype=torch.int64)
    for column, pairs in enumerate((data.val, data.test)):
        held_out[torch.from_numpy(pairs.users), column] = torch.from_numpy(pairs.items)
    return float((top == held_out.sort(dim=1).values).all(dim=1).float().mean())


def with_random_text(data: SplitData, dim: int = 16) -> SplitData:
    """``data`` with random unit item vectors standing in for Sentence-BERT embeddings (random,
    so that text alone does not solve the checkerboard)."""
    vectors = np.random.default_rng(0).normal(size=(data.n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return dataclasses.replace(data, item_embeddings=vectors)


def with_random_entities(data: SplitData, n_entities: int = 6, per_item: int = 2) -> SplitData:
    """``data`` with each item linked to ``per_item`` of ``n_entities`` random entities (random,
    so that the entities alone do not solve the checkerboard: each one spans the groups)."""
    rng = np.random.default_rng(0)
    picks = np.argsort(rng.random((data.n_items, n_entities)), axis=1)[:, :per_item]
    items = np.repeat(np.arange(data.n_items), per_item)
    names = np.array([f"entity {e}" for e in range(n_entities)], dtype=object)
    return dataclasses.replace(
        data, item_entities=ItemEntities.from_names(items, names[picks.ravel()])
    )
