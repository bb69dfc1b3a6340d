"""Mult-VAE, Mult-DAE and HybridVAE: the checkerboard, loss going down, annealing, the DAE's
deterministic encoder, frozen text vectors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from model_checks import held_out_on_top

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError
from recsys.models import get_spec
from recsys.models.base import UserBatch
from recsys.models.history import History
from recsys.models.hybrid_vae import TextDecoder
from recsys.models.mult_vae import MultVAE
from recsys.models.vae import gaussian_kl, multinomial_nll
from recsys.train import Trainer
from recsys.tuning.space import load_space

SMALL = {"hidden": 32, "latent": 8, "anneal_steps": 50}
# Small, fast training settings; no clipping (HybridVAE's default clips at 5).
TRAIN = {"lr": 1e-2, "batch_size": 8, "grad_clip": None}


def with_text(data: SplitData, dim: int = 32, seed: int = 0) -> SplitData:
    """``data`` with random unit-norm item vectors standing in for Sentence-BERT."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(data.n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return dataclasses.replace(data, item_embeddings=vectors)


def build(name: str, data: SplitData, **overrides):
    spec = get_spec(name)
    assert spec.trainable
    torch.manual_seed(0)
    return spec.build(spec.config_cls(**{**SMALL, **overrides}), data, torch.device("cpu"))


def train(name: str, data: SplitData, epochs: int, **overrides):
    """A model trained by the Trainer for ``epochs`` epochs, and the mean loss of each epoch."""
    trainer = Trainer(name, {**SMALL, **TRAIN, **overrides}, data, device="cpu", seed=0)
    losses = [trainer.train_epoch()["loss"] for _ in range(epochs)]
    trainer.model.eval()
    return trainer.model, losses


@pytest.fixture
def text_blocks(blocks) -> SplitData:
    return with_text(blocks)


@pytest.mark.parametrize("name", ["mult_vae", "hybrid_vae"])
def test_vae_loss_goes_down_in_a_few_epochs(text_blocks, name):
    # Without input dropout the epoch means are not drowned in the noise of dropping half of
    # each user's ten items, so four small steps at the default lr show reliably.
    _, losses = train(name, text_blocks, epochs=4, lr=1e-3, dropout=0.0)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", ["mult_vae", "hybrid_vae"])
def test_vae_shapes_and_loss_terms(text_blocks, name):
    model = build(name, text_blocks)
    assert model.batch_kind == "users"
    users = torch.tensor([0, 5, 39])
    rows = History(text_blocks.train_csr()).rows(users)
    model.train()
    logits, mu, logvar = model(rows)
    assert logits.shape == (3, text_blocks.n_items)
    assert mu.shape == logvar.shape == (3, SMALL["latent"])
    out = model.loss(UserBatch(users, rows))
    assert {"loss", "nll", "kl", "beta"} <= set(out)
    assert out["loss"].ndim == 0 and out["nll"] > 0 and out["kl"] >= 0
    model.eval()
    scores = model.score(users)
    assert scores.shape == (3, text_blocks.n_items)
    torch.testing.assert_close(model.score(users), scores, rtol=0, atol=0)


def test_loss_terms_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    rows = torch.tensor([[1.0, 1.0, 0.0]])
    torch.testing.assert_close(multinomial_nll(logits, rows), torch.tensor(math.log(8.0)))
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    expected = 0.5 * (1.0 + (2.0 - math.log(2.0) - 1.0))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.tensor(expected))


def test_kl_weight_is_annealed_per_training_step(blocks):
    model = build("mult_vae", blocks, beta_max=0.4, anneal_steps=4)
    users = torch.arange(4)
    batch = UserBatch(users, History(blocks.train_csr()).rows(users))
    model.train()
    betas = [float(model.loss(batch)["beta"]) for _ in range(6)]
    assert betas == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4])
    model.eval()
    model.loss(batch)
    assert int(model.step) == 6
    assert "step" in model.state_dict()


