"""The contract every registered model keeps, checked for each one through the Trainer.

In the spirit of implicit's ``recommender_base_test`` and LensKit's ``ScorerTests``: a new model
joins the registry and gets these checks by adding one line to ``CONTRACT``. Each model is
trained once for the module; the checks read that trainer.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import sweep_fakes
import torch
from conftest import block_split
from model_checks import held_out_on_top, with_random_entities, with_random_text

from recsys.data.dataset import SplitData
from recsys.evaluate import recommend
from recsys.models import MODELS
from recsys.train import Trainer

# Per model: a small config and the epochs after which it solves the checkerboard (BPR models
# trained much longer memorise their training items and push the held-out ones down).
CONTRACT: dict[str, tuple[dict, int]] = {
    "popularity": ({}, 1),
    "itemknn": ({"k": 10, "shrink": 1.0}, 1),
    "ease": ({"l2": 10.0}, 1),
    "gfcf": ({"alpha": 0.3, "num_factors": 8}, 1),
    "rp3beta": ({"alpha": 1.0, "beta": 0.5, "topk": 10}, 1),
    "userknn": ({"k": 10, "shrink": 1.0}, 1),
    "ials": ({"factors": 8, "regularization": 1.0}, 10),
    "bpr_mf": ({"dim": 8, "lr": 0.05, "batch_size": 64}, 10),
    "lightgcn": ({"dim": 8, "lr": 0.05, "batch_size": 64}, 10),
    "lightgcn_hardneg": ({"dim": 8, "lr": 0.05, "batch_size": 64}, 10),
    "lightgcn_text": ({"dim": 8, "lr": 0.05, "batch_size": 64, "text_init": "pca"}, 10),
    "lightgcn_kg": ({"dim": 8, "lr": 0.05, "batch_size": 64}, 10),
    "mult_vae": ({"hidden": 32, "latent": 8, "anneal_steps": 50, "lr": 1e-2, "batch_size": 8}, 30),
    "mult_dae": ({"hidden": 32, "latent": 8, "lr": 1e-2, "batch_size": 8}, 30),
    "hybrid_vae": (
        {"hidden": 32, "latent": 8, "anneal_steps": 50, "lr": 1e-2, "batch_size": 8},
        30,
    ),
    "semantic": ({}, 1),
    "ncf_mlp": ({"dim": 8, "hidden": 16, "n_layers": 2, "lr": 0.01, "batch_size": 32}, 12),
    "two_tower": ({"dim": 8, "hidden": 16, "lr": 0.01, "batch_size": 32, "item_text": True}, 6),
}
# Popularity ranks every user's unseen items alike, so no per-user answer exists for it; its
# known answer is the training counts (checked below). Semantic retrieval ranks by item text
# alone, and the text here is random (no held-out item is nearer its group than another item):
# its checkerboard, with text that knows the groups, is in tests/test_semantic.py.
NO_CHECKERBOARD = {"popularity", "semantic"}


# The checkerboard has no item attributes: random text and random entities (linked across the
# groups) stand in for them, so that neither solves it and only the interactions do; every other
# model ignores the entities.
DATA = with_random_entities(with_random_text(block_split()))


@functools.cache
def trained(name: str) -> tuple[Trainer, tuple[float, ...]]:
    """``name`` trained on :data:`DATA` once for the whole module (the tests only read it)."""
    config, epochs = CONTRACT[name]
    trainer = Trainer(name, config, DATA, device="cpu", seed=0)
    losses = [e.losses.get("loss", float("nan")) for e in trainer.run(epochs, eval_every=1)]
    return trainer, tuple(losses)


@pytest.fixture
def data() -> SplitData:
    return DATA


def test_every_registered_model_is_under_contract():
    # The sweep tests' own models (``sweep_fakes``) join the registry once a test has started
    # the shared Ray session, whichever test file ran first.
    test_only = {spec.name for spec in sweep_fakes.SPECS}
    assert set(CONTRACT) == set(MODELS) - test_only


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_scores_have_the_catalogue_shape_and_are_finite(data, name):
    trainer = Trainer(name, CONTRACT[name][0], data, device="cpu", seed=0)
    trainer.model.eval()
    users = torch.tensor([0, 5, data.n_users - 1])
    with torch.no_grad():
        before = trainer.model.score(users).clone()
        assert before.shape == (3, data.n_items) and before.dtype == torch.float32
        assert torch.isfinite(before).all()
        # The evaluator masks what score returns in place: that must not reach the model.
        first = trainer.evaluate("val", ks=(5,))
        assert trainer.evaluate("val", ks=(5,)) == first
        torch.testing.assert_close(trainer.model.score(users), before, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(set(CONTRACT) - NO_CHECKERBOARD))
def test_held_out_items_rank_first_on_the_checkerboard(data, name):
    trainer, _ = trained(name)  # held_out_on_top switches the model to eval mode
    assert held_out_on_top(trainer.model, data) == 1.0


def test_popularity_scores_are_the_training_counts(data):
    trainer, _ = trained("popularity")
    trainer.model.eval()
    counts = torch.bincount(torch.from_numpy(data.train.items), minlength=data.n_items).float()
    scores = trainer.model.score(torch.arange(data.n_users))
    torch.testing.assert_close(scores, counts.expand(data.n_users, -1))


@pytest.mark.parametrize("name", sorted(n for n in CONTRACT if MODELS[n].trainable))
def test_loss_goes_down(data, name):
    _, losses = trained(name)
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.85 * losses[0]


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_save_and_load_give_the_same_scores(data, name, tmp_path):
    trainer, _ = trained(name)
    path = trainer.save(tmp_path / f"{name}.pt")
    restored = Trainer(name, CONTRACT[name][0], data, device="cpu", seed=123)
    restored.load(path)
    assert restored.epoch == trainer.epoch
    trainer.model.eval()
    restored.model.eval()
    users = torch.arange(data.n_users)
    with torch.no_grad():
        torch.testing.assert_close(
            restored.model.score(users), trainer.model.score(users), rtol=0, atol=0
        )


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_training_items_are_never_recommended(data, name):
    trainer, _ = trained(name)
    users = torch.arange(data.n_users)
    items, scores = recommend(trainer.model, data, users, k=data.n_items, exclude_splits=("train",))
    train = set(zip(data.train.users.tolist(), data.train.items.tolist(), strict=True))
    listed = {
        (u, i) for u, row in zip(users.tolist(), items.tolist(), strict=True) for i in row if i >= 0
    }
    assert listed and not listed & train
    # Every other item is listed: only the training items were taken out.
    assert len(listed) == data.n_users * data.n_items - len(train)
