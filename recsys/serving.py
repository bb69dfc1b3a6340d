"""A tuned model as an MLflow pyfunc model: raw user ids in, each user's top-k raw item ids out.

Artifacts (written by :func:`save_artifacts`, read by :meth:`ServedModel.load`):

- ``model.json``: the model's registry name, config, seed, epoch and the dataset it was fitted on.
- ``state.pt``: the model's ``state_dict`` (CPU tensors, loaded with ``weights_only=True``).
- ``users.parquet`` / ``items.parquet``: the id maps, one ``user_id`` / ``item_id`` per index.
- ``seen_items.parquet``: ``user``, ``item`` (indices) and ``split`` (``train`` or ``val``) of
  every interaction the model's split knew before its test period. The model is rebuilt from the
  training pairs (graphs, histories and closed-form fits read them), and every seen item
  (training and validation) is excluded from a user's list: the ranking is then the one
  ``results/<sweep>/recommendations/<model>.parquet`` holds for a test user. Rows with split
  ``seen_only`` are items the user rated below the threshold (``--low-ratings seen``): excluded
  from its lists too, never used to rebuild the model.
- ``item_embeddings.npy``: only for models that read item-text embeddings.
- ``item_entities.parquet``: only for models whose graph holds the items' entities: ``item``,
  ``entity`` (indices) and ``name`` of each link (``ItemEntities.to_frame``).

A request is a table with a ``user_id`` column of raw ids and an optional ``k`` column (default
10). The answer has one row per recommended item: ``user_id``, ``item_id``, ``rank`` (1 = best),
``score`` and ``source``: ``"model"``, or ``"popularity"`` for a user the model never saw, who
gets the popularity baseline's ranking (training interactions per item). Loading needs this
package, torch, pandas and MLflow, not Ray; scoring runs on CUDA when present (the model config's
``device``: ``"auto"``, ``"cpu"`` or ``"cuda"``).

For a dot-product model (``VectorScorer``) on the CPU with a large catalogue (``ann_min_items``,
default 100,000 items), top-k comes from a FAISS index over the item vectors, built at the first
request that needs it (:mod:`recsys.ann`; model config keys ``ann_min_items``, ``null`` to turn
it off, ``ann_nprobe`` and ``ann_max_seen``); the answer's format is the same.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from recsys.ann import AnnConfig, ItemIndex, recommend_ann
from recsys.data.dataset import ItemEntities, Pairs, SplitData
from recsys.errors import RecsysError
from recsys.evaluate import UserItemIndex, recommend
from recsys.models import get_spec
from recsys.models.base import Recommender
from recsys.models.popularity import Popularity

USER_COLUMN = "user_id"
K_COLUMN = "k"
DEFAULT_K = 10
# Users one request may ask for (``model_config={"max_users": ...}`` changes it): each costs a
# row of scores over the catalogue, so this bounds a request's time and memory.
DEFAULT_MAX_USERS = 1000
DEFAULT_ANN = AnnConfig()
OUTPUT_COLUMNS = ("user_id", "item_id", "rank", "score", "source")
SOURCE_MODEL = "model"
SOURCE_POPULARITY = "popularity"
SEEN_SPLITS = ("train", "val")
SEEN_ONLY = "seen_only"  # the seen_items rows of SplitData.seen_only (low ratings)

# Artifact name -> file name inside the model's artifacts.
FILES = {
    "model": "model.json",
    "state": "state.pt",
    "users": "users.parquet",
    "items": "items.parquet",
    "seen_items": "seen_items.parquet",
}
EMBEDDINGS = ("item_embeddings", "item_embeddings.npy")
ENTITIES = ("item_entities", "item_entities.parquet")


@dataclass(frozen=True)
class ModelCard:
    """What ``model.json`` holds: which model, with which config, fitted on which data."""

    model: str
    config: dict[str, Any]
    seed: int
    epoch: int
    dataset: str
    fingerprint: str


def save_artifacts(folder: Path, card: ModelCard, model: Recommender, data: SplitData) -> dict:
    """Writes a model's artifacts into ``folder``; returns artifact name -> path (as MLflow's
    ``artifacts=`` wants them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / file for name, file in FILES.items()}
    paths["model"].write_text(json.dumps(card.__dict__, indent=1))
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, paths["state"])
    pd.DataFrame({USER_COLUMN: data.user_ids}).to_parquet(paths["users"], index=False)
    pd.DataFrame({"item_id": data.item_ids}).to_parquet(paths["items"], index=False)
    seen = [
        pd.DataFrame({"user": pairs.users, "item": pairs.items, "split": split})
        for split, pairs in (("train", data.train), ("val", data.val), (SEEN_ONLY, data.seen_only))
        if pairs is not None
    ]
    pd.concat(seen, ignore_index=True).to_parquet(paths["seen_items"], index=False)
    spec = get_spec(card.model)
    if spec.needs_item_embeddings(spec.make_config(card.config)):
        paths[EMBEDDINGS[0]] = folder / EMBEDDINGS[1]
        np.save(paths[EMBEDDINGS[0]], np.asarray(data.item_embeddings, dtype=np.float32))
    if spec.needs_item_entities(spec.make_config(card.config)) and data.item_entities is not None:
        paths[ENTITIES[0]] = folder / ENTITIES[1]
        data.item_entities.to_frame().to_parquet(paths[ENTITIES[0]], index=False)
    return {name: str(path) for name, path in paths.items()}


