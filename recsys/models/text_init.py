"""Item initialiser from item text: Sentence-BERT embeddings compressed to the embedding size."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recsys.errors import RecsysError

TEXT_INITS = ("autoencoder", "pca")


def compress_item_embeddings(
    embeddings: np.ndarray,
    dim: int,
    method: str = "autoencoder",
    std: float = 0.1,
    *,
    steps: int = 300,
    batch_size: int = 1024,
    hidden: int = 256,
) -> torch.Tensor:
    """Compresses item-text embeddings to ``dim`` columns scaled to the usual init std.

    Args:
        embeddings: (n_items, d) text embeddings (e.g. Sentence-BERT, d=384).
        dim: target embedding size.
        method: ``"autoencoder"`` (a small MLP autoencoder's bottleneck, trained with the global
            torch RNG, so ``set_seed`` makes it reproducible) or ``"pca"``.
        std: standard deviation of the result over all its entries (columns are centred).
        steps, batch_size, hidden: autoencoder training steps, rows per step, hidden width.

    Returns:
        (n_items, dim) float32 CPU tensor.
    """
    # A copy: embeddings that came through the object store are read-only.
    x = torch.tensor(np.asarray(embeddings), dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise RecsysError(f"item embeddings must be a non-empty (n_items, d) array, got {x.shape}")
    x = x - x.mean(dim=0)
    if method == "pca":
        if dim > min(x.shape):
            raise RecsysError(
                f"text_init='pca' needs dim <= min(n_items, text dim) = {min(x.shape)}, got "
                f"dim={dim}; lower dim or use text_init='autoencoder'"
            )
        u, s, _ = torch.linalg.svd(x, full_matrices=False)
        z = u[:, :dim] * s[:dim]
    elif method == "autoencoder":
        z = _autoencode(x, dim, steps=steps, batch_size=batch_size, hidden=hidden)
    else:
        raise RecsysError(f"unknown text_init {method!r}; choose one of: {', '.join(TEXT_INITS)}")
    z = z - z.mean(dim=0)
    return (z * (std / z.std().clamp_min(1e-12))).contiguous()


def _autoencode(
    x: torch.Tensor, dim: int, *, steps: int, batch_size: int, hidden: int
) -> torch.Tensor:
    d = x.shape[1]
    encoder = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, dim))
    decoder = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, d))
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    # Scale to unit variance so that the learning rate suits any embedding model.
    x = x / x.std().clamp_min(1e-12)
    for _ in range(steps):
        rows = x[torch.randint(x.shape[0], (min(batch_size, x.shape[0]),))]
        loss = (decoder(encoder(rows)) - rows).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return encoder(x)
