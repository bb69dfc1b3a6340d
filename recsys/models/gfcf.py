"""GF-CF: graph filtering collaborative filtering, a closed-form model (Shen et al., CIKM 2021)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from recsys.data.dataset import SplitData
from recsys.errors import require
from recsys.models.base import Recommender
from recsys.models.history import History

# Singular values below this fraction of the largest (which is 1 for R~) are zero to rounding:
# their vectors are arbitrary within R~'s null space, so they are not part of the filter.
_RANK_TOL = 1e-6


@dataclass(frozen=True)
class GFCFConfig:
    """GF-CF hyperparameters: the weight of the ideal low-pass filter and its number of factors.

    The defaults are the reference implementation's (alpha 0.3 for Gowalla and Yelp2018, 256
    factors for every dataset). ``num_factors`` is clipped to min(n_users, n_items) when fitted:
    then every factor is kept and the ideal filter projects onto R~'s row space.
    """

    alpha: float = 0.3
    num_factors: int = 256

    def __post_init__(self) -> None:
        require(
            isinstance(self.alpha, int | float)
            and not isinstance(self.alpha, bool)
            and math.isfinite(self.alpha)
            and self.alpha >= 0,
            f"alpha must be a number >= 0 (the weight of the ideal low-pass filter; 0 turns it "
            f"off), got {self.alpha!r}",
        )
        require(
            isinstance(self.num_factors, int)
            and not isinstance(self.num_factors, bool)
            and self.num_factors >= 1,
            f"num_factors must be an integer >= 1 (singular vectors of the ideal low-pass "
            f"filter), got {self.num_factors!r}",
        )


def item_degree_scales(history: History) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d_i^-1/2, d_i^1/2)`` per item, both 0 for an item nobody interacted with.

    The reference sets d_i^-1/2 to 0 there but takes d_i^1/2 as 1 / d_i^-1/2 = inf, which turns
    that item's scores into NaN (0 * inf); 0 is the limit of d_i^1/2 and keeps them finite.
    """
    degree = torch.bincount(history.col, minlength=history.n_items).to(torch.float32)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1).rsqrt(), torch.zeros_like(degree))
    return inv_sqrt, degree.sqrt()


def user_degree_inverse(history: History) -> torch.Tensor:
    """``d_u^-1`` per user (0 for a user without training interactions), shape (n_users,)."""
    degree = (history.crow[1:] - history.crow[:-1]).to(torch.float32)
    return torch.where(degree > 0, 1.0 / degree.clamp_min(1), torch.zeros_like(degree))


def normalized_matrix(history: History) -> scipy.sparse.csr_matrix:
    """R~ = D_u^-1/2 R D_i^-1/2 as a float64 SciPy CSR matrix (n_users, n_items)."""
    item_scale, _ = item_degree_scales(history)
    user_scale = user_degree_inverse(history).sqrt()
    crow, col = history.crow.cpu().numpy(), history.col.cpu().numpy()
    users = np.repeat(np.arange(history.n_users), np.diff(crow))
    values = user_scale.cpu().double().numpy()[users] * item_scale.cpu().double().numpy()[col]
    return scipy.sparse.csr_matrix((values, col, crow), shape=(history.n_users, history.n_items))


def top_right_singular_vectors(matrix: scipy.sparse.csr_matrix, k: int) -> np.ndarray:
    """The right singular vectors of the ``k`` largest singular values, by a sparse truncated SVD.

    ``k`` is clipped to min(matrix.shape) (then every factor is kept, and V V^T is the projection
    onto the row space). Vectors of singular values that are zero to rounding (the rank is below
    ``k``) are set to 0: they span an arbitrary part of the null space, not the spectrum, and
    SVDLIBC (the reference's solver) does not return them either.

    Solvers: PROPACK (fast, deterministic with a fixed seed); when the rank is below ``k`` it may
    stop at an invariant subspace, and then ARPACK, which does not, is used. With ``k`` equal to
    the smaller dimension neither applies and a dense SVD of ``matrix`` is taken, which then costs
    at most O(k^2 max(matrix.shape)).

    Args:
        matrix: (m, n) sparse matrix.
        k: number of factors >= 0.

    Returns:
        (n, min(k, m, n)) float64 array V with orthonormal (or zero) columns.
    """
    k = min(k, *matrix.shape)
    if k == 0:
        return np.zeros((matrix.shape[1], 0))
    if k == min(matrix.shape):
        _, values, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
    else:
        try:
            _, values, vt = scipy.sparse.linalg.svds(matrix, k=k, solver="propack", random_state=0)
        except np.linalg.LinAlgError:
            _, values, vt = scipy.sparse.linalg.svds(matrix, k=k, solver="arpack", random_state=0)
    vt[values <= _RANK_TOL * max(values.max(), 0.0)] = 0.0
    return np.ascontiguousarray(vt.T)


