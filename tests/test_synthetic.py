"""Synthetic data: exact sizes, determinism, heavy-tailed popularity and a learnable structure."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data.synthetic import THEMES, generate, make_synthetic
from recsys.errors import RecsysError


@pytest.fixture(scope="module")
def world():
    return generate(1200, 600, 30_000, n_clusters=6, seed=1)


def test_sizes_and_invariants(world):
    frame = world.interactions.frame
    assert len(frame) == 30_000
    assert not frame.duplicated(["user_id", "item_id"]).any()
    assert frame["user_id"].nunique() == 1200  # n_interactions >= n_users: nobody is left out
    assert frame["item_id"].between(0, 599).all()
    assert frame["rating"].isna().all()  # implicit positives
    assert (np.diff(frame["timestamp"].to_numpy()) > 0).all()
    assert sorted(world.interactions.item_text) == list(range(600))


def test_seeded():
    a = make_synthetic(200, 100, 3000, seed=7)
    b = make_synthetic(200, 100, 3000, seed=7)
    c = make_synthetic(200, 100, 3000, seed=8)
    assert a.frame.equals(b.frame) and a.item_text == b.item_text
    assert not a.frame.equals(c.frame)
    assert a.source == b.source != c.source


@pytest.mark.parametrize("sizes", [(10, 10, 100), (40, 300, 11_000), (500, 50, 400)])
def test_exact_count_at_any_density(sizes):
    frame = make_synthetic(*sizes, seed=2).frame
    assert len(frame) == sizes[2]
    assert not frame.duplicated(["user_id", "item_id"]).any()


def test_popularity_is_heavy_tailed(world):
    def top_decile_share(frame):
        counts = np.sort(np.bincount(frame["item_id"], minlength=600))[::-1]
        return counts[:60].sum() / counts.sum(), counts[0] / np.median(counts)

    share, head = top_decile_share(world.interactions.frame)
    flat = generate(1200, 600, 30_000, n_clusters=6, seed=1, popularity_exponent=0.0)
    flat_share, flat_head = top_decile_share(flat.interactions.frame)
    assert flat_share < 0.15 and flat_head < 2  # no popularity skew: about 10% and 1
    assert share > 2.5 * flat_share
    assert head > 5


def test_items_co_occur_within_clusters(world):
    frame = world.interactions.frame
    k = 6
    # users x clusters counts, then co-occurring pairs per item pair, within vs across clusters
    hist = np.zeros((1200, k))
    np.add.at(hist, (frame["user_id"], world.item_cluster[frame["item_id"]]), 1)
    pairs = hist.T @ hist - np.diag(hist.sum(axis=0))  # ordered pairs of distinct items
    sizes = np.bincount(world.item_cluster, minlength=k).astype(float)
    item_pairs = np.outer(sizes, sizes) - np.diag(sizes)
    per_pair = pairs / item_pairs
    within = per_pair.diagonal().mean()
    across = per_pair[~np.eye(k, dtype=bool)].mean()
    assert within > 5 * across


def test_structure_is_learnable(world):
    """Item-item co-occurrence beats popularity at finding a held-out item of each user."""
    frame = world.interactions.frame
    users, items = frame["user_id"].to_numpy(), frame["item_id"].to_numpy()
    rng = np.random.default_rng(0)
    held = np.zeros(len(frame), dtype=bool)
    order = rng.permutation(len(frame))
    _, first = np.unique(users[order], return_index=True)
    held[order[first]] = True  # one random interaction per user
    train = np.zeros((1200, 600))
    train[users[~held], items[~held]] = 1
    popularity = np.tile(train.sum(axis=0), (1200, 1))
    co_occurrence = train @ (train.T @ train)

    def hit_at_10(scores):
        scores = np.where(train > 0, -np.inf, scores)
        top = np.argsort(-scores, axis=1)[:, :10]
        return (top[users[held]] == items[held][:, None]).any(axis=1).mean()

    assert hit_at_10(co_occurrence) > 2 * hit_at_10(popularity)


def test_texts_carry_the_cluster(world):
    vocab = [set(theme.split()) for theme in THEMES[:6]]
    for item, text in world.interactions.item_text.items():
        topic = set(text.split(": ")[1].split(", "))
        assert len(topic) == 3 and topic <= vocab[world.item_cluster[item]]


@pytest.mark.parametrize(
    "sizes, problem",
    [
        ((10, 10, 101), "exceeds n_users \\* n_items = 100"),
        ((0, 10, 5), "n_users must be a positive integer"),
        ((10, -1, 5), "n_items must be a positive integer"),
        ((10, 10, 0), "n_interactions must be a positive integer"),
        ((10, 10, 2.5), "n_interactions must be a positive integer"),
    ],
)
def test_bad_sizes(sizes, problem):
    with pytest.raises(RecsysError, match=problem):
        make_synthetic(*sizes)


def test_bad_options():
    with pytest.raises(RecsysError, match="temperature must be > 0"):
        make_synthetic(10, 10, 20, temperature=0)
    with pytest.raises(RecsysError, match="dim must be a positive integer"):
        make_synthetic(10, 10, 20, dim=0)


def test_a_scaled_down_preset_keeps_its_per_user_bounds_and_median():
    from dataclasses import replace

    from recsys.data.synthetic import SHAPES

    # ML-1M with a tenth of its users and pairs: the same mean, bounds and spread per user
    small = replace(SHAPES["ml-1m"], n_users=604, n_interactions=100_020)
    frame = generate(**small.generator_options(), seed=3).interactions.frame
    per_user = np.bincount(frame["user_id"])
    assert len(frame) == 100_020 and len(per_user) == 604
    assert per_user.min() >= 20 and per_user.max() <= 2_314
    assert abs(np.median(per_user) - 96) < 12
    per_item = np.sort(np.bincount(frame["item_id"], minlength=3_706))[::-1]
    assert per_item[:37].sum() / len(frame) > 0.05  # the top 1% of items: a heavy head


def test_shape_options_are_checked_before_generating():
    from recsys.data.loaders import check_options

    check_options("synthetic", {"shape": "goodbooks", "seed": 1})
    with pytest.raises(RecsysError, match="unknown shape 'ml-20m'"):
        check_options("synthetic", {"shape": "ml-20m"})
    with pytest.raises(RecsysError, match="shape=ml-1m sets n_users"):
        check_options("synthetic", {"shape": "ml-1m", "n_users": 50})
    with pytest.raises(RecsysError, match="max_per_user"):
        generate(10, 100, 500, max_per_user=20)  # 10 users x 20 < 500 pairs
