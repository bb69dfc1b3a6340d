"""Two-tower: the log-Q-corrected in-batch softmax against a hand-written reference, the
towers' vectors against the scores, and an item scored from its text alone."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import block_split

from recsys.data.dataset import Pairs, SplitData
from recsys.errors import RecsysError
from recsys.models import get_spec
from recsys.models.base import PairBatch, VectorScorer
from recsys.models.two_tower import TwoTower, TwoTowerConfig, in_batch_softmax_loss
from recsys.train import Trainer
from recsys.tuning.space import load_space, to_tune

SMALL = {"dim": 8, "hidden": 16}


def reference_loss(
    u: np.ndarray,
    v: np.ndarray,
    items: list[int],
    log_q: list[float],
    seen: set[tuple[int, int]] = frozenset(),
) -> float:
    """Yi et al.'s Eq. 3-4 row by row: logit u_b . v_j - log q_j over the batch's columns,
    leaving out the other columns of row b's own item and the (row, column) pairs in ``seen``."""
    losses = []
    for b in range(len(items)):
        kept = [
            j for j in range(len(items)) if j == b or (items[j] != items[b] and (b, j) not in seen)
        ]
        logits = {j: float(u[b] @ v[j]) - log_q[j] for j in kept}
        top = max(logits.values())
        log_norm = top + math.log(sum(math.exp(x - top) for x in logits.values()))
        losses.append(log_norm - logits[b])
    return sum(losses) / len(losses)


def test_in_batch_softmax_equals_the_reference_with_a_duplicate_item():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(4, 3))
    v = rng.normal(size=(4, 3))
    items = [7, 2, 7, 5]  # rows 0 and 2 share their positive
    log_q = [math.log(0.2), math.log(0.1), math.log(0.2), math.log(0.05)]
    got = in_batch_softmax_loss(
        torch.tensor(u),
        torch.tensor(v),
        torch.tensor(items),
        torch.tensor(log_q, dtype=torch.float64),
    )
    assert got.item() == pytest.approx(reference_loss(u, v, items, log_q), rel=1e-12)
    # Without the correction it is the plain softmax; both differ from keeping the duplicate.
    plain = in_batch_softmax_loss(torch.tensor(u), torch.tensor(v), torch.tensor(items))
    assert plain.item() == pytest.approx(reference_loss(u, v, items, [0.0] * 4), rel=1e-12)
    kept_duplicate = reference_loss(u, v, [0, 1, 2, 3], log_q)
    assert abs(got.item() - kept_duplicate) > 1e-3 and abs(got.item() - plain.item()) > 1e-3
    # Columns marked as no negatives (and never the diagonal) are left out too.
    not_negative = torch.zeros(4, 4, dtype=torch.bool)
    not_negative[1, 3] = not_negative[3, 0] = not_negative[2, 2] = True
    masked = in_batch_softmax_loss(
        torch.tensor(u),
        torch.tensor(v),
        torch.tensor(items),
        torch.tensor(log_q, dtype=torch.float64),
        not_negative,
    )
    expected = reference_loss(u, v, items, log_q, seen={(1, 3), (3, 0)})
    assert masked.item() == pytest.approx(expected, rel=1e-12)
    assert abs(masked.item() - got.item()) > 1e-3


def tiny_data() -> SplitData:
    """3 users, 5 items; item 4 never appears in training."""
    train = Pairs(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 1, 2, 1, 3, 1]))
    return SplitData(
        name="tiny",
        fingerprint="tiny",
        user_ids=np.array(["a", "b", "c"], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(5)], dtype=object),
        item_text=[""] * 5,
        train=train,
        val=Pairs(np.array([0, 1]), np.array([3, 0])),
        test=None,
        item_embeddings=np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32),
    )


def build(data: SplitData, **overrides) -> TwoTower:
    torch.manual_seed(0)
    cfg = TwoTowerConfig(**{**SMALL, **overrides})
    return get_spec("two_tower").build(cfg, data, torch.device("cpu")).eval()


