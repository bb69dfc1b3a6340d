"""From raw interactions to implicit positives with contiguous ids: threshold, dedupe, k-core."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.dataset import ItemEntities
from recsys.data.interactions import Interactions
from recsys.errors import RecsysError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """Implicit positives with contiguous indices and the maps back to raw ids.

    Attributes:
        users, items: (n,) int64 indices of each positive pair.
        timestamps: (n,) float64 (NaN where the source has none).
        user_ids, item_ids: raw id of each index.
        item_text: text of each item index.
        counts: interactions left after each preparation step, for the summary.
        split: (n,) the split each pair's source gives it (``train``/``val``/``test``), when the
            raw frame has a ``split`` column (split files); None otherwise.
        item_entities: the links of the items kept, re-indexed; None when the source has none.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_text: list[str]
    counts: dict
    split: np.ndarray | None = None
    item_entities: ItemEntities | None = None


LOW_RATINGS = ("drop", "seen")


def check_low_ratings(value: str) -> str:
    """``drop`` (ratings below the threshold are left out) or ``seen`` (see :func:`low_rated`)."""
    if value not in LOW_RATINGS:
        raise RecsysError(
            f"unknown --low-ratings {value!r}; choose one of {', '.join(LOW_RATINGS)}"
        )
    return value


def positives(frame: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Rows that count as positives: rating >= threshold, or no rating (an implicit source)."""
    if threshold is None:
        return frame
    rating = frame["rating"]
    return frame[rating.isna() | (rating >= threshold)]


def k_core(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int) -> np.ndarray:
    """Boolean mask of the pairs that survive iterative k-core filtering.

    Removes users with fewer than ``min_user`` pairs and items with fewer than ``min_item``,
    repeatedly, until no more are removed (each removal can push others under the bar).
    """
    keep = np.ones(users.shape[0], dtype=bool)
    if min_user <= 1 and min_item <= 1:
        return keep
    n_users = int(users.max()) + 1 if users.size else 0
    n_items = int(items.max()) + 1 if items.size else 0
    while True:
        user_count = np.bincount(users[keep], minlength=n_users)
        item_count = np.bincount(items[keep], minlength=n_items)
        new_keep = keep & (user_count[users] >= min_user) & (item_count[items] >= min_item)
        if new_keep.sum() == keep.sum():
            return new_keep
        keep = new_keep


def prepare(
    data: Interactions,
    threshold: float | None = 4.0,
    min_user_interactions: int = 1,
    min_item_interactions: int = 1,
) -> Prepared:
    """Implicit positives from raw interactions.

    Steps: rating >= ``threshold`` (rows without a rating are kept: implicit sources), duplicate
    (user, item) pairs dropped keeping the earliest, iterative k-core, ids remapped to contiguous
    indices in the order of the sorted raw ids.

    Raises:
        RecsysError: when the threshold or the k-core leaves nothing.
    """
    counts = {"raw": len(data.frame)}
    frame = positives(data.frame, threshold)
    counts["positives"] = len(frame)
    if frame.empty:
        raise RecsysError(
            f"dataset {data.name!r}: no interaction has rating >= {threshold}; lower "
            "--threshold (ratings range "
            f"{data.frame['rating'].min()}..{data.frame['rating'].max()})"
        )
    frame = frame.sort_values("timestamp", kind="stable").drop_duplicates(
        ["user_id", "item_id"], keep="first"
    )
    counts["deduplicated"] = len(frame)
    user_codes, user_ids = pd.factorize(frame["user_id"], sort=True)
    item_codes, item_ids = pd.factorize(frame["item_id"], sort=True)
    keep = k_core(user_codes, item_codes, min_user_interactions, min_item_interactions)
    counts["k_core"] = int(keep.sum())
    if not keep.any():
        raise RecsysError(
            f"dataset {data.name!r}: k-core filtering (users >= {min_user_interactions}, items >= "
            f"{min_item_interactions} interactions) leaves nothing; lower --min-user-interactions "
            "/ --min-item-interactions"
        )
    frame = frame[keep]
    user_codes, user_ids = pd.factorize(frame["user_id"], sort=True)
    item_codes, item_ids = pd.factorize(frame["item_id"], sort=True)
    item_ids = np.asarray(item_ids)
    text = data.item_text
    return Prepared(
        users=user_codes.astype(np.int64),
        items=item_codes.astype(np.int64),
        timestamps=frame["timestamp"].to_numpy(np.float64),
        user_ids=np.asarray(user_ids),
        item_ids=item_ids,
        item_text=[str(text.get(i, "") or "") for i in item_ids.tolist()],
        counts=counts,
        split=frame["split"].to_numpy() if "split" in frame.columns else None,
        item_entities=index_entities(data, item_ids),
    )


def low_rated(
    frame: pd.DataFrame, threshold: float | None, prepared: Prepared
) -> tuple[np.ndarray, np.ndarray]:
    """The (user, item) indices of the pairs rated below ``threshold``, among the users and
    items that ``prepared`` kept, and not positives themselves (a pair rated both high and low
    is a positive).

    Returns:
        users, items: (m,) int64 indices into ``prepared``'s users and items, each pair once.
    """
    if threshold is None:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rating = frame["rating"]
    low = frame[rating.notna() & (rating < threshold)]
    users = pd.Index(prepared.user_ids).get_indexer(low["user_id"])
    items = pd.Index(prepared.item_ids).get_indexer(low["item_id"])
    kept = (users >= 0) & (items >= 0)
    users, items = users[kept].astype(np.int64), items[kept].astype(np.int64)
    n_items = max(len(prepared.item_ids), 1)
    keys = np.unique(users * n_items + items)
    keys = keys[~np.isin(keys, prepared.users * n_items + prepared.items)]
    return keys // n_items, keys % n_items


def index_entities(data: Interactions, item_ids: np.ndarray) -> ItemEntities | None:
    """``data.item_entities`` of the prepared items, as item indices and entity indices (in
    the order of the sorted names); links of items that preparation dropped are dropped, and
    so are the entities left without a link."""
    links = data.item_entities
    if links is None:
        return None
    index = pd.Index(item_ids).get_indexer(links["item_id"])
    kept = index >= 0
    if len(links) and not kept.any():
        log.warning(
            "dataset %r: none of its %s item-entity links names a prepared item (are the item "
            "ids of the two tables of the same type?); the dataset has no entities",
            data.name,
            f"{len(links):,}",
        )
    return ItemEntities.from_names(index[kept], links["entity"].to_numpy(object)[kept])
