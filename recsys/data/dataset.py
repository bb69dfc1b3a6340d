"""A prepared, split dataset: contiguous indices, train/validation/test pairs, raw-id maps."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys.sparse import sparse_csr


@dataclass(frozen=True)
class Pairs:
    """(user, item) index pairs, as two aligned int64 arrays."""

    users: np.ndarray
    items: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.ascontiguousarray(self.users, dtype=np.int64))
        object.__setattr__(self, "items", np.ascontiguousarray(self.items, dtype=np.int64))
        if self.users.shape != self.items.shape or self.users.ndim != 1:
            raise ValueError("Pairs: users and items must be 1-D arrays of the same length")

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @classmethod
    def empty(cls) -> Pairs:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64))

    def tensors(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(users, items) as int64 tensors on ``device``.

        Arrays that arrive through Ray's object store are read-only; torch cannot share those
        safely, so they are copied.
        """
        return tuple(
            torch.from_numpy(a if a.flags.writeable else a.copy()).to(device)
            for a in (self.users, self.items)
        )

    def keys(self, n_items: int) -> np.ndarray:
        """``user * n_items + item`` for each pair: a unique int64 key per pair."""
        return self.users * n_items + self.items

    def csr(self, n_users: int, n_items: int) -> torch.Tensor:
        """Binary user x item matrix as a torch sparse CSR tensor (float32)."""
        order = np.lexsort((self.items, self.users))
        crow = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.users, minlength=n_users), out=crow[1:])
        return sparse_csr(
            torch.from_numpy(crow),
            torch.from_numpy(self.items[order].copy()),
            torch.ones(len(self), dtype=torch.float32),
            (n_users, n_items),
        )


@dataclass(frozen=True)
class ItemEntities:
    """Item -> entity links of a prepared dataset (genres, authors, a knowledge graph's
    neighbours of each item), as (item, entity) index pairs and the entities' names.

    Every entity has at least one link (both constructors, preparation and :meth:`shared`, keep
    only linked ones), so :meth:`to_frame` loses nothing.

    Attributes:
        items: (m,) int64 item indices, sorted, each (item, entity) pair once.
        entities: (m,) int64 entity indices in ``0..n_entities-1``.
        names: (n_entities,) raw name of each entity index.
    """

    items: np.ndarray
    entities: np.ndarray
    names: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", np.ascontiguousarray(self.items, dtype=np.int64))
        object.__setattr__(self, "entities", np.ascontiguousarray(self.entities, dtype=np.int64))
        object.__setattr__(self, "names", np.asarray(self.names, dtype=object))
        if self.items.shape != self.entities.shape or self.items.ndim != 1:
            raise ValueError("ItemEntities: items and entities must be 1-D of the same length")
        if len(self) and not 0 <= self.entities.min() <= self.entities.max() < self.n_entities:
            raise ValueError("ItemEntities: an entity index lies outside names")

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def n_entities(self) -> int:
        return int(self.names.shape[0])

    @classmethod
    def from_names(cls, items: np.ndarray, names: np.ndarray) -> ItemEntities:
        """Links from item indices and one entity name per link; entity indices follow the
        sorted names, duplicate links count once."""
        codes, unique = pd.factorize(pd.Series(names, dtype=object), sort=True)
        pairs = np.unique(np.stack([np.asarray(items, dtype=np.int64), codes]), axis=1)
        return cls(pairs[0], pairs[1], np.asarray(unique, dtype=object))

    def shared(self, min_items: int) -> ItemEntities:
        """Only the entities linked to at least ``min_items`` items, re-indexed in their order.

        An entity of one item joins no two items: in a graph it only adds a leaf to that item.
        """
        counts = np.bincount(self.entities, minlength=self.n_entities)
        kept = counts >= min_items
        new_index = np.cumsum(kept) - 1
        links = kept[self.entities]
        return ItemEntities(self.items[links], new_index[self.entities[links]], self.names[kept])

    def to_frame(self) -> pd.DataFrame:
        """One row per link: ``item`` (index), ``entity`` (index) and ``name``."""
        return pd.DataFrame(
            {"item": self.items, "entity": self.entities, "name": self.names[self.entities]}
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ItemEntities:
        """The inverse of :meth:`to_frame`."""
        entities = frame["entity"].to_numpy(np.int64)
        names = np.empty(int(entities.max()) + 1 if len(entities) else 0, dtype=object)
        names[entities] = frame["name"].to_numpy(object)
        return cls(frame["item"].to_numpy(np.int64), entities, names)


@dataclass(frozen=True)
class ColdItems:
    """The items a cold-item split (``cold_items``) held out with all their interactions.

    Attributes:
        val: (m,) int64 sorted indices of the validation items (validation ranks among them).
        test: (n,) int64 sorted indices of the test items (test ranks among them, and among all
            items as a second figure); empty in a tuning trial's copy.
    """

    val: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "val", np.ascontiguousarray(self.val, dtype=np.int64))
        object.__setattr__(self, "test", np.ascontiguousarray(self.test, dtype=np.int64))

    def of(self, split: str) -> np.ndarray:
        """The cold items ``split`` (``val`` or ``test``) ranks among."""
        return {"val": self.val, "test": self.test}[split]

    def all(self) -> np.ndarray:
        """Every cold item, sorted."""
        return np.union1d(self.val, self.test)


