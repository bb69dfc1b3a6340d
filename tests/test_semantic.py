"""Semantic retrieval: hand-computed profiles and rankings, cold-start items, the checkerboard
with text that knows the groups, and its search space."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import block_split
from model_checks import held_out_on_top

from recsys.data.dataset import Pairs, SplitData
from recsys.errors import RecsysError
from recsys.evaluate import recommend
from recsys.models import get_spec
from recsys.models.base import VectorScorer
from recsys.models.semantic import SemanticConfig, SemanticRetrieval
from recsys.tuning.space import load_space

# Five unit item vectors in the plane, at angles 0, 10, 60, 90 and 180 degrees.
ANGLES = np.radians([0.0, 10.0, 60.0, 90.0, 180.0])
PLANE = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)
WEIGHTINGS = ("uniform", "idf")


def data_of(users, items, n_users: int, vectors: np.ndarray) -> SplitData:
    n_items = vectors.shape[0]
    return SplitData(
        name="tiny",
        fingerprint="tiny",
        user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        item_text=[""] * n_items,
        train=Pairs(np.array(users), np.array(items)),
        val=Pairs.empty(),
        test=None,
        item_embeddings=vectors,
    )


def built(data: SplitData, **config) -> SemanticRetrieval:
    spec = get_spec("semantic")
    assert not spec.trainable and spec.needs_item_embeddings(spec.config_cls())
    return spec.build(spec.make_config(config), data, torch.device("cpu"))


def test_single_item_user_gets_the_nearest_other_vector_first():
    # User 0 has item 2 (60 degrees): the next are item 3 (30 degrees off), then 1 (50), 0 (60).
    data = data_of([0, 1], [2, 4], 2, PLANE)
    model = built(data)
    items, scores = recommend(model, data, torch.tensor([0]), k=4, exclude_splits=("train",))
    assert items[0].tolist() == [3, 1, 0, 4]
    expected = np.cos(np.radians([30.0, 50.0, 60.0, 120.0]))
    np.testing.assert_allclose(scores[0].numpy(), expected, rtol=1e-6)


def test_idf_weighting_by_hand_on_three_items():
    # User 0 has items 0, 2, 3; users 1 and 2 also have item 0, user 1 item 2. Popularity of
    # items 0, 2, 3: 3, 2, 1 of 3 users; idf = 1 + ln(4 / (1 + n)).
    data = data_of([0, 0, 0, 1, 1, 2], [0, 2, 3, 0, 2, 0], 3, PLANE)
    idf = 1 + np.log(4 / np.array([4.0, 3.0, 2.0]))
    assert idf[0] == 1.0  # an item every user has keeps weight 1
    for weighting, weights in (("uniform", np.ones(3)), ("idf", idf)):
        model = built(data, weighting=weighting)
        profile = weights @ PLANE[[0, 2, 3]]
        expected = PLANE @ (profile / np.linalg.norm(profile))
        got = model.score(torch.tensor([0]))[0].numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The rarer items (60 and 90 degrees) pull the idf profile away from item 0.
    uniform, weighted = (built(data, weighting=w).score(torch.tensor([0]))[0] for w in WEIGHTINGS)
    assert weighted[3] > uniform[3] and weighted[0] < uniform[0]


def test_item_nobody_interacted_with_is_scored_from_its_text():
    # Item 1 (10 degrees) has no interaction at all, yet ranks first for the user of item 0,
    # above items 2-4 that user 1 has.
    data = data_of([0, 1, 1, 1], [0, 2, 3, 4], 2, PLANE)
    model = built(data)
    items, scores = recommend(model, data, torch.tensor([0]), k=2, exclude_splits=("train",))
    assert items[0].tolist() == [1, 2]
    expected = np.cos(np.radians([10.0, 60.0]))
    np.testing.assert_allclose(scores[0].numpy(), expected, rtol=1e-6)


def test_popularity_blend_adds_w_log_popularity_and_stays_a_dot_product():
    data = data_of([0, 1, 2, 2], [0, 3, 3, 4], 3, PLANE)
    model = built(data, popularity_blend=0.5)
    assert isinstance(model, VectorScorer)
    users = torch.arange(3)
    counts = np.array([1.0, 0.0, 0.0, 2.0, 1.0])
    profile = PLANE[0]
    expected = PLANE @ profile + 0.5 * np.log1p(counts)
    np.testing.assert_allclose(model.score(users)[0].numpy(), expected, rtol=1e-6)
    vectors = model.user_vectors(users) @ model.item_vectors().T
    torch.testing.assert_close(model.score(users), vectors)
    assert model.item_vectors().shape == (5, 3)
    plain = built(data)
    assert plain.item_vectors().shape == (5, 2)
    torch.testing.assert_close(plain.user_vectors(users).norm(dim=1), torch.ones(3))


def test_user_without_training_items_scores_zero_and_gets_popularity():
    data = data_of([1, 1, 2], [3, 4, 3], 3, PLANE)
    assert (built(data).score(torch.tensor([0])) == 0).all()
    blended = built(data, popularity_blend=0.1).score(torch.tensor([0]))[0]
    assert int(blended.argmax()) == 3


def group_text(data: SplitData, dim: int = 8, noise: float = 0.3) -> SplitData:
    """Item vectors that know the checkerboard's groups: the group's axis plus noise."""
    rng = np.random.default_rng(0)
    groups = np.arange(data.n_items) // 10
    vectors = np.eye(dim, dtype=np.float32)[groups]
    vectors += noise * rng.normal(size=vectors.shape).astype(np.float32)
    return dataclasses.replace(data, item_embeddings=vectors)


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_checkerboard_with_text_that_knows_the_groups(weighting):
    # The model contract's random text cannot tell the groups apart; this text can.
    data = group_text(block_split())
    assert held_out_on_top(built(data, weighting=weighting), data) == 1.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"weighting": "rating"}, "weighting must be one of 'uniform', 'idf', got 'rating'"),
        ({"popularity_blend": -0.1}, "popularity_blend must be a number >= 0"),
        ({"popularity_blend": float("nan")}, "popularity_blend must be a number >= 0"),
    ],
)
def test_bad_config_is_one_clear_error(config, message):
    with pytest.raises(RecsysError, match=message):
        SemanticConfig(**config)


def test_needs_item_embeddings():
    data = dataclasses.replace(data_of([0], [0], 1, PLANE), item_embeddings=None)
    with pytest.raises(RecsysError, match="semantic needs item embeddings"):
        built(data)
    wrong = dataclasses.replace(data, item_embeddings=PLANE[:3])
    with pytest.raises(RecsysError, match=r"must have shape \(n_items=5, d\)"):
        built(wrong)


def test_search_space_starts_with_the_defaults():
    space = load_space("semantic")
    assert space.budget.max_epochs == 1
    assert space.first_trial == {"weighting": "uniform", "popularity_blend": 0.0}
