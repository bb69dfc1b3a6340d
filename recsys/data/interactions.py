"""Raw interactions as every dataset loader returns them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.errors import RecsysError

COLUMNS = ("user_id", "item_id", "rating", "timestamp")
ENTITY_COLUMNS = ("item_id", "entity")


@dataclass(frozen=True)
class Interactions:
    """One dataset as loaded: interactions with raw ids, one text per item, and a source tag.

    Attributes:
        name: dataset name (``ml-100k``, ``synthetic``...).
        frame: columns ``user_id``, ``item_id`` (raw ids, any hashable dtype), ``rating`` (float,
            NaN when the source has none) and ``timestamp`` (float seconds, NaN when none).
        item_text: raw item id -> text describing the item (title, year, genres...), used for
            Sentence-BERT embeddings. Items without text get an empty string when prepared.
        source: where the data came from (a path or a description), for logs and fingerprints.
        item_entities: item -> entity links, or None when the source has no item attributes:
            columns ``item_id`` (raw ids, as in ``frame``) and ``entity`` (a name, unique across
            kinds: ``genre:Comedy``, ``author:...``, a Freebase id); one row per link. Graph
            models (``lightgcn_kg``) add them to the user-item graph.
    """

    name: str
    frame: pd.DataFrame
    item_text: dict = field(default_factory=dict)
    source: str = ""
    item_entities: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise RecsysError(
                f"dataset {self.name!r}: interactions lack columns {missing}; a loader must "
                f"return columns {list(COLUMNS)} (use NaN for a missing rating or timestamp)"
            )
        links = self.item_entities
        if links is not None and list(links.columns) != list(ENTITY_COLUMNS):
            raise RecsysError(
                f"dataset {self.name!r}: item entities have columns {list(links.columns)}; a "
                f"loader must return columns {list(ENTITY_COLUMNS)} (see entity_frame)"
            )

    @property
    def has_ratings(self) -> bool:
        return bool(self.frame["rating"].notna().any())

    @property
    def has_timestamps(self) -> bool:
        return bool(self.frame["timestamp"].notna().any())

    def summary(self) -> dict:
        """Counts and density of the raw interactions, before any filtering."""
        n_users = int(self.frame["user_id"].nunique())
        n_items = int(self.frame["item_id"].nunique())
        n = len(self.frame)
        return {
            "dataset": self.name,
            "users": n_users,
            "items": n_items,
            "interactions": n,
            "density": n / (n_users * n_items) if n_users and n_items else 0.0,
            "has_ratings": self.has_ratings,
            "has_timestamps": self.has_timestamps,
            "items_with_text": sum(1 for t in self.item_text.values() if t),
            **self._entity_summary(),
        }

    def _entity_summary(self) -> dict:
        # Only datasets with entities get the keys, so the summary of the others is unchanged.
        links = self.item_entities
        if links is None:
            return {}
        return {"item_entity_links": len(links), "entities": int(links["entity"].nunique())}


def make_frame(user_id, item_id, rating=None, timestamp=None) -> pd.DataFrame:
    """Builds the canonical interactions frame from columns; a missing column becomes NaN."""
    frame = pd.DataFrame({"user_id": user_id, "item_id": item_id})
    frame["rating"] = np.asarray(rating, dtype="float64") if rating is not None else np.nan
    frame["timestamp"] = np.asarray(timestamp, dtype="float64") if timestamp is not None else np.nan
    return frame


def entity_frame(item_id, entity, prefix: str = "") -> pd.DataFrame:
    """The canonical item-entity links from two aligned columns: ``prefix`` is put before each
    name (``"genre:"``) so that entities of different kinds never share a name; empty names and
    duplicate links are dropped, the first occurrence kept."""
    frame = pd.DataFrame({"item_id": np.asarray(item_id), "entity": np.asarray(entity, dtype=str)})
    frame = frame[frame["entity"].str.strip() != ""]
    frame["entity"] = prefix + frame["entity"].str.strip()
    return frame.drop_duplicates(ignore_index=True)
