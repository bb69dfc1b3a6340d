"""The scorer interface every model implements, and the model registry's entry type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData


class Recommender(nn.Module):
    """A model that scores every item for a batch of users.

    Subclasses set ``n_users`` and ``n_items`` and implement :meth:`score`. Trainable models
    also implement the batch/loss methods that ``recsys.train`` calls; closed-form models
    (Popularity, ItemKNN, EASE) are fitted when built and have no trainable parameters.
    """

    n_users: int
    n_items: int

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of all items for the given users.

        Args:
            users: (B,) int64 user indices, on the model's device.

        Returns:
            (B, n_items) float tensor; higher is better. A new tensor (or a view, which the
            evaluator copies): the evaluator masks seen items in place, so a model must not
            return a tensor it keeps. Masking of seen items is the evaluator's job.
        """
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")


@dataclass(frozen=True)
class ModelSpec:
    """How the registry knows a model: its name, config dataclass and builder.

    Attributes:
        name: the model's name everywhere (search-space file stem, ``--models``, MLflow tag).
        config_cls: frozen dataclass of the model's hyperparameters, built with ``Cfg(**cfg)``.
        build: ``build(cfg, data, device) -> Recommender``; closed-form models are fitted here on
            ``data.train`` only.
        trainable: whether the model is trained by epochs (False: fitted once in ``build``).
    """

    name: str
    config_cls: type
    build: Callable[[Any, SplitData, torch.device], Recommender]
    trainable: bool = True


@dataclass(frozen=True)
class PairBatch:
    """One BPR-style batch: users, their training positives and sampled negatives.

    Shapes: ``users`` and ``pos`` (B,); ``neg`` (B,) int64, all on the model's device.
    """

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor


@dataclass(frozen=True)
class UserBatch:
    """One autoencoder batch: user indices (B,) and their dense training rows (B, n_items)."""

    users: torch.Tensor
    rows: torch.Tensor


class TrainableRecommender(Recommender):
    """A model trained by the one epoch loop in ``recsys.train``.

    ``batch_kind`` tells the loop which batches to feed: ``"pairs"`` (:class:`PairBatch`, from the
    negative sampler the model was built with) or ``"users"`` (:class:`UserBatch`).
    """

    batch_kind: str = "pairs"

    def loss(self, batch: PairBatch | UserBatch) -> dict[str, torch.Tensor]:
        """Losses of one batch; the ``"loss"`` entry is optimised, the others are logged."""
        raise NotImplementedError