@pytest.mark.parametrize("pooling", ["mean", "sqrt"])
def test_pooled_history_leaves_the_target_out(pooling):
    data = tiny_data()
    model = build(data, pooling=pooling)
    emb = model.history_emb.detach()
    history = {0: [0, 1, 2], 1: [1, 3], 2: [1]}

    def pooled(items):
        if not items:
            return torch.zeros(emb.shape[1])
        norm = len(items) if pooling == "mean" else math.sqrt(len(items))
        return emb[items].sum(0) / norm

    users, targets = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 3, 1, 0])
    full = torch.stack([pooled(history[u]) for u in users.tolist()])
    left_out = torch.stack(
        [
            pooled([i for i in history[u] if i != t])
            for u, t in zip(users.tolist(), targets.tolist(), strict=True)
        ]
    )
    torch.testing.assert_close(model.pooled_history(users), full)
    torch.testing.assert_close(model.pooled_history(users, leave_out=targets), left_out)


def test_history_dropout_pools_random_subsets_without_the_target():
    data = tiny_data()
    model = build(data)
    emb = model.history_emb.detach()
    users, targets = torch.zeros(400, dtype=torch.int64), torch.ones(400, dtype=torch.int64)
    torch.manual_seed(0)
    pooled = model.pooled_history(users, leave_out=targets, drop=0.5)
    # User 0 has items 0, 1, 2 and the target 1: the pool is the mean of a subset of {0, 2}.
    subsets = torch.stack([torch.zeros(8), emb[0], emb[2], (emb[0] + emb[2]) / 2])
    nearest = torch.cdist(pooled, subsets).min(dim=1)
    assert nearest.values.max() < 1e-5
    counts = torch.bincount(nearest.indices, minlength=4)
    assert (counts > 50).all()  # each subset about a quarter of the time


def test_model_loss_is_the_reference_over_its_towers():
    data = tiny_data()
    model = build(data, temperature=0.5, item_text=True)
    # Item 1 three times; user 0's training items are 0, 1 and 2.
    users, items = torch.tensor([0, 1, 0, 2, 1]), torch.tensor([2, 1, 1, 1, 3])
    batch = PairBatch(users, items, users.new_empty(5, 0))
    with torch.no_grad():
        u = model.user_tower_out(users, leave_out=items).double().numpy() / 0.5
        v = model.item_tower_out(items).double().numpy()
    # Training popularity shares: item 1 is 3 of the 6 pairs, items 2 and 3 one each.
    log_q = [math.log({1: 3 / 6, 2: 1 / 6, 3: 1 / 6}[i]) for i in items.tolist()]
    # (row, column) where the column's item is a training item of the row's user (histories
    # 0: {0, 1, 2}, 1: {1, 3}, 2: {1}); those with the row's own item are accidental hits too.
    seen = {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (1, 4), (2, 0), (2, 1), (2, 3), (3, 1)}
    seen |= {(3, 2), (4, 1), (4, 2), (4, 3)}
    expected = reference_loss(u, v, items.tolist(), log_q, seen)
    assert model.loss(batch)["loss"].item() == pytest.approx(expected, rel=1e-5)
    model.mask_train_items = False
    unmasked = reference_loss(u, v, items.tolist(), log_q)
    assert model.loss(batch)["loss"].item() == pytest.approx(unmasked, rel=1e-5)
    model.logq = False
    plain = reference_loss(u, v, items.tolist(), [0.0] * 5)
    assert model.loss(batch)["loss"].item() == pytest.approx(plain, rel=1e-5)
    assert len({round(x, 4) for x in (expected, unmasked, plain)}) == 3


