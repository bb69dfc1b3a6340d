"""What Mult-VAE, Mult-DAE and HybridVAE share: the config, the encoder, the loss (annealed ELBO,
or the likelihood alone) and scoring from the encoder's mean.

The models differ only in the encoder's hidden block, in the decoder, which they pass in (see
``mult_vae.py`` and ``hybrid_vae.py``), and in whether the encoder is variational: Mult-DAE's is
not (no sampling, no KL term).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recsys.errors import require
from recsys.models.base import TrainableRecommender, UserBatch
from recsys.models.history import History


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyperparameters every multinomial autoencoder has; the defaults are Liang et al.'s
    ([n_items -> 600 -> 200 -> 600 -> n_items], input dropout 0.5).

    Attributes:
        hidden: encoder (and Mult-VAE decoder) hidden width.
        latent: size of z.
        dropout: input dropout probability.
        lr: Adam learning rate.
        batch_size: users per step.
        weight_decay: Adam's L2 weight decay.
        grad_clip: maximum gradient norm, or None for no clipping.
    """

    hidden: int = 600
    latent: int = 200
    dropout: float = 0.5
    lr: float = 1e-3
    batch_size: int = 500
    weight_decay: float = 0.0
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        require(self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}")
        require(self.latent >= 1, f"latent must be >= 1, got {self.latent}")
        require(0.0 <= self.dropout < 1.0, f"dropout must lie in [0, 1), got {self.dropout}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(
            self.grad_clip is None or self.grad_clip > 0,
            f"grad_clip must be > 0 or null, got {self.grad_clip}",
        )


@dataclass(frozen=True)
class VAEConfig(AutoencoderConfig):
    """Hyperparameters every multinomial VAE has: the autoencoder's, and the KL weight's schedule
    (Mult-VAE's paper: annealed to 0.2).

    Attributes:
        beta_max: final KL weight.
        anneal_steps: training steps over which the KL weight rises to ``beta_max``.
    """

    beta_max: float = 0.2
    anneal_steps: int = 200_000

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.beta_max >= 0, f"beta_max must be >= 0, got {self.beta_max}")
        require(self.anneal_steps >= 0, f"anneal_steps must be >= 0, got {self.anneal_steps}")


class VAEEncoder(nn.Module):
    """q(z | x): L2-normalised row, input dropout, one hidden layer, then mu and log-variance;
    a deterministic encoder (``variational=False``, Mult-DAE's) outputs only the code mu.

    Args:
        n_items: input width.
        hidden: hidden width.
        latent: size of z.
        dropout: input dropout probability (applied after normalisation, as in Liang et al.).
        hidden_block: applied after the first linear layer (e.g. ``nn.Tanh()``).
        variational: output a log-variance too (the last layer is 2 * latent wide).
    """

    def __init__(
        self,
        n_items: int,
        hidden: int,
        latent: int,
        dropout: float,
        hidden_block: nn.Module,
        variational: bool = True,
    ) -> None:
        super().__init__()
        self.latent = latent
        self.variational = variational
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(n_items, hidden)
        self.hidden_block = hidden_block
        self.out = nn.Linear(hidden, 2 * latent if variational else latent)

    def forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, n_items) rows -> mu (B, latent) and log-variance (B, latent), or None when the
        encoder is deterministic."""
        h = self.hidden_block(self.hidden(self.input_dropout(F.normalize(rows, dim=1))))
        if not self.variational:
            return self.out(h), None
        mu, logvar = self.out(h).split(self.latent, dim=1)
        return mu, logvar

    def input_dropout(self, x: torch.Tensor) -> torch.Tensor:
        """``self.dropout(x)``; on the CPU the same mask, drawn in half the time.

        ``F.dropout``'s CPU kernel keeps an entry when a float64 uniform drawn for it, in order,
        is below 1 - p (``bernoulli_(1 - p)``), and scales the kept ones by 1 / (1 - p);
        ``torch.rand`` in float64 draws the same uniforms from the same generator, without
        the bernoulli kernel's per-entry cost (a tenth of a Mult-VAE epoch). Elsewhere, and in
        evaluation, it is ``self.dropout``.
        """
        p = self.dropout.p
        if not self.training or p == 0 or x.device.type != "cpu":
            return self.dropout(x)
        keep = torch.rand(x.shape, dtype=torch.float64, device=x.device) < 1 - p
        return x * (keep / (1 - p))


def multinomial_nll(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean over users of -sum_i x_ui log softmax(logits_u)_i; shapes (B, n_items) -> ()."""
    return -(F.log_softmax(logits, dim=1) * rows).sum(dim=1).mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over users of KL(N(mu, exp(logvar)) || N(0, I)); shapes (B, d) -> ()."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=1).mean()


class MultinomialVAE(TrainableRecommender):
    """A VAE over users' item rows with a multinomial likelihood and a linearly annealed KL weight.

    Loss per batch: multinomial NLL + beta * KL with beta = beta_max * min(1, step /
    anneal_steps), ``step`` counting training batches (a buffer, so checkpoints resume the
    schedule). Training samples z = mu + sigma * eps; scoring decodes mu of the user's training
    row.

    With a deterministic encoder (``encoder.variational`` False) it is a denoising autoencoder
    (Mult-DAE): z = mu also in training, the input dropout is the only noise, and the loss is the
    multinomial NLL alone (beta is 0).

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for scoring.
        encoder: the inference network.
        decoder: maps z (B, latent) to item logits (B, n_items).
        beta_max: final KL weight; 0 for a deterministic encoder.
        anneal_steps: training steps over which beta rises from 0 to ``beta_max`` (0: at once).
    """

    batch_kind = "users"

    def __init__(
        self,
        train_csr: torch.Tensor,
        encoder: VAEEncoder,
        decoder: nn.Module,
        beta_max: float,
        anneal_steps: int,
    ) -> None:
        super().__init__()
        if not encoder.variational and beta_max != 0:
            raise ValueError(f"a deterministic encoder has no KL term; beta_max is {beta_max}")
        self.history = History(train_csr)
        self.n_users, self.n_items = self.history.n_users, self.history.n_items
        self.encoder = encoder
        self.decoder = decoder
        self.beta_max = beta_max
        self.anneal_steps = anneal_steps
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def beta(self) -> float:
        """The KL weight of the next training step."""
        if self.anneal_steps <= 0:
            return self.beta_max
        return self.beta_max * min(1.0, int(self.step) / self.anneal_steps)

    def forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(B, n_items) rows -> logits (B, n_items), mu and log-variance (B, latent); the
        log-variance is None for a deterministic encoder, which decodes mu in training too."""
        mu, logvar = self.encoder(rows)
        sample = self.training and logvar is not None
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.decoder(z), mu, logvar

    def loss(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        logits, mu, logvar = self(batch.rows)
        nll = multinomial_nll(logits, batch.rows)
        beta = self.beta()
        if self.training:
            self.step += 1
        if logvar is None:
            return {"loss": nll, "nll": nll}
        kl = gaussian_kl(mu, logvar)
        return {"loss": nll + beta * kl, "nll": nll, "kl": kl, "beta": nll.new_tensor(beta)}

    def score(self, users: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encoder(self.history.rows(users))
        return self.decoder(mu)
