"""Mult-VAE and Mult-DAE: autoencoders with a multinomial likelihood (Liang et al., WWW 2018).

Mult-DAE is the same network with a deterministic encoder: no sampling and no KL term, the
input dropout being its denoising noise (``MultVAE(..., variational=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recsys.data.dataset import SplitData
from recsys.models.vae import AutoencoderConfig, MultinomialVAE, VAEConfig, VAEEncoder


@dataclass(frozen=True)
class MultVAEConfig(VAEConfig):
    """Mult-VAE hyperparameters: those of :class:`VAEConfig`, with the paper's defaults."""


# Liang et al.'s code adds lam * sum |W|^2 with lam = 0.01 / batch_size (500) to the batch's
# mean NLL; Adam's coupled weight decay wd adds wd * W to the gradient, so wd = 2 * lam.
DAE_WEIGHT_DECAY = 2 * 0.01 / 500


@dataclass(frozen=True)
class MultDAEConfig(AutoencoderConfig):
    """Mult-DAE hyperparameters: those of :class:`AutoencoderConfig` (no KL weight, no schedule),
    with the L2 penalty of Liang et al.'s code as the default weight decay (on the biases too:
    Adam's decay is on every parameter)."""

    weight_decay: float = DAE_WEIGHT_DECAY


class MultVAE(MultinomialVAE):
    """Mult-VAE (Liang, Krishnan, Hoffman, Jebara: "Variational Autoencoders for Collaborative
    Filtering", WWW 2018): tanh MLP encoder and decoder [n_items -> hidden -> latent -> hidden ->
    n_items], input dropout, multinomial likelihood, KL annealed to ``beta_max``.

    With ``variational=False`` it is the paper's Mult-DAE: the encoder outputs the code alone,
    z = code in training and scoring, the loss is the multinomial NLL, and, as in the authors'
    code (every layer but the output is tanh), the code passes through tanh before decoding.

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for scoring.
        hidden: width of the hidden layers.
        latent: size of z.
        dropout: input dropout probability.
        beta_max: final KL weight (0 without a variational encoder).
        anneal_steps: training steps to reach ``beta_max``.
        variational: Mult-VAE (True) or Mult-DAE (False).
    """

    def __init__(
        self,
        train_csr: torch.Tensor,
        hidden: int,
        latent: int,
        dropout: float,
        beta_max: float = 0.0,
        anneal_steps: int = 0,
        *,
        variational: bool = True,
    ) -> None:
        n_items = int(train_csr.shape[1])
        encoder = VAEEncoder(n_items, hidden, latent, dropout, nn.Tanh(), variational)
        code = [] if variational else [nn.Tanh()]
        decoder = nn.Sequential(
            *code, nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_items)
        )
        super().__init__(train_csr, encoder, decoder, beta_max, anneal_steps)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # The paper's initialisation: Xavier weights, small normal biases.
                nn.init.xavier_uniform_(module.weight)
                nn.init.normal_(module.bias, std=0.001)


def build(cfg: MultVAEConfig, data: SplitData, device: torch.device) -> MultVAE:
    model = MultVAE(
        data.train_csr(), cfg.hidden, cfg.latent, cfg.dropout, cfg.beta_max, cfg.anneal_steps
    )
    return model.to(device)


def build_dae(cfg: MultDAEConfig, data: SplitData, device: torch.device) -> MultVAE:
    """Mult-DAE: :class:`MultVAE` with a deterministic encoder."""
    model = MultVAE(data.train_csr(), cfg.hidden, cfg.latent, cfg.dropout, variational=False)
    return model.to(device)
