"""GF-CF and RP3beta: dense NumPy references of the formulas, hand-computed weights, edges."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from test_closed_form import TINY, random_csr, tiny_csr

from recsys.data.dataset import Pairs
from recsys.errors import RecsysError
from recsys.models import get_spec
from recsys.models.gfcf import GFCF, GFCFConfig, normalized_matrix, top_right_singular_vectors
from recsys.models.history import History
from recsys.models.rp3beta import RP3beta, RP3betaConfig, column_top_k, rp3beta_neighbours


def csr_of(dense: np.ndarray) -> torch.Tensor:
    users, items = np.nonzero(dense)
    return Pairs(users, items).csr(*dense.shape)


def inverse_power(counts: np.ndarray, exponent: float) -> np.ndarray:
    safe = np.where(counts > 0, counts, 1.0)
    return np.where(counts > 0, safe**-exponent, 0.0)


# --- GF-CF -----------------------------------------------------------------------------------


def gfcf_reference(dense: np.ndarray, alpha: float, k: int) -> np.ndarray:
    """GF-CF's scores by the formula, densely: R~ = D_u^-1/2 R D_i^-1/2,
    s = R R~^T R~ + alpha R D_i^-1/2 V_k V_k^T D_i^1/2 (V_k: top-k right singular vectors)."""
    item_deg, user_deg = dense.sum(0), dense.sum(1)
    item_scale = inverse_power(item_deg, 0.5)
    norm = inverse_power(user_deg, 0.5)[:, None] * dense * item_scale[None, :]
    _, values, vt = np.linalg.svd(norm)
    rank = int((values > 1e-6 * values[0]).sum())
    v = vt[: min(k, rank)].T
    return dense @ norm.T @ norm + alpha * (dense * item_scale) @ v @ v.T * np.sqrt(item_deg)


def test_gfcf_matches_the_dense_formula():
    dense, csr = random_csr()
    _, values, _ = np.linalg.svd(normalized_matrix(History(csr)).toarray())
    assert values[4] - values[5] > 1e-3  # the top-5 subspace is well defined
    model = GFCF.fit(csr, alpha=0.7, num_factors=5)
    assert model.factors.shape == (12, 5)
    scores = model.score(torch.arange(30)).double().numpy()
    np.testing.assert_allclose(scores, gfcf_reference(dense, 0.7, 5), atol=1e-5)


def test_gfcf_linear_filter_by_hand():
    # alpha 0: s_u = r_u R~^T R~. User 3 (items 2, 3) on TINY: user degrees (2, 3, 2, 2), item
    # degrees (2, 3, 3, 1); P[i, j] = sum_u R_ui R_uj / (d_u sqrt(d_i d_j)).
    model = GFCF.fit(tiny_csr(), alpha=0.0, num_factors=2)
    assert model.factors.shape == (4, 0)
    p2 = np.array(
        [1 / 3 / np.sqrt(6), (1 / 3 + 1 / 2) / 3, (1 / 3 + 1 / 2 + 1 / 2) / 3, 1 / 2 / np.sqrt(3)]
    )
    p3 = np.array([0.0, 0.0, 1 / 2 / np.sqrt(3), 1 / 2])
    np.testing.assert_allclose(model.score(torch.tensor([3]))[0].numpy(), p2 + p3, rtol=1e-6)


def test_gfcf_item_without_interactions_scores_zero_not_nan():
    dense, _ = random_csr(seed=2)
    dense[:, 4] = 0.0
    model = GFCF.fit(csr_of(dense), alpha=0.3, num_factors=6)
    scores = model.score(torch.arange(30))
    assert torch.isfinite(scores).all()
    assert (scores[:, 4] == 0).all()
    np.testing.assert_allclose(scores.double().numpy(), gfcf_reference(dense, 0.3, 6), atol=1e-5)


@pytest.mark.parametrize("num_factors", [12, 40])
def test_gfcf_factors_beyond_the_smaller_dimension_keep_every_factor(num_factors):
    dense, csr = random_csr(seed=4)
    model = GFCF.fit(csr, alpha=1.0, num_factors=num_factors)
    assert model.factors.shape == (12, 12)
    scores = model.score(torch.arange(30)).double().numpy()
    np.testing.assert_allclose(scores, gfcf_reference(dense, 1.0, 12), atol=1e-5)


@pytest.mark.parametrize("num_factors", [5, 6])
def test_gfcf_rank_below_the_factors_drops_the_null_space(num_factors):
    # Ten copies of three users: rank 3, so the factors past it are zero and V V^T is the
    # projection onto the row space. At 5 factors PROPACK returns the null-space vectors (then
    # zeroed); at 6 it stops at an invariant subspace and ARPACK answers instead.
    patterns = np.array(
        [[1, 1, 0, 0, 1, 0, 0, 0], [0, 1, 1, 0, 0, 1, 0, 0], [0, 0, 1, 1, 0, 0, 1, 1]]
    )
    dense = np.repeat(patterns, 10, axis=0).astype(np.float64)
    matrix = normalized_matrix(History(csr_of(dense)))
    if num_factors == 6:
        with pytest.raises(np.linalg.LinAlgError, match="invariant subspace"):
            scipy.sparse.linalg.svds(matrix, k=6, solver="propack", random_state=0)
    factors = top_right_singular_vectors(matrix, num_factors)
    assert factors.shape == (8, num_factors)
    assert np.linalg.matrix_rank(factors) == 3
    model = GFCF.fit(csr_of(dense), alpha=1.0, num_factors=num_factors)
    scores = model.score(torch.arange(30)).double().numpy()
    np.testing.assert_allclose(scores, gfcf_reference(dense, 1.0, num_factors), atol=1e-5)


def test_gfcf_config_rejects_bad_values():
    with pytest.raises(RecsysError, match="alpha must be a number >= 0"):
        GFCFConfig(alpha=-0.1)
    with pytest.raises(RecsysError, match="num_factors must be an integer >= 1"):
        GFCFConfig(num_factors=0)


# --- RP3beta ---------------------------------------------------------------------------------


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest nonzero values, asserting that no tie straddles the cut."""
    nonzero = np.nonzero(values)[0]
    order = nonzero[np.argsort(-values[nonzero], kind="stable")]
    if len(order) > k:
        assert not np.isclose(values[order[k - 1]], values[order[k]], rtol=1e-6)
    return order[:k]


