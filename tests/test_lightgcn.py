"""LightGCN and its variants (hard negatives, text init) and BPR-MF (LightGCN with 0 layers)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recsys.errors import RecsysError
from recsys.models import MODELS
from recsys.models.lightgcn import LightGCN, drop_edges, normalized_adjacency, propagate
from recsys.models.text_init import compress_item_embeddings
from recsys.train import Trainer

FAST = {"lr": 0.05, "batch_size": 64}


def with_text(data, dim: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    return dataclasses.replace(
        data, item_embeddings=rng.standard_normal((data.n_items, dim)).astype(np.float32)
    )


def test_registry_entries():
    for name in ("lightgcn", "lightgcn_hardneg", "lightgcn_text", "bpr_mf"):
        assert MODELS[name].trainable
    assert MODELS["lightgcn"].config_cls().sampler == "uniform"
    assert MODELS["lightgcn_hardneg"].config_cls().sampler in ("dns", "popularity")
    assert MODELS["lightgcn_text"].config_cls().item_init == "text"
    assert MODELS["lightgcn"].config_cls().layers == 3


def test_adjacency_is_normalised_and_holds_only_training_edges(blocks):
    trainer = Trainer("lightgcn", {}, blocks)
    adjacency = trainer.model.adjacency.to_dense()
    n_users = blocks.n_users
    torch.testing.assert_close(adjacency, adjacency.T)
    for split in (blocks.val, blocks.test):
        assert (adjacency[split.users, n_users + split.items] == 0).all()
        assert (adjacency[n_users + split.items, split.users] == 0).all()
    deg = (adjacency > 0).sum(1).float()
    assert deg.sum() == 2 * len(blocks.train)
    u, i = torch.from_numpy(blocks.train.users), torch.from_numpy(blocks.train.items) + n_users
    torch.testing.assert_close(adjacency[u, i], (deg[u] * deg[i]).rsqrt())


def test_adjacency_ignores_duplicate_pairs_and_isolated_nodes(blocks):
    train = blocks.train
    doubled = type(train)(np.r_[train.users, train.users[:3]], np.r_[train.items, train.items[:3]])
    a = normalized_adjacency(train, blocks.n_users + 1, blocks.n_items).to_dense()
    b = normalized_adjacency(doubled, blocks.n_users + 1, blocks.n_items).to_dense()
    torch.testing.assert_close(a, b)
    assert a[blocks.n_users].abs().sum() == 0  # the extra user has no edge


def test_propagation_is_the_mean_of_layer_outputs(blocks):
    adjacency = normalized_adjacency(blocks.train, blocks.n_users, blocks.n_items)
    dense = adjacency.to_dense().double()
    x = torch.randn(dense.shape[0], 8, dtype=torch.float64)
    expected = (x + dense @ x + dense @ dense @ x + dense @ dense @ dense @ x) / 4
    out = propagate(adjacency.double(), x, 3)
    torch.testing.assert_close(out, expected)
    # The backward pass through the symmetric product matches dense autograd.
    x.requires_grad_(True)
    propagate(adjacency.double(), x, 2).square().sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    ((x2 + dense @ x2 + dense @ dense @ x2) / 3).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_propagation_equals_pygs_lgconv_forward_and_backward(blocks):
    """The reference implementation: PyG's ``LGConv`` normalises the same bipartite graph
    itself (gcn_norm without self-loops); the layer mean and its gradient agree with ours."""
    from torch_geometric.nn import LGConv

    n = blocks.n_users + blocks.n_items
    adjacency = normalized_adjacency(blocks.train, blocks.n_users, blocks.n_items)
    users = torch.from_numpy(blocks.train.users)
    items = torch.from_numpy(blocks.train.items) + blocks.n_users
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    conv = LGConv(normalize=True)
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ours = propagate(adjacency, x, 3)
    (grad_ours,) = torch.autograd.grad(ours.square().sum(), x)
    h, layers = x, [x]
    for _ in range(3):
        h = conv(h, edge_index)
        layers.append(h)
    theirs = torch.stack(layers).mean(0)
    (grad_theirs,) = torch.autograd.grad(theirs.square().sum(), x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-5, atol=1e-6)


def test_l2_term_is_on_layer0_embeddings_of_the_batch(blocks):
    trainer = Trainer("lightgcn", {"l2": 0.5}, blocks)
    model = trainer.model
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([15, 16])
    from recsys.models.base import PairBatch

    losses = model.loss(PairBatch(users, pos, neg))
    reg = (
        (
            model.user_weight[users].square().sum()
            + model.item_weight[pos].square().sum()
            + model.item_weight[neg].square().sum()
        )
        / 2
        / 2
    )
    torch.testing.assert_close(losses["l2"], reg)
    torch.testing.assert_close(losses["loss"], losses["bpr"] + 0.5 * reg)


def test_bpr_mf_is_lightgcn_without_propagation(blocks):
    trainer = Trainer("bpr_mf", {"dim": 8}, blocks)
    model = trainer.model
    assert isinstance(model, LightGCN) and model.layers == 0 and model.adjacency is None
    users = torch.arange(blocks.n_users)
    torch.testing.assert_close(model.score(users), model.user_weight @ model.item_weight.T)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        # The registered models' defaults are under contract (test_model_contract.py): here,
        # the samplers they do not default to.
        ("lightgcn", {"sampler": "popularity", "pool_size": 5}),
        ("lightgcn", {"sampler": "dns", "n_candidates": 4}),
        ("bpr_mf", {"sampler": "dns"}),
    ],
)
def test_loss_goes_down_with_every_sampler(blocks, name, config):
    trainer = Trainer(name, {**FAST, "lr": 0.01, **config}, with_text(blocks), seed=0)
    first = trainer.train_epoch()
    for _ in range(4):
        last = trainer.train_epoch()
    assert set(first) == {"loss", "bpr", "l2"}
    assert last["bpr"] < 0.9 * first["bpr"]
    assert last["loss"] < first["loss"]


def test_scores_follow_the_parameters_after_each_step(blocks):
    trainer = Trainer("lightgcn", FAST, blocks)
    model = trainer.model
    users = torch.arange(5)
    before = model.score(users)
    assert model.score(users) is not before  # a new tensor: the evaluator masks in place
    torch.testing.assert_close(model.score(users), before)
    trainer.train_epoch()
    after = model.score(users)
    with torch.no_grad():
        user_emb, item_emb = model.propagate()
    torch.testing.assert_close(after, user_emb[users] @ item_emb.T)
    assert not torch.allclose(after, before)
    items = torch.randint(blocks.n_items, (5, 3))
    torch.testing.assert_close(model.pair_scores(users, items), after.gather(1, items))


@pytest.mark.parametrize("method", ["autoencoder", "pca"])
def test_text_init_compresses_to_dim_with_init_std(method):
    torch.manual_seed(0)
    text = np.random.default_rng(0).standard_normal((50, 32)).astype(np.float32)
    z = compress_item_embeddings(text, 8, method, std=0.1, steps=50)
    assert z.shape == (50, 8) and z.dtype == torch.float32
    assert abs(float(z.std()) - 0.1) < 1e-3
    torch.testing.assert_close(z.mean(0), torch.zeros(8), atol=1e-6, rtol=0)


def test_pca_text_init_keeps_the_item_geometry():
    """Text embeddings of rank <= dim are compressed losslessly: distances keep their ratios."""
    rng = np.random.default_rng(0)
    text = (rng.standard_normal((40, 4)) @ rng.standard_normal((4, 32))).astype(np.float32)
    z = compress_item_embeddings(text, 4, "pca", std=1.0)
    centred = torch.from_numpy(text - text.mean(0))
    ratio = (
        torch.cdist(z, z)[~torch.eye(40, dtype=bool)]
        / torch.cdist(centred, centred)[~torch.eye(40, dtype=bool)]
    )
    torch.testing.assert_close(
        ratio, torch.full_like(ratio, float(ratio.mean())), rtol=1e-3, atol=0
    )


def test_pca_text_init_needs_enough_columns():
    with pytest.raises(RecsysError, match="pca"):
        compress_item_embeddings(np.ones((10, 4), np.float32), 8, "pca")


def test_text_init_sets_the_item_embeddings_and_freezes_them(blocks):
    data = with_text(blocks)
    config = {**FAST, "dim": 8, "text_init": "pca", "freeze_item_epochs": 2}
    trainer = Trainer("lightgcn_text", config, data, seed=0)
    model = trainer.model
    torch.manual_seed(0)
    expected = compress_item_embeddings(data.item_embeddings, 8, "pca", 0.1)
    torch.testing.assert_close(model.item_weight.detach(), expected)
    users_before = model.user_weight.detach().clone()
    trainer.train_epoch()
    trainer.train_epoch()
    torch.testing.assert_close(model.item_weight.detach(), expected)
    assert not torch.allclose(model.user_weight, users_before)
    trainer.train_epoch()
    assert not torch.allclose(model.item_weight.detach(), expected)


def test_text_init_without_item_embeddings_is_an_error(blocks):
    """The builder does not load Sentence-BERT itself: the caller attaches the embeddings."""
    assert MODELS["lightgcn_text"].needs_item_embeddings(MODELS["lightgcn_text"].config_cls())
    assert not MODELS["lightgcn"].needs_item_embeddings(MODELS["lightgcn"].config_cls())
    with pytest.raises(RecsysError, match="with_item_embeddings"):
        Trainer("lightgcn_text", {"dim": 8, "text_init": "pca"}, blocks)
    with pytest.raises(RecsysError, match="with_item_embeddings"):
        Trainer("lightgcn", {"item_init": "text"}, blocks)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"layer": 2}, "unknown hyperparameter"),
        ({"sampler": "hard"}, "sampler"),
        ({"item_init": "bert"}, "item_init"),
        ({"p_pop": 1.5}, "p_pop"),
        ({"dim": 8.5}, "dim"),
        ({"lr": 0.0}, "lr"),
    ],
)
def test_bad_config_raises_recsys_error(blocks, config, message):
    with pytest.raises(RecsysError, match=message):
        Trainer("lightgcn", config, blocks)


def test_search_space_values_are_cast(blocks):
    trainer = Trainer("lightgcn", {"dim": np.int64(8), "lr": 1, "layers": 2.0}, blocks)
    assert trainer.cfg.dim == 8 and isinstance(trainer.cfg.dim, int)
    assert isinstance(trainer.cfg.lr, float) and trainer.cfg.layers == 2


def reference_loss(self, batch):
    """``LightGCN.loss`` as it was before edge dropout existed (commit d8d11b7), verbatim."""
    self._cache = None
    x0 = self._layer0()
    nodes = torch.cat([batch.users, batch.pos + self.n_users, batch.neg + self.n_users])
    u, i, j = propagate(self.adjacency, x0, self.layers).index_select(0, nodes).chunk(3)
    bpr = torch.nn.functional.softplus((u * (j - i)).sum(dim=1)).mean()
    reg = x0.index_select(0, nodes).square().sum() / (2 * batch.users.shape[0])
    return {"loss": bpr + self.l2 * reg, "bpr": bpr, "l2": reg}


def run_epochs(data, config, epochs=3):
    trainer = Trainer("lightgcn", {**FAST, **config}, data, seed=0)
    losses = [trainer.train_epoch() for _ in range(epochs)]
    return losses, trainer.model.state_dict(), torch.get_rng_state()


def test_edge_dropout_zero_trains_like_the_code_before_it(blocks, monkeypatch):
    losses, state, rng = run_epochs(blocks, {"edge_dropout": 0.0})
    with monkeypatch.context() as patch:
        patch.setattr(LightGCN, "loss", reference_loss)
        ref_losses, ref_state, ref_rng = run_epochs(blocks, {})
    # The L2 term is summed in another order since (dense over the nodes): float tolerance.
    for ours, theirs in zip(losses, ref_losses, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-6)
    for key in ref_state:
        torch.testing.assert_close(state[key], ref_state[key], rtol=1e-5, atol=1e-7)
    # No extra random draw: the negatives and the generator's state are the same as before.
    assert torch.equal(rng, ref_rng)
    dropped_losses, _, dropped_rng = run_epochs(blocks, {"edge_dropout": 0.3})
    assert dropped_losses != losses and not torch.equal(dropped_rng, rng)


def dropout_model(blocks, rate, layers=1):
    torch.manual_seed(0)
    adjacency = normalized_adjacency(blocks.train, blocks.n_users, blocks.n_items).double()
    model = LightGCN(
        blocks.n_users, blocks.n_items, 4, layers, adjacency, init_std=1.0, edge_dropout=rate
    )
    return model.double()


def test_dropped_graph_keeps_entries_with_one_minus_rate_scaled_and_its_transpose(blocks):
    model = dropout_model(blocks, 0.4)
    full = model.adjacency.to_dense()
    torch.manual_seed(1)
    dropped, transpose = drop_edges(model.adjacency, model.mirror, 0.4)
    dense = dropped.to_dense()
    kept = dense != 0
    # Kept entries are the full graph's scaled by 1/(1 - rate); the others are 0.
    torch.testing.assert_close(dense[kept], full[kept] / 0.6)
    assert (full[~kept & (full != 0)] != 0).all() and not (dense[full == 0] != 0).any()
    # Each direction of an edge is dropped on its own (the reference's mask over all values).
    share = kept.sum() / (full != 0).sum()
    assert 0.5 < share < 0.7 and not torch.equal(kept, kept.T)
    torch.testing.assert_close(transpose.to_dense(), dense.T, rtol=0, atol=0)
    # The backward pass through the asymmetric draw is the dense one.
    x = torch.randn(full.shape[0], 3, dtype=torch.float64, requires_grad=True)
    propagate(dropped, x, 2, transpose).square().sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    ((x2 + dense @ x2 + dense @ dense @ x2) / 3).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_edge_dropout_redraws_each_step_averages_to_the_full_graph_and_spares_scoring(blocks):
    model = dropout_model(blocks, 0.5)
    model.train()
    with torch.no_grad():
        full_users, full_items = model.propagate()
        draws = torch.stack([torch.cat(model.propagate(dropped=True)) for _ in range(1000)])
    assert not torch.equal(draws[0], draws[1])
    # E[A_dropped] = A, so with one layer the mean of (x + A_dropped x) / 2 is the full graph's
    # (a draw's spread is up to 0.25 here, the mean's about 0.008; unscaled it would be 0.1+ off).
    assert draws.std(0).max() > 0.1
    full = torch.cat([full_users, full_items])
    torch.testing.assert_close(draws.mean(0), full, rtol=0, atol=0.04)
    # Scoring (eval) and the DNS sampler's scores use the full graph, in either mode.
    users = torch.arange(blocks.n_users)
    expected = full_users @ full_items.T
    torch.testing.assert_close(model.score(users), expected, rtol=0, atol=0)
    model.eval()
    torch.testing.assert_close(model.score(users), expected, rtol=0, atol=0)
    without = dropout_model(blocks, 0.0)
    without.eval()
    torch.testing.assert_close(without.score(users), expected, rtol=0, atol=0)


def test_edge_dropout_is_validated_and_trains(blocks):
    with pytest.raises(RecsysError, match="edge_dropout"):
        Trainer("lightgcn", {"edge_dropout": 1.0}, blocks)
    trainer = Trainer("lightgcn", {**FAST, "lr": 0.01, "edge_dropout": 0.2}, blocks, seed=0)
    first = trainer.train_epoch()
    for _ in range(4):
        last = trainer.train_epoch()
    assert last["bpr"] < 0.9 * first["bpr"]
    assert MODELS["lightgcn"].config_cls().edge_dropout == 0.0


def layer_by_layer(adjacency, x, layers, transpose=None):
    """``propagate`` as it was before it became one autograd node (commit 8c1324f): K sparse
    products, each differentiated by autograd (``torch.sparse.mm``'s own backward)."""
    total = x
    for _ in range(layers):
        x = torch.sparse.mm(adjacency, x)
        total = total + x
    return total / (layers + 1) if layers else total


@pytest.mark.parametrize("rate", [0.0, 0.4])
def test_one_node_propagation_matches_layer_by_layer_autograd(blocks, rate):
    model = dropout_model(blocks, rate, layers=3)
    torch.manual_seed(2)
    adjacency, transpose = model.adjacency, None
    if rate:
        adjacency, transpose = drop_edges(model.adjacency, model.mirror, rate)
    x = torch.randn(adjacency.shape[0], 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(adjacency.shape[0], 5, dtype=torch.float64)
    ours = propagate(adjacency, x, 3, transpose)
    (grad,) = torch.autograd.grad((ours * weights).sum(), x)
    theirs = layer_by_layer(adjacency, x, 3)
    (their_grad,) = torch.autograd.grad((theirs * weights).sum(), x)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, their_grad, rtol=1e-12, atol=1e-12)
    # The gradient is P^T w, not P w: for the dropped (asymmetric) graph they differ.
    assert rate == 0 or not torch.allclose(grad, layer_by_layer(adjacency, weights, 3))


def test_training_matches_layer_by_layer_propagation_to_float_tolerance(blocks, monkeypatch):
    import recsys.models.lightgcn as lightgcn

    losses, state, rng = run_epochs(blocks, {"lr": 0.01})
    with monkeypatch.context() as patch:
        patch.setattr(lightgcn, "propagate", layer_by_layer)
        ref_losses, ref_state, ref_rng = run_epochs(blocks, {"lr": 0.01})
    assert torch.equal(rng, ref_rng)  # the same batches and negatives
    for ours, theirs in zip(losses, ref_losses, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5)
    for key in ref_state:
        torch.testing.assert_close(state[key], ref_state[key], rtol=1e-4, atol=1e-6)


def test_lightgcn_trains_with_fused_adam_like_the_default_adam(blocks, monkeypatch):
    assert Trainer("lightgcn", FAST, blocks).optimizer.defaults["fused"]
    losses, state, _ = run_epochs(blocks, {"lr": 0.01})
    with monkeypatch.context() as patch:
        patch.setattr(LightGCN, "fused_optimizer", False)
        assert not Trainer("lightgcn", FAST, blocks).optimizer.defaults["fused"]
        ref_losses, ref_state, _ = run_epochs(blocks, {"lr": 0.01})
    for ours, theirs in zip(losses, ref_losses, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5)
    for key in ref_state:
        torch.testing.assert_close(state[key], ref_state[key], rtol=1e-4, atol=1e-6)


def test_l2_term_counts_a_node_once_per_appearance_in_the_batch(blocks):
    from recsys.models.base import PairBatch

    model = Trainer("lightgcn", {"l2": 0.5}, blocks).model
    users, pos, neg = torch.tensor([0, 0, 1]), torch.tensor([2, 2, 3]), torch.tensor([3, 15, 15])
    reg = model.loss(PairBatch(users, pos, neg))["l2"]
    u, i = model.user_weight.detach(), model.item_weight.detach()
    expected = (2 * u[0].square().sum() + u[1].square().sum() + 2 * i[2].square().sum()
                + 2 * i[3].square().sum() + 2 * i[15].square().sum()) / 2 / 3  # fmt: skip
    torch.testing.assert_close(reg, expected)
