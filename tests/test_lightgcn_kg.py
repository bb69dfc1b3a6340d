"""LightGCN over the user-item-entity graph (``lightgcn_kg``): the joint adjacency by hand, plain
LightGCN when no entity is shared, and what entities give an item without interactions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import block_split

from recsys.data.dataset import ItemEntities, Pairs, SplitData
from recsys.errors import RecsysError
from recsys.models import MODELS
from recsys.models.lightgcn import LightGCN, normalized_adjacency
from recsys.train import Trainer

FAST = {"dim": 8, "lr": 0.05, "batch_size": 64}


def entities(items, names) -> ItemEntities:
    return ItemEntities.from_names(np.array(items), np.array(names, dtype=object))


def tiny(train_users, train_items, n_users, n_items, links=None) -> SplitData:
    return SplitData(
        name="tiny",
        fingerprint="tiny",
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
        item_text=[""] * n_items,
        train=Pairs(np.array(train_users), np.array(train_items)),
        val=Pairs.empty(),
        test=Pairs.empty(),
        item_entities=links,
    )


def test_registry_entry_is_lightgcn_over_the_entity_graph():
    spec = MODELS["lightgcn_kg"]
    cfg = spec.config_cls()
    assert spec.trainable and cfg.graph == "user_item_entity"
    assert spec.needs_item_entities(cfg) and not spec.needs_item_embeddings(cfg)
    assert (cfg.entity_weight, cfg.min_entity_items, cfg.layers) == (1.0, 2, 3)
    for name in ("lightgcn", "lightgcn_hardneg", "lightgcn_text", "bpr_mf"):
        assert not MODELS[name].needs_item_entities(MODELS[name].config_cls())


def test_joint_adjacency_of_a_tiny_graph_by_hand():
    # Users u0, u1; items i0, i1, i2; entities e0 (of i0, i1, i2) and e1 (of i2); entity edges
    # weigh 0.5. Node order: u0 u1 i0 i1 i2 e0 e1.
    links = entities([0, 1, 2, 2], ["e0", "e0", "e0", "e1"])
    adjacency = normalized_adjacency(
        Pairs(np.array([0, 0, 1]), np.array([0, 1, 1])), 2, 3, links, entity_weight=0.5
    )
    w = 0.5
    a = np.zeros((7, 7))
    for i, j, weight in [
        (0, 2, 1),
        (0, 3, 1),
        (1, 3, 1),
        (2, 5, w),
        (3, 5, w),
        (4, 5, w),
        (4, 6, w),
    ]:
        a[i, j] = a[j, i] = weight
    degree = np.array([2, 1, 1.5, 2.5, 1.0, 1.5, 0.5])  # row sums, by hand
    expected = a / np.sqrt(np.outer(degree, degree))
    assert expected[4, 5] == pytest.approx(0.5 / math.sqrt(1.0 * 1.5))
    np.testing.assert_allclose(adjacency.to_dense().numpy(), expected, rtol=1e-6)
    # Without entities it is LightGCN's graph: the same three edges and the degrees of users
    # and items alone.
    plain = normalized_adjacency(Pairs(np.array([0, 0, 1]), np.array([0, 1, 1])), 2, 3)
    assert plain.shape == (5, 5)
    assert plain.to_dense()[0, 3] == pytest.approx(1 / math.sqrt(2 * 2))


def test_shared_keeps_entities_of_two_items_and_reindexes_them():
    links = entities([0, 0, 1, 2, 2], ["b", "a", "b", "c", "b"])  # a: 1 item, b: 3, c: 1
    assert list(links.names) == ["a", "b", "c"]
    shared = links.shared(2)
    assert list(shared.names) == ["b"]
    assert shared.items.tolist() == [0, 1, 2] and shared.entities.tolist() == [0, 0, 0]
    assert len(links.shared(4)) == 0 and links.shared(4).n_entities == 0
    back = ItemEntities.from_frame(links.to_frame())
    for field in ("items", "entities", "names"):
        np.testing.assert_array_equal(getattr(back, field), getattr(links, field))


def test_without_a_shared_entity_the_model_is_lightgcn_to_the_bit(blocks):
    # Every entity has one item: none joins two items, so no entity edge is left.
    lonely = dataclasses.replace(
        blocks,
        item_entities=entities(np.arange(blocks.n_items), [f"e{i}" for i in range(blocks.n_items)]),
    )
    users = torch.arange(blocks.n_users)

    def trained(name: str) -> tuple[Trainer, torch.Tensor]:
        # Each trained right after it is built: the Trainer seeds the global RNGs once.
        trainer = Trainer(name, FAST, lonely, device="cpu", seed=3)
        for _ in trainer.run(3):
            pass
        with torch.no_grad():
            return trainer, trainer.model.score(users)

    with pytest.warns(UserWarning, match="no entity is linked to 2 or more items"):
        kg, kg_scores = trained("lightgcn_kg")
    plain, plain_scores = trained("lightgcn")
    assert kg.model.n_entities == 0 and set(kg.model.state_dict()) == set(plain.model.state_dict())
    torch.testing.assert_close(kg_scores, plain_scores, rtol=0, atol=0)


def test_a_cold_item_gets_the_score_of_the_popular_item_it_shares_an_entity_with():
    # u0 likes item p (0); item c (1) has no interaction, p and c share entity e. 1-d embeddings
    # u0 = p = 1, c = e = 0, K = 2. By hand on the graph u0-p-e-c (degrees 1, 2, 2, 1):
    # c after layer 2 = A_ce A_ep p = (1/sqrt2)(1/2) = 1/(2 sqrt2), so c = (0 + 0 + 1/(2 sqrt2))/3,
    # u0 = (1 + A_up p + A_up A_pu u0)/3 = (1 + 1/sqrt2 + 1/2)/3, score = u0 * c.
    data = tiny([0], [0], 1, 2, entities([0, 1], ["e", "e"]))
    expected = (1.5 + 1 / math.sqrt(2)) / 3 * (1 / (2 * math.sqrt(2))) / 3

    def score(links) -> float:
        adjacency = normalized_adjacency(data.train, 1, 2, links)
        n = 0 if links is None else links.n_entities
        model = LightGCN(1, 2, 1, 2, adjacency, n_entities=n)
        with torch.no_grad():
            model.user_weight.fill_(1.0)
            model.item_weight.copy_(torch.tensor([[1.0], [0.0]]))
            if n:
                model.entity_embedding.zero_()
        return float(model.score(torch.tensor([0]))[0, 1])

    assert score(data.item_entities) == pytest.approx(expected, rel=1e-6)
    assert expected > 0.08
    assert score(None) == 0.0  # LightGCN: an item without edges keeps its own embedding only


def test_trained_entities_give_a_cold_item_the_taste_of_its_group():
    # The checkerboard with item 0 (group 0) never trained on; entity "g0" links the items of
    # group 0, "g1" those of group 1. Through g0 the cold item's embedding follows group 0's, so
    # group-0 users score it well above group-1 users; LightGCN sees it only as a negative
    # (about as far from both groups: its gap measured 0.3-0.5 against 2.0-2.8 with entities).
    data = block_split()
    keep = data.train.items != 0
    groups = [f"g{i // 10}" for i in range(data.n_items)]
    data = dataclasses.replace(
        data,
        train=Pairs(data.train.users[keep], data.train.items[keep]),
        item_entities=entities(np.arange(data.n_items), groups),
    )

    def gap(name: str) -> float:
        trainer = Trainer(name, FAST, data, device="cpu", seed=0)
        for _ in trainer.run(10):
            pass
        trainer.model.eval()
        with torch.no_grad():
            cold = trainer.model.score(torch.arange(data.n_users))[:, 0]
        return float(cold[:20].min() - cold[20:].max())

    with_entities, plain = gap("lightgcn_kg"), gap("lightgcn")
    assert with_entities > 1.0 and with_entities > 2 * plain


def test_without_entities_the_model_names_the_fix(blocks):
    with pytest.raises(RecsysError, match="needs item entities.*entities=kg"):
        Trainer("lightgcn_kg", FAST, blocks, device="cpu")
    Trainer("lightgcn", FAST, blocks, device="cpu")  # plain LightGCN reads no entities


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"entity_weight": 0.0}, "entity_weight must be > 0"),
        ({"min_entity_items": 0}, "min_entity_items must be >= 1"),
        ({"graph": "knowledge"}, "graph must be one of user_item, user_item_entity"),
        ({"layers": 0}, "needs layers >= 1"),
    ],
)
def test_bad_config_raises_recsys_error(config, message):
    with pytest.raises(RecsysError, match=message):
        MODELS["lightgcn_kg"].make_config(config)


def test_a_sweep_over_data_without_entities_is_refused_before_any_trial(blocks):
    from model_checks import with_random_entities

    from recsys.tuning.inputs import check_entities
    from recsys.tuning.space import load_space

    spaces = [load_space(m, config_cls=MODELS[m].config_cls) for m in ("lightgcn", "lightgcn_kg")]
    with pytest.raises(RecsysError, match="model 'lightgcn_kg' needs item entities"):
        check_entities(blocks, spaces)
    check_entities(with_random_entities(blocks), spaces)
    check_entities(blocks, spaces[:1])  # plain LightGCN needs none
