"""Top-k through the FAISS item index in serving (``recsys.ann``): near the exact top-k, never a
seen item, exact for whom it cannot answer and below the catalogue-size threshold."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import block_split
from model_checks import with_random_text

from recsys.ann import AnnConfig, ItemIndex, list_count
from recsys.data.dataset import Pairs, SplitData
from recsys.errors import RecsysError
from recsys.models.base import VectorScorer
from recsys.models.fixed import FixedVectors
from recsys.serving import ModelCard, RecsysPyfunc, ServedModel, save_artifacts
from recsys.train import Trainer

N_USERS, N_ITEMS, DIM = 300, 5_000, 32
HEAVY = 7  # this user has seen more items than max_seen
LOW = AnnConfig(min_items=1_000)
OFF = AnnConfig(min_items=None)


def synthetic() -> tuple[FixedVectors, SplitData]:
    """Item vectors in 64 clusters, with a decaying spectrum (as learned and text embeddings
    have; isotropic noise has no neighbourhoods to index) and unequal norms; each user has seen
    0-80 random items (user HEAVY 1,500), and their vector is the mean of those plus noise."""
    rng = np.random.default_rng(0)
    spectrum = np.arange(1, DIM + 1) ** -0.5
    centres = rng.normal(size=(64, DIM)) * spectrum
    items = centres[rng.integers(0, 64, N_ITEMS)] + 0.7 * rng.normal(size=(N_ITEMS, DIM)) * spectrum
    items *= rng.lognormal(0, 0.3, (N_ITEMS, 1)) / np.linalg.norm(items, axis=1, keepdims=True)
    counts = rng.integers(0, 80, N_USERS)
    counts[HEAVY] = 1_500
    users = np.repeat(np.arange(N_USERS), counts)
    seen = np.concatenate([rng.choice(N_ITEMS, c, replace=False) for c in counts])
    profiles = np.zeros((N_USERS, DIM))
    np.add.at(profiles, users, items[seen])
    profiles = profiles / np.maximum(counts, 1)[:, None] + 0.02 * rng.normal(size=profiles.shape)
    val = rng.random(len(users)) < 0.1
    data = SplitData(
        name="synthetic",
        fingerprint="synthetic",
        user_ids=np.array([f"u{u}" for u in range(N_USERS)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(N_ITEMS)], dtype=object),
        item_text=[],
        train=Pairs(users[~val], seen[~val]),
        val=Pairs(users[val], seen[val]),
        test=None,
    )
    model = FixedVectors(
        torch.tensor(profiles, dtype=torch.float32), torch.tensor(items, dtype=torch.float32)
    )
    return model, data


MODEL, DATA = synthetic()
CARD = ModelCard("dot", {}, 0, 1, DATA.name, DATA.fingerprint)
ALL = pd.DataFrame({"user_id": DATA.user_ids, "k": 10})


def served(ann: AnnConfig) -> ServedModel:
    return ServedModel(CARD, MODEL, DATA, ann=ann)


@pytest.fixture(scope="module")
def answers() -> tuple[pd.DataFrame, pd.DataFrame]:
    through_index = served(LOW)
    got = through_index.recommend(ALL)
    assert through_index._index is not None  # the index answered
    return got, served(OFF).recommend(ALL)


def test_index_top_k_is_near_the_exact_top_k_and_never_a_seen_item(answers):
    got, exact = answers
    assert isinstance(MODEL, VectorScorer)
    assert (got["source"] == "model").all()
    assert got.groupby("user_id").size().eq(10).all()
    key = ["user_id", "item_id"]
    assert len(got.merge(exact, on=key)) / len(exact) >= 0.95
    split = DATA.split_frame()
    assert got.merge(split, on=key).empty
    # Scores are the model's inner products, in descending order within each list.
    users = torch.tensor([int(u[1:]) for u in got["user_id"]])
    items = torch.tensor([int(i[1:]) for i in got["item_id"]])
    expected = (MODEL.users[users] * MODEL.items[items]).sum(1)
    np.testing.assert_allclose(got["score"], expected.numpy(), rtol=1e-4, atol=1e-4)
    assert (got.groupby("user_id", sort=False)["score"].diff().dropna() <= 0).all()


def test_users_who_have_seen_too_much_are_scored_exactly(answers):
    got, exact = answers
    heavy = f"u{HEAVY}"
    pd.testing.assert_frame_equal(
        got[got["user_id"] == heavy].reset_index(drop=True),
        exact[exact["user_id"] == heavy].reset_index(drop=True),
    )


def test_below_the_threshold_the_answer_is_the_exact_one(answers):
    _, exact = answers
    default = served(AnnConfig())
    assert N_ITEMS < AnnConfig().min_items
    pd.testing.assert_frame_equal(default.recommend(ALL), exact)
    assert default._index is None  # no index was built


def test_a_model_that_is_not_a_vector_scorer_is_scored_exactly(tmp_path):
    data = block_split()
    trainer = Trainer("ease", {"l2": 10.0}, data, device="cpu", seed=0)
    list(trainer.run(1))
    model = ServedModel(CARD, trainer.model, data, ann=AnnConfig(min_items=1))
    request = pd.DataFrame({"user_id": data.user_ids, "k": 5})
    expected = ServedModel(CARD, trainer.model, data, ann=OFF).recommend(request)
    pd.testing.assert_frame_equal(model.recommend(request), expected)
    assert model._index is None


def test_the_index_is_built_once_and_unknown_users_still_get_popularity():
    model = served(LOW)
    got = model.recommend(pd.DataFrame({"user_id": ["stranger", "u0"], "k": [3, 3]}))
    index = model._index
    assert index is not None and model.item_index() is index
    model.recommend(pd.DataFrame({"user_id": ["u1"]}))
    assert model._index is index
    stranger = got[got["user_id"] == "stranger"]
    assert (stranger["source"] == "popularity").all()
    expected = served(OFF).recommend(pd.DataFrame({"user_id": ["stranger"], "k": [3]}))
    pd.testing.assert_frame_equal(stranger.reset_index(drop=True), expected)


def test_index_scores_are_inner_products_whatever_the_item_norms():
    rng = np.random.default_rng(1)
    items = torch.tensor(rng.normal(size=(500, 8)) * rng.lognormal(0, 1, (500, 1)))
    index = ItemIndex(items.float(), nprobe=list_count(500))  # every cell: exhaustive
    queries = torch.tensor(rng.normal(size=(4, 8)), dtype=torch.float32)
    scores, top = index.search(queries, 20)
    exact = queries @ items.float().T
    np.testing.assert_array_equal(top, exact.topk(20, dim=1).indices.numpy())
    np.testing.assert_allclose(scores, exact.topk(20, dim=1).values.numpy(), rtol=1e-5)


def test_served_semantic_model_through_the_pyfunc_config(tmp_path):
    # 20 items: every cell is probed, so the index's answer is the exact one.
    data = with_random_text(block_split())
    config = {"weighting": "uniform", "popularity_blend": 0.1}
    trainer = Trainer("semantic", config, data, device="cpu", seed=0)
    list(trainer.run(1))
    card = ModelCard("semantic", config, 0, 1, data.name, data.fingerprint)
    artifacts = save_artifacts(tmp_path, card, trainer.model, data)
    pyfunc = RecsysPyfunc()
    context = types.SimpleNamespace(
        artifacts=artifacts, model_config={"ann_min_items": 10, "device": "cpu"}
    )
    pyfunc.load_context(context)
    assert pyfunc.served.ann == AnnConfig(min_items=10)
    request = pd.DataFrame({"user_id": data.user_ids, "k": 10})
    got = pyfunc.predict(None, request)
    assert pyfunc.served._index is not None
    expected = ServedModel.load(artifacts, "cpu", ann=OFF).recommend(request)
    columns = ["user_id", "item_id", "rank", "source"]
    pd.testing.assert_frame_equal(got[columns], expected[columns])
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, AnnConfig()),
        ({"ann_min_items": None, "max_users": 5}, AnnConfig(min_items=None)),
        ({"ann_min_items": 10.0, "ann_nprobe": 8, "ann_max_seen": 0}, AnnConfig(10, 8, 0)),
    ],
)
def test_model_config_keys(config, expected):
    assert AnnConfig.from_model_config(config) == expected


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ann_nprobe": 0}, "ann_nprobe must be an integer >= 1, got 0"),
        ({"ann_min_items": "big"}, "ann_min_items must be an integer >= 0 (or null"),
        ({"ann_max_seen": -1}, "ann_max_seen must be an integer >= 0, got -1"),
    ],
)
def test_bad_model_config_is_one_clear_error(config, message):
    with pytest.raises(RecsysError) as error:
        AnnConfig.from_model_config(config)
    assert message in str(error.value)