def rp3beta_reference(
    dense: np.ndarray, alpha: float, beta: float, topk: int, normalize: bool
) -> np.ndarray:
    """Dacrema et al.'s RP3betaRecommender.fit, densely: W = P_iu^a P_ui^a pop^-b, diag 0,
    top-k per row, optional l1 row normalisation, top-k per column."""
    n = dense.shape[1]
    p_ui = dense * inverse_power(dense.sum(1), 1.0)[:, None]
    p_iu = dense.T * inverse_power(dense.sum(0), 1.0)[:, None]
    p_ui, p_iu = (np.where(p > 0, np.where(p > 0, p, 1.0) ** alpha, 0.0) for p in (p_ui, p_iu))
    w = p_iu @ p_ui * inverse_power(dense.sum(0), beta)[None, :]
    np.fill_diagonal(w, 0.0)
    rows = np.zeros_like(w)
    for i in range(n):
        keep = top_indices(w[i], topk)
        rows[i, keep] = w[i, keep]
    if normalize:
        total = rows.sum(1, keepdims=True)
        rows = np.where(total > 0, rows / np.where(total > 0, total, 1.0), 0.0)
    out = np.zeros_like(w)
    for j in range(n):
        keep = top_indices(rows[:, j], topk)
        out[keep, j] = rows[keep, j]
    return out


def dense_weights(model: RP3beta) -> np.ndarray:
    """The model's W (n_items, n_items): W[i, j] is source i's weight towards target j."""
    n = model.n_items
    w = np.zeros((n, n))
    w[model.neighbours.numpy(), np.arange(n)[:, None]] = model.weights.numpy()
    return w


def test_rp3beta_weights_by_hand():
    # alpha 1, beta 0: W[i, j] = (1/|U_i|) sum_{u in U_i & U_j} 1/|I_u|; TINY's user degrees
    # (2, 3, 2, 2), item degrees (2, 3, 3, 1).
    w = dense_weights(RP3beta.fit(tiny_csr(), alpha=1.0, beta=0.0, topk=4))
    expected = np.array(
        [
            [0, (1 / 2 + 1 / 3) / 2, 1 / 3 / 2, 0],
            [(1 / 2 + 1 / 3) / 3, 0, (1 / 3 + 1 / 2) / 3, 0],
            [1 / 3 / 3, (1 / 3 + 1 / 2) / 3, 0, 1 / 2 / 3],
            [0, 0, 1 / 2, 0],
        ]
    )
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    # beta discounts column j by |U_j|^beta.
    w_beta = dense_weights(RP3beta.fit(tiny_csr(), alpha=1.0, beta=0.5, topk=4))
    np.testing.assert_allclose(w_beta, expected / np.sqrt(TINY.sum(0))[None, :], rtol=1e-6)


