"""Checks shared by the model tests: ranking on the checkerboard, a small training loop."""

from __future__ import annotations

import torch

from recsys.data.dataset import SplitData
from recsys.models.base import Recommender, TrainableRecommender, UserBatch
from recsys.models.history import History


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


def train_epochs(
    model: TrainableRecommender,
    data: SplitData,
    epochs: int,
    lr: float = 1e-2,
    batch_size: int = 8,
    grad_clip: float | None = None,
    seed: int = 0,
) -> list[float]:
    """Trains a ``"users"``-batch model with Adam; returns the mean loss of each epoch."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = History(data.train_csr())
    users = torch.unique(torch.from_numpy(data.train.users))
    means = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for batch in users[torch.randperm(users.shape[0])].split(batch_size):
            loss = model.loss(UserBatch(batch, history.rows(batch)))["loss"]
            optimizer.zero_grad()
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            total += float(loss.detach()) * batch.shape[0]
        means.append(total / users.shape[0])
    model.eval()
    return means