@pytest.mark.parametrize("name", ["mult_vae", "hybrid_vae"])
def test_vae_state_dict_round_trip(text_blocks, name):
    model, _ = train(name, text_blocks, epochs=2)
    state = model.state_dict()
    assert not any(key.startswith("history.") for key in state)
    assert "decoder.item_text" not in state
    clone = build(name, text_blocks, beta_max=0.2)
    clone.load_state_dict(state)
    clone.eval()
    users = torch.arange(text_blocks.n_users)
    torch.testing.assert_close(clone.score(users), model.score(users), rtol=0, atol=0)
    assert int(clone.step) == int(model.step)


@pytest.mark.parametrize("residual", [False, True])
def test_hybrid_text_vectors_stay_frozen(text_blocks, residual):
    trainer = Trainer(
        "hybrid_vae", {**SMALL, **TRAIN, "trainable_residual": residual}, text_blocks, seed=0
    )
    model = trainer.model
    before = model.decoder.item_text.clone()
    torch.testing.assert_close(before, torch.from_numpy(text_blocks.item_embeddings))
    assert not model.decoder.item_text.requires_grad
    assert all(p is not model.decoder.item_text for p in model.parameters())
    for _ in range(3):
        trainer.train_epoch()
    torch.testing.assert_close(model.decoder.item_text, before, rtol=0, atol=0)
    if residual:
        assert model.decoder.residual.abs().max() > 0
        assert held_out_on_top(model, text_blocks) > 0.5
    else:
        assert model.decoder.residual is None


def test_hybrid_starts_near_uniform_and_scale_multiplies_the_text_logits(text_blocks):
    model = build("hybrid_vae", text_blocks, logit_scale=5.0)
    model.eval()
    logits = model.score(torch.arange(text_blocks.n_users))
    # The decoder starts at (almost) the uniform distribution, whatever the scale.
    assert logits.std(dim=1).max() < 0.05
    decoder = model.decoder
    z = torch.randn(4, SMALL["latent"])
    with torch.no_grad():
        decoder.project.weight.normal_()
        text_logits = decoder(z) - decoder.item_bias
        decoder.log_scale.add_(math.log(3.0))
        torch.testing.assert_close(decoder(z) - decoder.item_bias, 3.0 * text_logits)


def test_hybrid_learns_a_sharper_scale_on_near_parallel_text(blocks):
    # Text vectors of one catalogue are close to each other (here: mean cosine ~0.9), so at
    # scale 1 the logits span a narrow range; the learned scale grows to sharpen the softmax.
    rng = np.random.default_rng(0)
    common = rng.normal(size=(1, 32))
    noise = rng.normal(size=(blocks.n_items, 32))
    vectors = 0.9 * common / np.linalg.norm(common)
    vectors = vectors + 0.3 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert 0.85 < (vectors @ vectors.T).mean() < 0.95
    data = dataclasses.replace(blocks, item_embeddings=vectors.astype(np.float32))
    model, _ = train("hybrid_vae", data, epochs=20, logit_scale=1.0, beta_max=0.0)
    assert model.decoder.log_scale.exp().item() > 1.2
    assert held_out_on_top(model, data) == 1.0


def test_hybrid_build_without_embeddings_is_an_error(blocks):
    """The builder does not load Sentence-BERT itself: the caller attaches the embeddings."""
    with pytest.raises(RecsysError, match="with_item_embeddings"):
        build("hybrid_vae", blocks)


def test_hybrid_rejects_mismatched_embeddings(blocks):
    data = dataclasses.replace(blocks, item_embeddings=np.ones((3, 8), np.float32))
    with pytest.raises(RecsysError, match="item_embeddings must have shape"):
        build("hybrid_vae", data)
    with pytest.raises(RecsysError, match="logit_scale"):
        build("hybrid_vae", with_text(blocks), logit_scale=0.0)


