"""Data for the LightGCN benchmarks: the ML-100K split and synthetic sets of 100k-5M pairs."""

from __future__ import annotations

from recsys.data import PrepConfig, SplitData, load_split

# (users, items) of the synthetic sets, as in benchmarks/synthetic_scale.py.
SYNTHETIC_SHAPES = {
    100_000: (5_000, 2_000),
    1_000_000: (20_000, 10_000),
    5_000_000: (50_000, 25_000),
}
# GoodBooks-10k's shape: 53,424 users, 10,000 books, about 5M positives (ratings >= 4 and "to
# read" shelvings), as a synthetic set (``--sizes goodbooks``).
GOODBOOKS = (53_424, 10_000, 5_000_000)


def ml100k_split() -> SplitData:
    """MovieLens-100K, positives rating >= 4, per-user random 80/10/10 split, seed 42."""
    return load_split("ml-100k", config=PrepConfig(seed=42))


def synthetic_of_size(n_interactions: int, seed: int = 0, shape=None) -> SplitData:
    """The project's synthetic generator at ``n_interactions``, split like ML-100K; ``shape``:
    (users, items), else ``SYNTHETIC_SHAPES``' or 1/20 and 1/50 of ``n_interactions``."""
    n_users, n_items = shape or SYNTHETIC_SHAPES.get(
        n_interactions, (n_interactions // 20, n_interactions // 50)
    )
    return load_split(
        "synthetic",
        n_users=n_users,
        n_items=n_items,
        n_interactions=n_interactions,
        seed=seed,
        use_cache=False,
    )