class ServedModel:
    """A restored model with its id maps, seen items and popularity fallback.

    Args:
        card: see :class:`ModelCard`.
        model: the restored model, on its device.
        data: the id maps and seen pairs (``test`` is None).
        max_users: users one request may ask for.
        ann: when top-k goes through a nearest-neighbour index (see :mod:`recsys.ann`).
    """

    def __init__(
        self,
        card: ModelCard,
        model: Recommender,
        data: SplitData,
        max_users: int = DEFAULT_MAX_USERS,
        ann: AnnConfig = DEFAULT_ANN,
    ) -> None:
        self.card = card
        self.max_users = max_users
        self.ann = ann
        self._index: ItemIndex | None = None
        self._index_lock = threading.Lock()
        self.model = model.eval()
        self.data = data
        self.seen = UserItemIndex(data.masked(SEEN_SPLITS), data.n_users, model.device)
        self.user_index = pd.Index(data.user_ids.astype(str))
        counts = Popularity.fit(data).item_counts.numpy()
        # The popularity baseline's order: most training interactions first, ties by item index.
        self.popular = np.lexsort((np.arange(data.n_items), -counts))
        self.popular_scores = counts[self.popular]

    @classmethod
    def load(
        cls,
        artifacts: Mapping[str, str],
        device: str = "auto",
        max_users: int = DEFAULT_MAX_USERS,
        ann: AnnConfig = DEFAULT_ANN,
    ) -> ServedModel:
        """Rebuilds the model from its artifacts (see the module docstring) on ``device``."""
        from recsys.train import resolve_device

        card = ModelCard(**json.loads(Path(artifacts["model"]).read_text()))
        seen = pd.read_parquet(artifacts["seen_items"])
        pairs = {s: seen[seen["split"] == s] for s in (*SEEN_SPLITS, SEEN_ONLY)}
        embeddings = artifacts.get(EMBEDDINGS[0])
        entities = artifacts.get(ENTITIES[0])
        data = SplitData(
            name=card.dataset,
            fingerprint=card.fingerprint,
            user_ids=pd.read_parquet(artifacts["users"])[USER_COLUMN].to_numpy(),
            item_ids=pd.read_parquet(artifacts["items"])["item_id"].to_numpy(),
            item_text=[],
            train=Pairs(pairs["train"]["user"].to_numpy(), pairs["train"]["item"].to_numpy()),
            val=Pairs(pairs["val"]["user"].to_numpy(), pairs["val"]["item"].to_numpy()),
            test=None,
            item_embeddings=None if embeddings is None else np.load(embeddings),
            seen_only=Pairs(
                pairs[SEEN_ONLY]["user"].to_numpy(), pairs[SEEN_ONLY]["item"].to_numpy()
            ),
            item_entities=(
                None if entities is None else ItemEntities.from_frame(pd.read_parquet(entities))
            ),
        )
        spec = get_spec(card.model)
        model = spec.build(spec.make_config(card.config), data, resolve_device(device))
        state = torch.load(artifacts["state"], map_location=model.device, weights_only=True)
        model.load_state_dict(state)
        return cls(card, model, data, max_users, ann)

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def item_index(self) -> ItemIndex:
        """The model's item index, built on first use (once, also under concurrent requests)."""
        with self._index_lock:
            if self._index is None:
                with torch.no_grad():
                    self._index = ItemIndex(self.model.item_vectors(), self.ann.nprobe)
            return self._index

    def top_k(self, users: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(items, scores) of known ``users`` as :func:`recsys.evaluate.recommend` gives them,
        seen items excluded: through the item index when :meth:`AnnConfig.applies`."""
        if not self.ann.applies(self.model):
            return recommend(self.model, self.data, users, k=k, mask=self.seen)
        return recommend_ann(
            self.model, self.data, self.item_index(), users, k, self.seen, self.ann.max_seen
        )

    def recommend(self, request: pd.DataFrame) -> pd.DataFrame:
        """Each requested user's top-k items (see the module docstring for both tables).

        Raises:
            RecsysError: a malformed request (no ``user_id`` column, a missing id, k not an
                integer in 1..n_items).
        """
        users, ks = parse_request(request, self.n_items, self.max_users)
        width = int(ks.max()) if len(ks) else DEFAULT_K
        index = self.user_index.get_indexer(users.astype(str))
        known = index >= 0
        items = np.tile(self.popular[:width], (len(users), 1))
        scores = np.tile(self.popular_scores[:width], (len(users), 1)).astype(np.float32)
        if known.any():
            top, values = self.top_k(torch.from_numpy(index[known]), width)
            items[known], scores[known] = top.numpy(), values.numpy()
        ranks = np.arange(1, width + 1)
        keep = (items >= 0) & (ranks[None, :] <= ks[:, None])
        rows = np.nonzero(keep)[0]
        return pd.DataFrame(
            {
                "user_id": users[rows],
                "item_id": self.data.item_ids[items[keep]],
                "rank": np.broadcast_to(ranks, keep.shape)[keep].astype(np.int64),
                "score": scores[keep].astype(np.float32),
                "source": np.where(known[rows], SOURCE_MODEL, SOURCE_POPULARITY),
            }
        )


def parse_request(
    request: Any, n_items: int, max_users: int = DEFAULT_MAX_USERS
) -> tuple[np.ndarray, np.ndarray]:
    """The requested raw user ids and each one's k, checked.

    Raises:
        RecsysError: what is wrong with the request and how to send it.
    """
    how = f"send a table with a {USER_COLUMN!r} column of raw user ids and optionally {K_COLUMN!r}"
    try:
        frame = request if isinstance(request, pd.DataFrame) else pd.DataFrame(request)
    except (TypeError, ValueError):
        raise RecsysError(f"the request is not a table ({type(request).__name__}); {how}") from None
    if USER_COLUMN not in frame:
        found = ", ".join(map(repr, map(str, frame.columns))) or "none"
        raise RecsysError(f"the request has no {USER_COLUMN!r} column (columns: {found}); {how}")
    users = frame[USER_COLUMN].to_numpy()
    if len(users) > max_users:
        raise RecsysError(
            f"the request asks for {len(users)} users, more than the {max_users} one request may "
            f"ask for; split it into requests of at most {max_users} users"
        )
    if pd.isna(frame[USER_COLUMN]).any():
        raise RecsysError(f"the request has an empty {USER_COLUMN!r}; {how}")
    if K_COLUMN not in frame:
        return users, np.full(len(users), DEFAULT_K, dtype=np.int64)
    given = frame[K_COLUMN].notna().to_numpy()
    k = pd.to_numeric(frame[K_COLUMN], errors="coerce").to_numpy(np.float64)
    bad = given & ~(np.isfinite(k) & (k == np.round(k)))
    if bad.any():
        value = frame[K_COLUMN].to_numpy()[np.argmax(bad)]
        value = value.item() if isinstance(value, np.generic) else value
        raise RecsysError(f"k must be a whole number, got {value!r}; {how}")
    ks = np.where(given, k, DEFAULT_K).astype(np.int64)
    if (ks < 1).any():
        raise RecsysError(f"k must be at least 1, got {ks.min()}; ask for k >= 1 items per user")
    if (ks > n_items).any():
        raise RecsysError(
            f"k={ks.max()} is above the catalogue's {n_items} items; ask for k <= {n_items}"
        )
    return users, ks


class RecsysPyfunc(mlflow.pyfunc.PythonModel):
    """The MLflow face of :class:`ServedModel`: a malformed request becomes an
    ``INVALID_PARAMETER_VALUE`` error (HTTP 400 from ``mlflow models serve``) with its message."""

    def load_context(self, context: Any) -> None:
        config = context.model_config or {}
        max_users = int(config.get("max_users", DEFAULT_MAX_USERS))
        ann = AnnConfig.from_model_config(config)
        self.served = ServedModel.load(
            context.artifacts, config.get("device", "auto"), max_users, ann
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException

        try:
            return self.served.recommend(model_input)
        except RecsysError as error:
            raise MlflowException.invalid_parameter_value(str(error)) from None
