"""Data for the benchmarks: the real ML-100K split when its loader is there, else synthetic sets."""

from __future__ import annotations

import numpy as np

from recsys.data.dataset import Pairs, SplitData

# ML-100K with positives = rating >= 4: 943 users, 1,682 items, 55,375 positives.
ML100K_SHAPE = (943, 1682, 55_375)


def synthetic_split(n_users: int, n_items: int, n_interactions: int, seed: int = 0) -> SplitData:
    """Distinct (user, item) pairs with long-tailed user activity and item popularity, split
    80/10/10 at random; shaped like real data for speed measurements, not for quality."""
    rng = np.random.default_rng(seed)
    user_p = 1.0 / np.arange(1, n_users + 1) ** 0.5
    item_p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_interactions:
        draw = 2 * (n_interactions - len(keys)) + 1000
        users = rng.choice(n_users, draw, p=user_p / user_p.sum())
        items = rng.choice(n_items, draw, p=item_p / item_p.sum())
        keys = np.unique(np.concatenate([keys, users * n_items + items]))
    keys = rng.permutation(keys)[:n_interactions]
    users, items = keys // n_items, keys % n_items
    cut = np.cumsum([int(0.8 * n_interactions), int(0.1 * n_interactions)])
    parts = [Pairs(u, i) for u, i in zip(np.split(users, cut), np.split(items, cut), strict=True)]
    return SplitData(
        name=f"synthetic-{n_interactions}",
        fingerprint=f"synthetic-{n_users}-{n_items}-{n_interactions}-{seed}",
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
        item_text=[""] * n_items,
        train=parts[0],
        val=parts[1],
        test=parts[2],
        summary={"users": n_users, "items": n_items, "interactions": n_interactions},
    )


def synthetic_of_size(n_interactions: int, seed: int = 0) -> SplitData:
    """A synthetic set of ``n_interactions`` with 50 per user and 100 per item on average."""
    return synthetic_split(n_interactions // 50, n_interactions // 100, n_interactions, seed)


def ml100k_split() -> tuple[SplitData, str]:
    """The ML-100K split (rating >= 4, per-user 80/10/10) if it can be loaded, else a synthetic
    set of the same shape; returns the data and a label saying which."""
    try:
        from recsys.data import load_split

        return load_split("ml-100k"), "ml-100k"
    except Exception as error:  # the loader is not there yet, or no network
        data = synthetic_split(*ML100K_SHAPE)
        return data, f"synthetic ML-100K-sized ({type(error).__name__}: real data unavailable)"
