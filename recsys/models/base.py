"""The scorer interface every model implements, and the model registry's entry type."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from recsys.errors import RecsysError

if TYPE_CHECKING:
    from recsys.data.dataset import ItemEntities, SplitData


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


@runtime_checkable
class VectorScorer(Protocol):
    """A model whose scores are dot products of a user vector and an item vector:
    ``score(users) == user_vectors(users) @ item_vectors().T``.

    Such a model's top-k can be answered by a nearest-neighbour index over ``item_vectors()``
    (serving does so for large catalogues); evaluation always scores exactly.
    """

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) user indices -> (B, d) float vectors."""
        ...

    def item_vectors(self) -> torch.Tensor:
        """(n_items, d) float vectors of every item."""
        ...


def _never(cfg: Any) -> bool:
    return False


@dataclass(frozen=True)
class ModelSpec:
    """How the registry knows a model: its name, config dataclass and builder.

    Attributes:
        name: the model's name everywhere (search-space file stem, ``--models``, MLflow tag).
        config_cls: frozen dataclass of the model's hyperparameters, built with ``Cfg(**cfg)``.
        build: ``build(cfg, data, device) -> Recommender``; closed-form models are fitted here on
            ``data.train`` only. A builder never loads data or text models itself: what it needs
            (``data.item_embeddings``) is attached by the caller, and it raises if it is missing.
        trainable: whether the model is trained by epochs (False: fitted once in ``build``).
        needs_item_embeddings: ``needs_item_embeddings(cfg)``: whether a model built from
            ``cfg`` reads ``data.item_embeddings`` (Sentence-BERT vectors of the item texts).
        needs_item_entities: ``needs_item_entities(cfg)``: whether a model built from ``cfg``
            reads ``data.item_entities`` (which only the dataset's loader can provide; building
            it on data without them raises :func:`require_item_entities`'s error).
        scores_cold_items: ``scores_cold_items(cfg)``: whether a model built from ``cfg``
            scores an item without training interactions from its content (its text), so that
            a cold-item split's rankings among such items mean something. A model whose scores
            of such items are constants or untrained embeddings says False: a cold-item sweep
            does not search it and reports it as unable to score cold items.
    """

    name: str
    config_cls: type
    build: Callable[[Any, SplitData, torch.device], Recommender]
    trainable: bool = True
    needs_item_embeddings: Callable[[Any], bool] = _never
    needs_item_entities: Callable[[Any], bool] = _never
    scores_cold_items: Callable[[Any], bool] = _never

    def make_config(self, config: Mapping[str, Any]) -> Any:
        """``config_cls(**config)`` with an error naming any unknown key.

        NumPy scalars become Python ones and numbers are cast to the field's declared int/float
        type (search spaces may hand ``64.0`` for an int or ``1`` for a float).
        """
        fields = {f.name: f for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(config) - set(fields))
        if unknown:
            raise RecsysError(
                f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for model "
                f"{self.name!r}; valid: {', '.join(fields) or '(none)'}"
            )
        values = {key: self._cast(key, fields[key].type, value) for key, value in config.items()}
        return self.config_cls(**values)

    def _cast(self, key: str, declared: Any, value: Any) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        kind = declared if isinstance(declared, str) else getattr(declared, "__name__", "")
        try:
            if kind == "float" and not isinstance(value, bool):
                return float(value)
            if kind == "int" and not isinstance(value, bool):
                as_float = float(value)
                if as_float != int(as_float):
                    raise ValueError
                return int(as_float)
        except (TypeError, ValueError):
            raise RecsysError(
                f"hyperparameter {key!r} of model {self.name!r} must be {kind}, got {value!r}"
            ) from None
        return value


ENTITY_SOURCES_HINT = (
    "ml-100k (its knowledge graph, or genres: --dataset-option entities=kg|genres), ml-1m "
    "(genres), goodbooks-10k (authors), amazon2023 (categories, store), generic (--dataset-option "
    "entities_path=FILE, a CSV of item,entity rows)"
)


def require_item_entities(data: SplitData, needed_by: str) -> ItemEntities:
    """``data.item_entities``; a RecsysError naming the fix when the data has none.

    Args:
        needed_by: what needs them, for the message (a model, a config value).
    """
    if data.item_entities is None:
        raise RecsysError(
            f"{needed_by} needs item entities and dataset {data.name!r} has none; use a dataset "
            f"whose loader links items to entities: {ENTITY_SOURCES_HINT}; or a model over the "
            "user-item graph (lightgcn)"
        )
    return data.item_entities


@dataclass(frozen=True)
class PairBatch:
    """One batch of training pairs: users, their training positives and sampled negatives.

    Shapes: ``users`` and ``pos`` (B,) int64; ``neg`` (B,) for a model with one negative per
    pair (BPR), (B, m) for ``negatives_per_pair = m > 1`` (pointwise losses) and (B, 0) for a
    model that samples none (in-batch softmax); all on the model's device.
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

    ``batch_kind`` tells the loop how an epoch trains (the strategies of the one loop):

    - ``"pairs"``: Adam steps on :class:`PairBatch` es of the training pairs, with
      ``negatives_per_pair`` negatives each from the model's negative sampler;
    - ``"users"``: Adam steps on :class:`UserBatch` es (autoencoders);
    - ``"self"``: the model trains itself, one call of :meth:`fit_epoch` per epoch (alternating
      least squares through a library); no optimizer, and its state is its buffers.

    ``fused_optimizer``: the loop uses fused Adam on CPU and CUDA (one kernel over all
    parameters; on a CPU about 5x less time per update of a large embedding table). Fused
    updates are in place without bumping the parameters' version counters: a model with a
    cache that relies on those sets it False (or drops the cache in :meth:`loss`, as LightGCN
    does).
    """

    batch_kind: str = "pairs"
    negatives_per_pair: int = 1
    fused_optimizer: bool = True

    def fit_epoch(self) -> dict[str, torch.Tensor]:
        """``batch_kind == "self"``: one epoch of the model's own training; returns its losses
        (possibly empty)."""
        raise NotImplementedError

    def loss(self, batch: PairBatch | UserBatch) -> dict[str, torch.Tensor]:
        """Losses of one batch; the ``"loss"`` entry is optimised, the others are logged."""
        raise NotImplementedError

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of some items per user: users (B,), items (B, n) -> (B, n).

        Used without gradient, e.g. by the DNS sampler; models override it with something
        cheaper than scoring every item.
        """
        return self.score(users).gather(1, items)

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the training loop before epoch ``epoch`` (0-based); e.g. to (un)freeze."""
