"""HybridVAE: a multinomial VAE whose decoder scores items through frozen Sentence-BERT vectors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError, require
from recsys.models.vae import MultinomialVAE, VAEConfig, VAEEncoder


@dataclass(frozen=True)
class HybridVAEConfig(VAEConfig):
    """HybridVAE hyperparameters: those of :class:`VAEConfig`, and

    Attributes:
        trainable_residual: learn a residual added to the frozen item text matrix.
        logit_scale: initial value of the learned logit scale s (see :class:`TextDecoder`).

    The KL weight reaches its maximum sooner than Mult-VAE's and gradients are clipped: the
    text decoder's scale makes early logits large.
    """

    anneal_steps: int = 20_000
    grad_clip: float | None = 5.0
    trainable_residual: bool = False
    logit_scale: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.logit_scale > 0, f"logit_scale must be > 0, got {self.logit_scale}")


class TextDecoder(nn.Module):
    """Item logits s * (z W) E^T + b, with E the frozen, L2-normalised item text embeddings.

    Rows of E have unit norm and the texts of one catalogue are close to each other (cosines
    of 0.2-0.6 are common), so without a scale the logits would span a narrow range and the
    softmax over thousands of items would stay nearly flat early in training. s = exp(log_scale)
    is learned, starting at ``logit_scale``.

    An item without training interactions (a cold item) is scored from its text alone: its bias
    and residual row stay at 0. Left free, they would only learn to push down an item no user
    chose in training (each softmax step lowers every absent item), which says nothing about a
    new item and would drown the text's signal in its ranking among other new items.

    Args:
        latent: size of z.
        item_embeddings: (n_items, d) text embeddings; normalised and frozen here.
        logit_scale: initial logit scale s (> 0).
        trainable_residual: add a learned (n_items, d) matrix R, initialised at 0, to E.
        trained: (n_items,) bool, the items with training interactions (default: all).
    """

    def __init__(
        self,
        latent: int,
        item_embeddings: torch.Tensor,
        logit_scale: float,
        trainable_residual: bool = False,
        trained: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        n_items, dim = item_embeddings.shape
        embeddings = F.normalize(item_embeddings.detach().to(torch.float32), dim=1)
        self.register_buffer("item_text", embeddings, persistent=False)
        trained = torch.ones(n_items, dtype=torch.bool) if trained is None else trained
        # Data-derived, hence not in checkpoints: serving rebuilds it from the same train.
        self.register_buffer("trained", trained.to(torch.float32), persistent=False)
        self.project = nn.Linear(latent, dim, bias=False)
        # Start from (almost) the uniform distribution over items: with unit-norm E, a default
        # init times the scale would give large random logits from the noisy z of early training.
        nn.init.normal_(self.project.weight, std=1e-3)
        self.log_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.residual = nn.Parameter(torch.zeros(n_items, dim)) if trainable_residual else None

    def item_matrix(self) -> torch.Tensor:
        """(n_items, d): E, plus the learned residual when there is one."""
        if self.residual is None:
            return self.item_text
        return self.item_text + self.residual * self.trained.unsqueeze(1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent) -> (B, n_items) logits."""
        logits = self.log_scale.exp() * (self.project(z) @ self.item_matrix().T)
        return logits + self.item_bias * self.trained


class HybridVAE(MultinomialVAE):
    """HybridVAE: Mult-VAE's objective (Liang et al., WWW 2018) with a content decoder whose item
    side is frozen Sentence-BERT embeddings (Reimers and Gurevych, EMNLP 2019).

    Encoder: normalised row, input dropout, Linear -> LayerNorm -> GELU -> Dropout, then mu and
    log-variance. Decoder: :class:`TextDecoder`.

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for scoring.
        item_embeddings: (n_items, d) item text embeddings.
        hidden: encoder hidden width.
        latent: size of z.
        dropout: input and hidden dropout probability.
        beta_max: final KL weight.
        anneal_steps: training steps to reach ``beta_max``.
        logit_scale: initial logit scale.
        trainable_residual: learn a residual added to the item text embeddings.
    """

    def __init__(
        self,
        train_csr: torch.Tensor,
        item_embeddings: torch.Tensor,
        hidden: int,
        latent: int,
        dropout: float,
        beta_max: float,
        anneal_steps: int,
        logit_scale: float,
        trainable_residual: bool = False,
    ) -> None:
        n_items = int(train_csr.shape[1])
        counts = torch.bincount(train_csr.col_indices(), minlength=n_items)
        hidden_block = nn.Sequential(nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout))
        encoder = VAEEncoder(n_items, hidden, latent, dropout, hidden_block)
        decoder = TextDecoder(
            latent, item_embeddings, logit_scale, trainable_residual, trained=counts > 0
        )
        super().__init__(train_csr, encoder, decoder, beta_max, anneal_steps)


def build(cfg: HybridVAEConfig, data: SplitData, device: torch.device) -> HybridVAE:
    """A HybridVAE on ``device`` whose decoder's item side is ``data.item_embeddings``."""
    if data.item_embeddings is None:
        raise RecsysError(
            "hybrid_vae needs item embeddings and the data has none; attach them first with "
            "recsys.text.with_item_embeddings(data) (the sweep does this once for all trials)"
        )
    # A copy: arrays from the object store are read-only, and E becomes a buffer of the model.
    embeddings = torch.tensor(data.item_embeddings, dtype=torch.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != data.n_items:
        raise RecsysError(
            f"hybrid_vae: item_embeddings must have shape (n_items={data.n_items}, d), got "
            f"{tuple(embeddings.shape)}; recompute them with recsys.text.with_item_embeddings"
        )
    model = HybridVAE(
        data.train_csr(),
        embeddings,
        cfg.hidden,
        cfg.latent,
        cfg.dropout,
        cfg.beta_max,
        cfg.anneal_steps,
        cfg.logit_scale,
        cfg.trainable_residual,
    )
    return model.to(device)