@dataclass(frozen=True)
class SplitData:
    """Everything a model, a trial or the evaluator needs, and nothing from the raw files.

    Attributes:
        name: dataset name.
        fingerprint: hash of the source and every preparation parameter (see ``recsys.data.cache``).
        user_ids: raw user id of each user index, shape (n_users,).
        item_ids: raw item id of each item index, shape (n_items,).
        item_text: text of each item index (empty string when the source has none).
        train, val: index pairs. ``test`` is ``None`` in the copy handed to tuning trials.
        summary: counts after preparation and splitting (users, items, interactions per split,
            users kept in train only because they were too small to split...).
        item_embeddings: (n_items, d) float32 Sentence-BERT embeddings of ``item_text``, attached
            once by the driver (``recsys.text``) when a model needs them, so that trials receive
            them through the object store instead of recomputing them.
        seen_only: pairs the user has seen but that are no positives (ratings below the
            threshold, with ``low_ratings="seen"``): never a target, yet masked from the user's
            rankings like training items, in validation, test and recommendations. None (or
            empty) when the split has none. The trials' copy keeps them: validation masks them.
        item_entities: the items' links to entities (genres, authors, knowledge-graph
            neighbours) when the dataset's loader has them, else None.
        cold_items: the held-out items of a cold-item split (``cold_items``): no training pair
            has one; validation ranks among its validation items, test among its test items.
            None for every other split.
    """

    name: str
    fingerprint: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_text: list[str]
    train: Pairs
    val: Pairs
    test: Pairs | None
    summary: dict = field(default_factory=dict)
    item_embeddings: np.ndarray | None = None
    seen_only: Pairs | None = None
    item_entities: ItemEntities | None = None
    cold_items: ColdItems | None = None

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    def without_test(self) -> SplitData:
        """The copy handed to tuning trials: the test pairs (and a cold split's test items) are
        not in it at all."""
        cold = self.cold_items
        if cold is not None:
            cold = ColdItems(cold.val, np.empty(0, np.int64))
        return replace(self, test=None, cold_items=cold)

    def train_csr(self) -> torch.Tensor:
        """Training interactions as a binary (n_users, n_items) sparse CSR tensor."""
        return self.train.csr(self.n_users, self.n_items)

    def masked(self, splits: tuple[str, ...]) -> list[Pairs]:
        """The pairs masked from a ranking that excludes ``splits`` (``train``, ``val``,
        ``test``): theirs, plus :attr:`seen_only` when there are any."""
        pairs = {"train": self.train, "val": self.val, "test": self.test}
        out = [pairs[s] for s in splits if pairs[s] is not None]
        if self.seen_only is not None and len(self.seen_only):
            out.append(self.seen_only)
        return out

    def split_frame(self) -> pd.DataFrame:
        """All pairs with raw ids: columns ``user_id``, ``item_id``, ``split`` (train/val/test,
        and ``seen_only`` for :attr:`seen_only` when there are any); for a cold-item split, a
        fourth, ``cold_item``: whether the pair's item is one of :attr:`cold_items`."""
        parts = [("train", self.train), ("val", self.val)]
        if self.test is not None:
            parts.append(("test", self.test))
        if self.seen_only is not None and len(self.seen_only):
            parts.append(("seen_only", self.seen_only))
        frames = [
            pd.DataFrame(
                {
                    "user_id": self.user_ids[p.users],
                    "item_id": self.item_ids[p.items],
                    "split": name,
                }
            )
            for name, p in parts
        ]
        frame = pd.concat(frames, ignore_index=True)
        if self.cold_items is not None:
            cold = np.isin(np.concatenate([p.items for _, p in parts]), self.cold_items.all())
            frame["cold_item"] = cold
        return frame

    def to_parquet(self, path: str | Path) -> Path:
        """Writes ``split_frame()`` to Parquet atomically (temporary name, then rename)."""
        from recsys.io import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            self.split_frame().to_parquet(tmp, index=False)
        return path
