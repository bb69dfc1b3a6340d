"""Mult-VAE: a variational autoencoder with a multinomial likelihood (Liang et al., WWW 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recsys.data.dataset import SplitData
from recsys.models.vae import MultinomialVAE, VAEConfig, VAEEncoder


@dataclass(frozen=True)
class MultVAEConfig(VAEConfig):
    """Mult-VAE hyperparameters: those of :class:`VAEConfig`, with the paper's defaults."""


class MultVAE(MultinomialVAE):
    """Mult-VAE (Liang, Krishnan, Hoffman, Jebara: "Variational Autoencoders for Collaborative
    Filtering", WWW 2018): tanh MLP encoder and decoder [n_items -> hidden -> latent -> hidden ->
    n_items], input dropout, multinomial likelihood, KL annealed to ``beta_max``.

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for scoring.
        hidden: width of the hidden layers.
        latent: size of z.
        dropout: input dropout probability.
        beta_max: final KL weight.
        anneal_steps: training steps to reach ``beta_max``.
    """

    def __init__(
        self,
        train_csr: torch.Tensor,
        hidden: int,
        latent: int,
        dropout: float,
        beta_max: float,
        anneal_steps: int,
    ) -> None:
        n_items = int(train_csr.shape[1])
        encoder = VAEEncoder(n_items, hidden, latent, dropout, nn.Tanh())
        decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_items))
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