@pytest.mark.parametrize("overrides", [{"user_id": True}, {"item_text": True, "n_layers": 0}])
def test_scores_are_user_vectors_times_item_vectors(overrides):
    data = tiny_data()
    model = build(data, temperature=0.2, **overrides)
    assert isinstance(model, VectorScorer)
    users = torch.tensor([2, 0, 1])
    user_vectors, item_vectors = model.user_vectors(users), model.item_vectors()
    assert user_vectors.shape == (3, 8) and item_vectors.shape == (5, 8)
    torch.testing.assert_close(model.score(users), user_vectors @ item_vectors.T)
    # Cosine similarities over the temperature.
    torch.testing.assert_close(item_vectors.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(user_vectors.norm(dim=1), torch.full((3,), 5.0))
    items = torch.tensor([[4, 0], [1, 1], [3, 2]])
    torch.testing.assert_close(model.pair_scores(users, items), model.score(users).gather(1, items))


def test_an_item_without_interactions_has_no_id_part():
    data = tiny_data()
    model = build(data, item_text=True)
    with torch.no_grad():
        model.item_emb[4] = 100.0  # never trained: must not reach the tower
    before = model.item_vectors()[4].clone()
    with torch.no_grad():
        model.item_emb[4] = -100.0
    torch.testing.assert_close(model.item_vectors()[4], before)


def cold_start_data() -> SplitData:
    """The checkerboard plus item 20, in no split, whose text is that of item 0 (group 0); the
    items' texts tell their group (a group direction plus noise)."""
    data = block_split()
    rng = np.random.default_rng(0)
    groups = np.repeat(np.eye(2, 16), 10, axis=0)
    text = (groups + 0.3 * rng.normal(size=(20, 16))).astype(np.float32)
    text = np.concatenate([text, text[:1]])
    return dataclasses.replace(
        data,
        item_ids=np.append(data.item_ids, "cold"),
        item_text=[*data.item_text, data.item_text[0]],
        item_embeddings=text,
    )


@pytest.mark.parametrize("item_id", [True, False])
def test_an_item_seen_only_through_its_text_ranks_with_its_group(item_id):
    data = cold_start_data()
    config = {**SMALL, "lr": 0.01, "batch_size": 32, "item_text": True, "item_id": item_id}
    trainer = Trainer("two_tower", config, data, device="cpu", seed=0)
    for _ in range(5):
        trainer.train_epoch()
    model = trainer.model.eval()
    scores = model.score(torch.arange(data.n_users))
    cold, group1 = scores[:, 20], scores[:, 10:20]
    # Users of group 0 (0-19) rank it above every item of group 1; users of group 1 below them.
    assert (cold[:20] > group1[:20].max(dim=1).values).all()
    assert (cold[20:] < group1[20:].min(dim=1).values).all()
    if not item_id:  # a text-only item tower: the same text, the same vector
        torch.testing.assert_close(model.item_vectors()[20], model.item_vectors()[0])


def test_the_trainer_gives_empty_negatives_and_builds_no_sampler(blocks):
    trainer = Trainer("two_tower", SMALL, blocks, device="cpu")
    assert trainer.sampler is None and trainer.model.negatives_per_pair == 0
    batch = next(trainer._pair_batches())
    assert batch.neg.shape == (batch.users.numel(), 0)


def test_item_text_is_read_only_when_configured(blocks):
    spec = get_spec("two_tower")
    assert spec.needs_item_embeddings(TwoTowerConfig(item_text=True))
    assert not spec.needs_item_embeddings(TwoTowerConfig())
    with pytest.raises(RecsysError, match="item_text=true needs item embeddings"):
        Trainer("two_tower", {"item_text": True}, blocks, device="cpu")
    with pytest.raises(RecsysError, match="item tower needs an input"):
        TwoTowerConfig(item_id=False)


def test_the_search_space_starts_with_the_defaults():
    space = load_space("two_tower")
    defaults = TwoTowerConfig()
    assert space.first_trial == {name: getattr(defaults, name) for name in space.searched()}
    assert space.fixed_values()["user_id"] is False
    to_tune(space)
