"""Raw interactions as every dataset loader returns them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.errors import RecsysError

COLUMNS = ("user_id", "item_id", "rating", "timestamp")


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
    """

    name: str
    frame: pd.DataFrame
    item_text: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise RecsysError(
                f"dataset {self.name!r}: interactions lack columns {missing}; a loader must "
                f"return columns {list(COLUMNS)} (use NaN for a missing rating or timestamp)"
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
        }


def make_frame(user_id, item_id, rating=None, timestamp=None) -> pd.DataFrame:
    """Builds the canonical interactions frame from columns; a missing column becomes NaN."""
    frame = pd.DataFrame({"user_id": user_id, "item_id": item_id})
    frame["rating"] = np.asarray(rating, dtype="float64") if rating is not None else np.nan
    frame["timestamp"] = np.asarray(timestamp, dtype="float64") if timestamp is not None else np.nan
    return frame
