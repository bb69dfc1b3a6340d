"""iALS: implicit alternating least squares, one ALS iteration per epoch, through ``implicit``.

Hu, Koren, Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008;
Rendle, Krichene, Zhang, Koren, "Revisiting the Performance of iALS on Item Recommendation
Benchmarks", RecSys 2022. The solvers are the ``implicit`` library's (CPU: Cholesky or
conjugate gradient; CUDA: conjugate gradient); this module only holds the factors and feeds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch

from recsys.data.dataset import SplitData
from recsys.errors import require
from recsys.models.base import TrainableRecommender

# The scale of implicit's own CPU initialisation (uniform in [0, 0.01)).
INIT_SCALE = 0.01


@dataclass(frozen=True)
class IALSConfig:
    """iALS hyperparameters (names as in ``implicit.als.AlternatingLeastSquares``).

    Attributes:
        factors: size of the user and item vectors.
        regularization: L2 weight lambda on every user and item vector (not scaled by frequency:
            nu = 0 in Rendle et al.'s notation; ``implicit`` takes one scalar).
        alpha: confidence of a training pair, c_ui = 1 + alpha (unobserved pairs: 1).
        use_cg: conjugate-gradient updates (3 steps from the previous factors, Takacs et al.
            2011) instead of exact Cholesky solves.
    """

    factors: int = 64
    regularization: float = 30.0
    alpha: float = 5.0
    use_cg: bool = True

    def __post_init__(self) -> None:
        require(self.factors >= 1, f"factors must be >= 1, got {self.factors}")
        require(
            math.isfinite(self.regularization) and self.regularization > 0,
            f"regularization must be > 0 (it keeps each least-squares system invertible), "
            f"got {self.regularization}",
        )
        require(
            math.isfinite(self.alpha) and self.alpha >= 0,
            f"alpha must be >= 0 (confidence 1 + alpha of a training pair), got {self.alpha}",
        )
        require(isinstance(self.use_cg, bool), f"use_cg must be true or false, got {self.use_cg!r}")


def confidence_matrix(train_csr: torch.Tensor, alpha: float) -> scipy.sparse.csr_matrix:
    """The confidences of the training pairs, C_ui = 1 + alpha * R_ui, as ``implicit`` reads them.

    ``implicit`` takes a stored value as the confidence itself (unstored pairs have confidence 1
    and preference 0), not as R to which it adds 1, so the 1 is added here.

    Args:
        train_csr: (n_users, n_items) binary sparse CSR training matrix.
        alpha: confidence weight.

    Returns:
        (n_users, n_items) float32 scipy CSR matrix with the structure of ``train_csr``.
    """
    csr = train_csr.cpu()
    values = 1.0 + alpha * csr.values().numpy().astype(np.float32)
    return scipy.sparse.csr_matrix(
        (values, csr.col_indices().numpy(), csr.crow_indices().numpy()),
        shape=tuple(csr.shape),
    )


class IALS(TrainableRecommender):
    """iALS (Hu et al., ICDM 2008; Rendle et al., RecSys 2022): minimises

        sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (sum_u |x_u|^2 + sum_i |y_i|^2)

    with p_ui = 1 on training pairs (c_ui = 1 + alpha) and 0 elsewhere (c_ui = 1), over all
    user-item pairs, by alternating least squares. One :meth:`fit_epoch` is one ALS iteration:
    every user vector is solved given the item vectors, then every item vector given the users.
    Scores are x_u . y_i.

    The factors are buffers (checkpoints, resumption and serving restore them); before each
    iteration they are handed to ``implicit``, which solves in place, and copied back after it.
    They start uniform in [0, 0.01), implicit's own initialisation, drawn from torch's generator
    (the Trainer seeds it), so ``implicit``'s ``random_state`` is never read.

    Args:
        confidence: (n_users, n_items) training confidences (see :func:`confidence_matrix`).
        factors: vector size.
        regularization: lambda.
        use_cg: conjugate-gradient updates instead of exact solves (the CUDA solver always uses
            CG; exact there means as many CG steps as factors).
    """

    batch_kind = "self"

    def __init__(
        self,
        confidence: scipy.sparse.csr_matrix,
        factors: int,
        regularization: float,
        use_cg: bool = True,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = confidence.shape
        self.confidence = confidence
        self.factors = factors
        self.regularization = regularization
        self.use_cg = use_cg
        self.register_buffer("user_factors", torch.rand(self.n_users, factors) * INIT_SCALE)
        self.register_buffer("item_factors", torch.rand(self.n_items, factors) * INIT_SCALE)

    def fit_epoch(self) -> dict[str, torch.Tensor]:
        """One ALS iteration; returns implicit's training loss (the objective above divided by
        the total confidence of all pairs), computed after the iteration."""
        losses: list[float] = []
        on_gpu = self.user_factors.device.type == "cuda" and _has_cuda()
        fit = self._fit_gpu if on_gpu else self._fit_cpu
        fit(lambda iteration, seconds, loss: losses.append(loss))
        return {"loss": torch.tensor(losses[-1], dtype=torch.float64)}

    def _fit_cpu(self, callback) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit parallelises over users with its own threads (the trial's CPU share, which
        # the tuning trial gives torch); a multi-threaded BLAS inside each of them oversubscribes
        # the cores, which implicit warns about at construction.
        with threadpool_limits(1, "blas"):
            als = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,  # the confidences are the matrix's values
                dtype=np.float32,
                use_cg=self.use_cg,
                iterations=1,
                calculate_training_loss=True,
                num_threads=torch.get_num_threads(),
            )
            als.user_factors = _host_copy(self.user_factors)
            als.item_factors = _host_copy(self.item_factors)
            als.fit(self.confidence, show_progress=False, callback=callback)
        self.user_factors.copy_(torch.from_numpy(als.user_factors))
        self.item_factors.copy_(torch.from_numpy(als.item_factors))

    def _fit_gpu(self, callback) -> None:
        import implicit.gpu
        from implicit.gpu.als import AlternatingLeastSquares

        als = AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=1.0,
            dtype=np.float32,
            iterations=1,
            calculate_training_loss=True,
        )
        if not self.use_cg:
            als.cg_steps = self.factors
        als.user_factors = implicit.gpu.Matrix(_host_copy(self.user_factors))
        als.item_factors = implicit.gpu.Matrix(_host_copy(self.item_factors))
        als.fit(self.confidence, show_progress=False, callback=callback)
        self.user_factors.copy_(torch.from_numpy(als.user_factors.to_numpy()))
        self.item_factors.copy_(torch.from_numpy(als.item_factors.to_numpy()))

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_factors[users]

    def item_vectors(self) -> torch.Tensor:
        return self.item_factors

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_factors[users] @ self.item_factors.T


def _host_copy(factors: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 NumPy copy of ``factors`` for implicit to solve into."""
    return np.ascontiguousarray(factors.detach().to("cpu", torch.float32).numpy().copy())


def _has_cuda() -> bool:
    import implicit.gpu

    return bool(implicit.gpu.HAS_CUDA)


def build(cfg: IALSConfig, data: SplitData, device: torch.device) -> IALS:
    """An iALS model on ``device`` whose confidences see only ``data.train``."""
    confidence = confidence_matrix(data.train_csr(), cfg.alpha)
    return IALS(confidence, cfg.factors, cfg.regularization, cfg.use_cg).to(device)