def test_text_decoder_residual_is_added_to_the_text_vectors():
    vectors = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    decoder = TextDecoder(3, vectors, logit_scale=2.0, trainable_residual=True)
    with torch.no_grad():
        decoder.residual.fill_(0.5)
    torch.testing.assert_close(decoder.item_matrix(), vectors + 0.5)


DAE = {"hidden": 32, "latent": 8, "dropout": 0.0}


def dae(data: SplitData, **overrides):
    torch.manual_seed(0)
    spec = get_spec("mult_dae")
    return spec.build(spec.make_config({**DAE, **overrides}), data, torch.device("cpu"))


def test_dae_loss_without_dropout_is_the_multinomial_nll_of_its_network(blocks):
    model = dae(blocks)
    users = torch.arange(6)
    rows = History(blocks.train_csr()).rows(users)
    model.train()
    out = model.loss(UserBatch(users, rows))
    assert set(out) == {"loss", "nll"} and out["loss"] is out["nll"]
    # By hand, from the weights: Liang et al.'s MultiDAE, tanh after every layer but the last.
    enc, dec = model.encoder, model.decoder
    layers = [enc.hidden, enc.out, dec[1], dec[3]]
    h = rows / rows.norm(dim=1, keepdim=True)
    for index, layer in enumerate(layers):
        h = h @ layer.weight.T + layer.bias
        if index < len(layers) - 1:
            h = torch.tanh(h)
    log_p = h - torch.logsumexp(h, dim=1, keepdim=True)
    expected = -(log_p * rows).sum(dim=1).mean()
    torch.testing.assert_close(out["loss"], expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out["loss"], multinomial_nll(model(rows)[0], rows), rtol=0, atol=0)
    assert enc.out.out_features == DAE["latent"]  # the code alone: no log-variance half


def test_dae_decodes_its_code_without_sampling_in_training_and_scoring(blocks):
    users = torch.arange(blocks.n_users)
    rows = History(blocks.train_csr()).rows(users)
    model = dae(blocks)
    model.train()
    logits, code, logvar = model(rows)
    assert logvar is None
    torch.testing.assert_close(model(rows)[0], logits, rtol=0, atol=0)
    model.eval()
    torch.testing.assert_close(model.score(users), logits, rtol=0, atol=0)
    torch.testing.assert_close(model.score(users), model.score(users), rtol=0, atol=0)
    # The same check fails for the VAE: it samples z in training.
    vae = build("mult_vae", blocks, dropout=0.0)
    vae.train()
    assert not torch.equal(vae(rows)[0], vae(rows)[0])


def test_dae_has_no_kl_weight_and_defaults_to_the_papers_l2(blocks):
    with pytest.raises(RecsysError, match="unknown hyperparameter.*beta_max"):
        Trainer("mult_dae", {**DAE, "beta_max": 0.2}, blocks)
    trainer = Trainer("mult_dae", DAE, blocks)
    # 0.01 / batch_size on sum |W|^2 in Liang et al.'s code is Adam's weight decay 2 * 0.01 / 500.
    assert trainer.optimizer.param_groups[0]["weight_decay"] == pytest.approx(4e-5)
    with pytest.raises(ValueError, match="no KL term"):
        MultVAE(blocks.train_csr(), 8, 4, 0.0, beta_max=0.2, variational=False)


def test_dae_state_dict_round_trip_and_space_file(blocks):
    trainer = Trainer("mult_dae", {**DAE, **TRAIN}, blocks, seed=0)
    trainer.train_epoch()
    trainer.model.eval()
    clone = dae(blocks)
    clone.load_state_dict(trainer.model.state_dict())
    clone.eval()
    users = torch.arange(blocks.n_users)
    torch.testing.assert_close(clone.score(users), trainer.model.score(users), rtol=0, atol=0)
    space = load_space("mult_dae")
    assert "beta_max" not in space.params and space.model == "mult_dae"
