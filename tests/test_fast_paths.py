"""The faster training paths give the old results: per-epoch losses and validation NDCG@10
pinned from the code before them (Adam's per-tensor loop, ``nn.Dropout`` on the autoencoders'
input, BPR-MF through LightGCN's loss), and each fast path against the plain one it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recsys.data.dataset import Pairs, SplitData
from recsys.models.base import PairBatch
from recsys.models.bpr_mf import BPRMF
from recsys.models.lightgcn import LightGCN
from recsys.models.vae import VAEEncoder
from recsys.train import Trainer


def tiny_split(n_users: int = 30, n_items: int = 25, seed: int = 3) -> SplitData:
    """Rows of 3 to 11 random training items per user, one validation item each, and random
    unit item vectors (HybridVAE's text)."""
    rng = np.random.default_rng(seed)
    train_u, train_i, val_u, val_i = [], [], [], []
    for u in range(n_users):
        items = rng.permutation(n_items)[: rng.integers(4, 13)]
        val_u.append(u)
        val_i.append(items[0])
        train_u.extend([u] * (len(items) - 1))
        train_i.extend(items[1:])
    vectors = rng.normal(size=(n_items, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return SplitData(
        name="tiny",
        fingerprint="tiny",
        user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        item_text=[f"item {i}" for i in range(n_items)],
        train=Pairs(np.array(train_u), np.array(train_i)),
        val=Pairs(np.array(val_u), np.array(val_i)),
        test=None,
        summary={},
        item_embeddings=vectors,
    )


CONFIGS = {
    "mult_vae": {"hidden": 16, "latent": 4, "anneal_steps": 5, "lr": 1e-2, "batch_size": 8},
    "mult_dae": {"hidden": 16, "latent": 4, "lr": 1e-2, "batch_size": 8, "dropout": 0.3},
    "hybrid_vae": {"hidden": 16, "latent": 4, "anneal_steps": 5, "lr": 1e-2, "batch_size": 8},
    "bpr_mf": {"dim": 8, "lr": 1e-2, "batch_size": 64, "l2": 1e-2},
    "lightgcn": {"dim": 8, "layers": 2, "lr": 1e-2, "batch_size": 64, "l2": 1e-2},
}
# Printed by the code of commit 8c1324f: Trainer(name, CONFIGS[name], tiny_split(), seed=7),
# four epochs, each epoch's mean loss and validation NDCG@10.
PINNED = {
    "mult_vae": (
        [22.485300699869793, 22.242903645833334, 22.079803466796875, 22.02072550455729],
        [0.1924536089102427, 0.19036024709542593, 0.1971143384774526, 0.21454346676667532],
    ),
    "mult_dae": (
        [21.937906901041668, 21.52378946940104, 21.47542521158854, 21.20283203125],
        [0.23089540302753447, 0.2795652747154236, 0.24441532492637635, 0.23796728352705637],
    ),
    "hybrid_vae": (
        [22.136165364583334, 22.322737630208334, 22.125301106770834, 21.8462890625],
        [0.3128173073132833, 0.2310565133889516, 0.2333097815513611, 0.25506037871042886],
    ),
    "bpr_mf": (
        [0.6931520349839154, 0.6916777666877297, 0.6897080365349265, 0.686373467538871],
        [0.3468880166610082, 0.32184149622917174, 0.26387950281302136, 0.2537355383237203],
    ),
    "lightgcn": (
        [0.6929361679974724, 0.6917699926039752, 0.6902984918332568, 0.6879151288200828],
        [0.33151896595954894, 0.30501994490623474, 0.28501811424891155, 0.26179467936356865],
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_per_epoch_losses_and_metrics_are_the_old_paths(name):
    trainer = Trainer(name, CONFIGS[name], tiny_split(), device="cpu", seed=7)
    runs = list(trainer.run(4, 1, ks=(10,)))
    losses, ndcgs = PINNED[name]
    assert [r.losses["loss"] for r in runs] == pytest.approx(losses, rel=1e-5)
    assert [r.metrics["ndcg@10"] for r in runs] == pytest.approx(ndcgs, abs=1e-6)


@pytest.mark.parametrize("p", [0.5, 0.3, 0.0])
def test_input_dropout_draws_nn_dropouts_mask(p):
    encoder = VAEEncoder(40, 8, 4, p, torch.nn.Tanh()).train()
    x = F.normalize((torch.rand(7, 40) < 0.3).float(), dim=1)
    torch.manual_seed(1)
    expected, after = F.dropout(x, p, training=True), torch.rand(3)
    torch.manual_seed(1)
    got = encoder.input_dropout(x)
    assert torch.allclose(got, expected, rtol=1e-6, atol=0)
    assert torch.equal(torch.rand(3), after)  # the generator moved on as far
    assert torch.equal(encoder.eval().input_dropout(x), x)


@pytest.mark.parametrize("l2", [1e-2, 0.0])
def test_bpr_mf_loss_and_gradients_are_zero_layer_lightgcns(l2):
    torch.manual_seed(0)
    reference = LightGCN(12, 9, 5, 0, None, l2=l2)
    fast = BPRMF(12, 9, 5, 0, None, l2=l2)
    fast.load_state_dict(reference.state_dict())
    gen = torch.Generator().manual_seed(2)
    batch = PairBatch(*(torch.randint(n, (16,), generator=gen) for n in (12, 9, 9)))
    want, got = reference.loss(batch), fast.loss(batch)
    for key in ("loss", "bpr", "l2"):
        assert torch.allclose(got[key], want[key], rtol=1e-6), key
    want["loss"].backward()
    got["loss"].backward()
    for a, b in zip(reference.parameters(), fast.parameters(), strict=True):
        assert torch.allclose(b.grad, a.grad, rtol=1e-5, atol=1e-8)
