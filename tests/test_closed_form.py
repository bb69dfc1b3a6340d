"""EASE and ItemKNN: hand-computed cases, the checkerboard, and the training-row store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.data.dataset import Pairs
from recsys.errors import RecsysError
from recsys.models import get_spec
from recsys.models.ease import EASE, ease_weights
from recsys.models.history import History
from recsys.models.itemknn import ItemKNN, knn_neighbours

# Four users, four items: pops (2, 3, 3, 1); co-occurrences (0,1)=2 (0,2)=1 (1,2)=2 (2,3)=1.
TINY = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=np.float64)


def tiny_csr() -> torch.Tensor:
    users, items = np.nonzero(TINY)
    return Pairs(users, items).csr(*TINY.shape)


def random_csr(n_users: int = 30, n_items: int = 12, density: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float64)
    users, items = np.nonzero(dense)
    return dense, Pairs(users, items).csr(n_users, n_items)


def test_history_rows_and_cooccurrence_match_dense():
    dense, csr = random_csr()
    history = History(csr)
    users = torch.tensor([3, 0, 29, 3])
    np.testing.assert_array_equal(history.rows(users).numpy(), dense[[3, 0, 29, 3]])
    np.testing.assert_array_equal(history.cooccurrence().numpy(), dense.T @ dense)
    blocks = list(history.cooccurrence_blocks(block=5))
    assert [len(items) for items, _ in blocks] == [5, 5, 2]
    assert history.state_dict() == {}


def test_ease_matches_numpy_closed_form():
    dense, csr = random_csr()
    lam = 3.0
    p = np.linalg.inv(dense.T @ dense + lam * np.eye(dense.shape[1]))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    model = EASE.fit(csr, lam)
    np.testing.assert_allclose(model.weights.numpy(), expected, atol=1e-6)
    users = torch.arange(dense.shape[0])
    np.testing.assert_allclose(model.score(users).numpy(), dense @ expected, atol=1e-5)


def test_ease_inverse_is_accurate_when_ill_conditioned():
    dense, csr = random_csr(n_users=400, n_items=60, density=0.5, seed=1)
    lam = 1e-3
    p = np.linalg.inv(dense.T @ dense + lam * np.eye(60))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    weights = ease_weights(torch.from_numpy(dense.T @ dense).float(), lam)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_ease_rejects_non_positive_l2():
    with pytest.raises(RecsysError, match="l2 must be > 0"):
        EASE.fit(tiny_csr(), 0.0)


def test_itemknn_similarity_by_hand():
    neighbours, weights = knn_neighbours(History(tiny_csr()), k=4, shrink=1.0)
    sim = np.zeros((4, 4))
    sim[neighbours.numpy(), np.arange(4)[:, None]] = weights.numpy()
    r3, r6 = np.sqrt(3), np.sqrt(6)
    expected = np.array(
        [
            [0, 2 / (r6 + 1), 1 / (r6 + 1), 0],
            [2 / (r6 + 1), 0, 2 / (3 + 1), 0],
            [1 / (r6 + 1), 2 / (3 + 1), 0, 1 / (r3 + 1)],
            [0, 0, 1 / (r3 + 1), 0],
        ]
    )
    np.testing.assert_allclose(sim, expected, rtol=1e-6)
    assert (torch.diff(neighbours, dim=1) > 0).all()


def test_itemknn_top1_scores_by_hand():
    model = ItemKNN.fit(tiny_csr(), k=1, shrink=0.0)
    # Nearest neighbour of each item (plain cosine): 0 -> 1, 1 -> 0, 2 -> 1, 3 -> 2.
    c01, c12 = 2 / np.sqrt(6), 2 / 3
    expected_u0 = [c01, c01, c12, 0.0]
    np.testing.assert_allclose(model.score(torch.tensor([0]))[0].numpy(), expected_u0, rtol=1e-6)


def test_itemknn_blocks_give_the_same_neighbours():
    _, csr = random_csr(seed=3)
    whole = knn_neighbours(History(csr), k=5, shrink=2.0)
    chunked = knn_neighbours(History(csr), k=5, shrink=2.0, block=4)
    torch.testing.assert_close(whole[1], chunked[1])


def test_itemknn_item_without_interactions_scores_zero():
    csr = Pairs(np.array([0, 1]), np.array([0, 1])).csr(2, 3)
    scores = ItemKNN.fit(csr, k=2, shrink=0.0).score(torch.tensor([0, 1]))
    assert torch.isfinite(scores).all()
    assert (scores[:, 2] == 0).all()


@pytest.mark.parametrize("name", ["ease", "itemknn"])
def test_closed_form_state_dict_round_trip(blocks, name):
    spec = get_spec(name)
    model = spec.build(spec.config_cls(), blocks, torch.device("cpu"))
    users = torch.arange(blocks.n_users)
    state = model.state_dict()
    assert "history.crow" not in state
    clone = type(model)(blocks.train_csr(), *(torch.zeros_like(t) for t in state.values()))
    clone.load_state_dict(state)
    torch.testing.assert_close(clone.score(users), model.score(users), rtol=0, atol=0)
