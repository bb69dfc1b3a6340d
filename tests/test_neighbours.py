"""UserKNN: hand-computed similarities, a dense NumPy reference, normalisation and edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_closed_form import random_csr, tiny_csr

from recsys.data.dataset import Pairs
from recsys.errors import RecsysError
from recsys.models import get_spec
from recsys.models.history import History
from recsys.models.userknn import UserKNN, UserKNNConfig, user_neighbours


def dense_similarity(history: History, k: int, shrink: float, similarity: str) -> np.ndarray:
    """The kept user-user similarities as a dense (n_users, n_users) array."""
    neighbours, weights = user_neighbours(history, k, shrink, similarity)
    out = np.zeros((history.n_users, history.n_users))
    out[np.arange(history.n_users)[:, None], neighbours.numpy()] = weights.numpy()
    return out


def test_cosine_similarity_by_hand():
    # TINY's users: {0, 1}, {0, 1, 2}, {1, 2}, {2, 3}; overlaps (0,1)=2 (0,2)=1 (1,2)=2
    # (1,3)=1 (2,3)=1, (0,3)=0.
    sim = dense_similarity(History(tiny_csr()), k=4, shrink=1.0, similarity="cosine")
    r6 = np.sqrt(6)
    expected = np.array(
        [
            [0, 2 / (r6 + 1), 1 / 3, 0],
            [2 / (r6 + 1), 0, 2 / (r6 + 1), 1 / (r6 + 1)],
            [1 / 3, 2 / (r6 + 1), 0, 1 / 3],
            [0, 1 / (r6 + 1), 1 / 3, 0],
        ]
    )
    np.testing.assert_allclose(sim, expected, rtol=1e-6)


def test_pearson_similarity_by_hand():
    # Rows centred on their mean over the 4 items: dot = overlap - a_u a_v / 4 and
    # |x_u - mean|^2 = a_u - a_u^2 / 4 (1 for two items, 3/4 for three). Users 0 ({0, 1}) and
    # 3 ({2, 3}) are complements: correlation -1.
    sim = dense_similarity(History(tiny_csr()), k=4, shrink=0.0, similarity="pearson")
    h = np.sqrt(0.75)
    expected = np.array(
        [
            [0, 0.5 / h, 0, -1],
            [0.5 / h, 0, 0.5 / h, -0.5 / h],
            [0, 0.5 / h, 0, 0],
            [-1, -0.5 / h, 0, 0],
        ]
    )
    np.testing.assert_allclose(sim, expected, rtol=1e-6, atol=1e-7)
    # normalize: user 3's votes (-1 from user 0, -c from user 1) over 1 + c, |sim| summed.
    model = UserKNN.fit(tiny_csr(), k=4, shrink=0.0, similarity="pearson", normalize=True)
    c = 0.5 / h
    scores = model.score(torch.tensor([3]))[0].numpy()
    np.testing.assert_allclose(scores, np.array([-(1 + c), -(1 + c), -c, 0]) / (1 + c), rtol=1e-6)


def test_pearson_without_shrink_is_the_correlation_of_the_rows():
    dense, csr = random_csr(seed=1)
    sim = dense_similarity(History(csr), k=30, shrink=0.0, similarity="pearson")
    expected = np.corrcoef(dense)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(sim, expected, atol=1e-6)


def test_top1_scores_by_hand():
    # k 1, cosine, no shrink: user 0's nearest is user 1 (2 / sqrt 6), whose items are 0, 1, 2.
    model = UserKNN.fit(tiny_csr(), k=1, shrink=0.0)
    expected = 2 / np.sqrt(6) * np.array([1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(model.score(torch.tensor([0]))[0].numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("similarity", ["cosine", "pearson"])
def test_scores_match_a_dense_reference(similarity):
    dense, csr = random_csr(seed=2)
    if similarity == "pearson":
        centred = dense - dense.mean(1, keepdims=True)
        dots, norms = centred @ centred.T, np.sqrt((centred**2).sum(1))
    else:
        dots, norms = dense @ dense.T, np.sqrt(dense.sum(1))
    sim = dots / (np.outer(norms, norms) + 3.0)
    np.fill_diagonal(sim, 0.0)
    # Every neighbour (k = n_users): the scores are S X.
    model = UserKNN.fit(csr, k=30, shrink=3.0, similarity=similarity)
    np.testing.assert_allclose(model.score(torch.arange(30)).numpy(), sim @ dense, atol=1e-5)
    # k = 7: each user keeps 7 of its similarities, and they are its 7 largest (binary data has
    # ties at the cut, so the test checks the values, not which of the tied users is kept).
    model = UserKNN.fit(csr, k=7, shrink=3.0, similarity=similarity)
    neighbours, weights = model.neighbours.numpy(), model.weights.numpy().astype(np.float64)
    np.testing.assert_allclose(weights, np.take_along_axis(sim, neighbours, 1), atol=1e-6)
    np.testing.assert_allclose(np.sort(weights, 1), np.sort(-np.sort(-sim, 1)[:, :7], 1), atol=1e-6)
    kept = np.zeros_like(sim)
    np.put_along_axis(kept, neighbours, weights, 1)
    np.testing.assert_allclose(model.score(torch.arange(30)).numpy(), kept @ dense, atol=1e-5)
    normalised = UserKNN.fit(csr, k=7, shrink=3.0, similarity=similarity, normalize=True)
    total = np.abs(kept).sum(1, keepdims=True)  # 0 for a user without interactions
    expected = np.where(total > 0, kept @ dense / np.where(total > 0, total, 1.0), 0.0)
    np.testing.assert_allclose(normalised.score(torch.arange(30)).numpy(), expected, atol=1e-6)


def test_blocks_give_the_same_neighbours():
    _, csr = random_csr(seed=3)
    whole = user_neighbours(History(csr), k=5, shrink=2.0, similarity="pearson")
    chunked = user_neighbours(History(csr), k=5, shrink=2.0, similarity="pearson", block=7)
    torch.testing.assert_close(chunked, whole)


def test_users_and_items_without_interactions_score_finite():
    # User 2 has nothing, item 3 nobody, user 1 every item (zero Pearson variance); k > n_users.
    csr = Pairs(np.array([0, 0, 1, 1, 1, 3]), np.array([0, 1, 0, 1, 2, 2])).csr(4, 4)
    dense_all = Pairs(np.array([0, 1, 1, 1, 1]), np.array([0, 0, 1, 2, 3])).csr(2, 4)
    for train, similarity in [(csr, "cosine"), (csr, "pearson"), (dense_all, "pearson")]:
        model = UserKNN.fit(train, k=10, shrink=0.0, similarity=similarity, normalize=True)
        assert model.neighbours.shape == (train.shape[0], train.shape[0])
        scores = model.score(torch.arange(train.shape[0]))
        assert torch.isfinite(scores).all()
    assert (UserKNN.fit(csr, k=10, shrink=0.0).score(torch.arange(4))[:, 3] == 0).all()
    assert (UserKNN.fit(csr, k=10, shrink=0.0).score(torch.tensor([2])) == 0).all()


def test_config_rejects_bad_values():
    with pytest.raises(RecsysError, match="similarity must be one of cosine, pearson"):
        UserKNNConfig(similarity="jaccard")
    with pytest.raises(RecsysError, match="k must be an integer >= 1"):
        UserKNNConfig(k=0)
    with pytest.raises(RecsysError, match="shrink must be a number >= 0"):
        UserKNNConfig(shrink=-1.0)
    with pytest.raises(RecsysError, match="normalize must be true or false"):
        UserKNNConfig(normalize=1)


def test_state_dict_round_trip_through_build(blocks):
    spec = get_spec("userknn")
    model = spec.build(spec.config_cls(), blocks, torch.device("cpu"))
    state = model.state_dict()
    assert set(state) == {"neighbours", "weights"}
    restored = spec.build(spec.config_cls(similarity="pearson"), blocks, torch.device("cpu"))
    restored.load_state_dict(state)
    users = torch.arange(blocks.n_users)
    torch.testing.assert_close(restored.score(users), model.score(users), rtol=0, atol=0)