class GFCF(Recommender):
    """GF-CF (Shen et al., "How Powerful is Graph Convolution for Recommendation?", CIKM 2021).

    With R the binary training matrix and R~ = D_u^-1/2 R D_i^-1/2 (degree-normalised), the score
    of a user's training row r_u is the linear filter plus ``alpha`` times the ideal low-pass
    filter::

        s_u = r_u R~^T R~ + alpha * r_u D_i^-1/2 V V^T D_i^1/2

    with V (n_items, k) the top-k right singular vectors of R~. This is the reference code's
    formula (github.com/yshenaw/GF_CF, ``Table3&4/model.py``, class ``GF_CF``: ``U_2 = r @
    norm_adj.T @ norm_adj``, ``U_1 = r @ d_mat_i @ vt.T @ vt @ d_mat_i_inv``, ``U_2 + 0.3 *
    U_1``), except that an item with no training interaction scores finite (see
    :func:`item_degree_scales`).

    The item-item filter P = R~^T R~ is not stored: at MovieLens-100K it is 38% dense, so neither
    a dense (n_items^2) nor a sparse P is smaller than R~ itself, and r_u R~^T R~ is two sparse
    products costing 2 nnz(R) per user against n_items^2 for a dense P. The model keeps R (its
    :class:`History`), the degree scales (both derived from the training data, not in the
    checkpoint) and V, the fitted state.

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for scoring.
        factors: (n_items, k) float32 V (k may be 0: no ideal filter).
        alpha: weight of the ideal low-pass filter.
    """

    def __init__(self, train_csr: torch.Tensor, factors: torch.Tensor, alpha: float) -> None:
        super().__init__()
        self.history = History(train_csr)
        self.item_rows = History(self.history.item_csr())  # R^T, for the second product
        self.n_users, self.n_items = self.history.n_users, self.history.n_items
        self.alpha = float(alpha)
        item_inv_sqrt, item_sqrt = item_degree_scales(self.history)
        self.register_buffer("item_inv_sqrt", item_inv_sqrt, persistent=False)
        self.register_buffer("item_sqrt", item_sqrt, persistent=False)
        self.register_buffer("user_inv", user_degree_inverse(self.history), persistent=False)
        self.register_buffer("factors", factors)

    @classmethod
    def fit(
        cls,
        train_csr: torch.Tensor,
        alpha: float,
        num_factors: int,
        device: torch.device | None = None,
    ) -> GFCF:
        """Computes V on the CPU (SciPy's sparse SVD) and returns the model on ``device``."""
        history = History(train_csr)
        k = 0 if alpha == 0 else num_factors  # alpha 0: the ideal filter is off, skip the SVD
        factors = top_right_singular_vectors(normalized_matrix(history), k)
        return cls(train_csr, torch.from_numpy(factors).to(torch.float32), alpha).to(
            device or "cpu"
        )

    def score(self, users: torch.Tensor) -> torch.Tensor:
        scaled = self.history.rows(users) * self.item_inv_sqrt  # r_u D_i^-1/2, (B, n_items)
        # r_u R~^T R~ = ((r_u D_i^-1/2) R^T D_u^-1 R) D_i^-1/2, as two sparse-dense products.
        per_user = (self.history.csr() @ scaled.T) * self.user_inv.unsqueeze(1)  # (n_users, B)
        linear = (self.item_rows.csr() @ per_user).T * self.item_inv_sqrt
        if self.factors.shape[1] == 0:
            return linear
        ideal = (scaled @ self.factors) @ self.factors.T * self.item_sqrt
        return linear + self.alpha * ideal


def build(cfg: GFCFConfig, data: SplitData, device: torch.device) -> GFCF:
    return GFCF.fit(data.train_csr(), cfg.alpha, cfg.num_factors, device)