@pytest.mark.parametrize(
    ("alpha", "beta", "topk", "normalize"),
    [(1.0, 0.5, 12, False), (0.7, 0.3, 4, False), (1.3, 0.8, 5, True), (0.0, 1.0, 8, True)],
)
def test_rp3beta_matches_the_reference_algorithm(alpha, beta, topk, normalize):
    dense, csr = random_csr(seed=5)
    expected = rp3beta_reference(dense, alpha, beta, topk, normalize)
    model = RP3beta.fit(csr, alpha, beta, topk, normalize)
    np.testing.assert_allclose(dense_weights(model), expected, rtol=1e-5, atol=1e-7)
    users = torch.arange(30)
    np.testing.assert_allclose(model.score(users).numpy(), dense @ expected, rtol=1e-5, atol=1e-6)


def test_rp3beta_prunes_rows_before_columns():
    # topk 1: each row keeps its largest weight, then each column the largest of those left.
    dense, csr = random_csr(seed=5)
    pruned = dense_weights(RP3beta.fit(csr, alpha=0.7, beta=0.3, topk=1))
    assert ((pruned > 0).sum(axis=0) <= 1).all() and ((pruned > 0).sum(axis=1) <= 1).all()
    np.testing.assert_allclose(pruned, rp3beta_reference(dense, 0.7, 0.3, 1, False), rtol=1e-5)


def test_rp3beta_blocks_give_the_same_weights():
    _, csr = random_csr(seed=3)
    whole = rp3beta_neighbours(History(csr), 0.8, 0.4, topk=5)
    chunked = rp3beta_neighbours(History(csr), 0.8, 0.4, topk=5, block=4)
    torch.testing.assert_close(chunked, whole)


def test_column_top_k_by_hand():
    # Rows list (column, value): row 0 -> (1, .5) (2, .2); row 1 -> (0, .3) (2, .4);
    # row 2 -> (1, .1) (2, .9). Column 2 holds .2, .4, .9 and keeps rows 1 and 2.
    targets = torch.tensor([[1, 2], [0, 2], [1, 2]])
    values = torch.tensor([[0.5, 0.2], [0.3, 0.4], [0.1, 0.9]])
    rows, weights = column_top_k(targets, values, k=2, block=2)
    dense = np.zeros((3, 3))
    dense[rows.numpy(), np.arange(3)[:, None]] = weights.numpy()
    expected = np.array([[0, 0.5, 0], [0.3, 0, 0.4], [0, 0.1, 0.9]])
    np.testing.assert_allclose(dense, expected, rtol=1e-6)


def test_rp3beta_item_without_interactions_and_large_topk():
    dense, _ = random_csr(seed=6)
    dense[:, 7] = 0.0
    model = RP3beta.fit(csr_of(dense), alpha=1.0, beta=0.5, topk=100)
    assert model.neighbours.shape == (12, 12)
    scores = model.score(torch.arange(30))
    assert torch.isfinite(scores).all()
    assert (scores[:, 7] == 0).all()
    np.testing.assert_allclose(
        dense_weights(model), rp3beta_reference(dense, 1.0, 0.5, 100, False), rtol=1e-5
    )


def test_rp3beta_config_rejects_bad_values():
    with pytest.raises(RecsysError, match="beta must be a number >= 0"):
        RP3betaConfig(beta=-1.0)
    with pytest.raises(RecsysError, match="topk must be an integer >= 1"):
        RP3betaConfig(topk=0)
    with pytest.raises(RecsysError, match="normalize_similarity must be true or false"):
        RP3betaConfig(normalize_similarity="yes")


@pytest.mark.parametrize("name", ["gfcf", "rp3beta"])
def test_state_dict_round_trip_through_build(blocks, name):
    spec = get_spec(name)
    model = spec.build(spec.config_cls(), blocks, torch.device("cpu"))
    state = model.state_dict()
    assert not any(key.startswith(("history.", "item_rows.")) for key in state)
    restored = spec.build(spec.config_cls(), blocks, torch.device("cpu"))
    for tensor in restored.state_dict().values():
        tensor.zero_()
    restored.load_state_dict(state)
    users = torch.arange(blocks.n_users)
    torch.testing.assert_close(restored.score(users), model.score(users), rtol=0, atol=0)
