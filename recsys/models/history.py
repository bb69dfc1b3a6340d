"""Users' training interactions kept inside a model: dense rows and item co-occurrence counts."""

from __future__ import annotations

import torch
from torch import nn

from recsys.sparse import dense_rows, sparse_csr

# Largest dense block (in elements) built at once when counting co-occurrences: 2^25 float32
# values are 128 MiB (callers keep a few such blocks alive), large enough for efficient matmuls.
_BLOCK_ELEMENTS = 1 << 25


class History(nn.Module):
    """The binary training matrix X (n_users, n_items), stored as CSR index buffers.

    Models that score from a user's training row (the autoencoders, EASE, ItemKNN) hold one.
    The buffers are not persistent: they come from the data at build time, so checkpoints hold
    weights only.

    Args:
        train_csr: (n_users, n_items) sparse CSR tensor of training interactions (values ignored).
    """

    def __init__(self, train_csr: torch.Tensor) -> None:
        super().__init__()
        self.n_users, self.n_items = (int(s) for s in train_csr.shape)
        self.register_buffer("crow", train_csr.crow_indices().to(torch.int64), persistent=False)
        self.register_buffer("col", train_csr.col_indices().to(torch.int64), persistent=False)

    def rows(self, users: torch.Tensor) -> torch.Tensor:
        """Dense binary training rows of ``users``.

        Args:
            users: (B,) int64 user indices on the buffers' device.

        Returns:
            (B, n_items) float32 tensor, 1.0 where the user has a training interaction.
        """
        return dense_rows(self.crow, self.col, users, self.n_items)

    def item_csr(self) -> torch.Tensor:
        """X^T as an (n_items, n_users) sparse CSR float32 tensor on the buffers' device."""
        users = torch.repeat_interleave(
            torch.arange(self.n_users, device=self.crow.device), self.crow[1:] - self.crow[:-1]
        )
        order = torch.argsort(self.col * self.n_users + users)
        counts = torch.bincount(self.col, minlength=self.n_items)
        crow = torch.zeros(self.n_items + 1, dtype=torch.int64, device=self.crow.device)
        crow[1:] = torch.cumsum(counts, 0)
        values = torch.ones(self.col.shape[0], device=self.crow.device)
        return sparse_csr(crow, users[order], values, (self.n_items, self.n_users))

    def csr(self) -> torch.Tensor:
        """X as an (n_users, n_items) sparse CSR float32 tensor of ones on the buffers' device."""
        values = torch.ones(self.col.shape[0], device=self.crow.device)
        return sparse_csr(self.crow, self.col, values, (self.n_users, self.n_items))

    def cooccurrence_blocks(
        self, block: int | None = None, user_weights: torch.Tensor | None = None
    ):
        """Yields ``(items, G[:, items])`` column blocks of the co-occurrence matrix G = X^T X.

        Args:
            block: items per block (default: as many as fit in a 128 MiB dense block).
            user_weights: optional (n_users,) float32 weights w: the blocks are then those of
                X^T diag(w) X, each user counting w_u instead of 1 (RP3beta's random walk).

        Yields:
            ``items`` (c,) int64 and ``counts`` (n_items, c) float32: how many users interacted
            with both item i and item ``items[j]`` (the diagonal holds item popularity).
        """
        xt = self.item_csr()
        if block is None:
            block = max(1, _BLOCK_ELEMENTS // max(self.n_users, self.n_items))
        item_rows = History(xt)
        for lo in range(0, self.n_items, block):
            items = torch.arange(lo, min(lo + block, self.n_items), device=self.crow.device)
            # G[:, items] = X^T (X[:, items]); X[:, items] is the transpose of X^T's rows.
            columns = item_rows.rows(items).T
            if user_weights is not None:
                columns = columns * user_weights.unsqueeze(1)
            yield items, xt @ columns

    def cooccurrence(self) -> torch.Tensor:
        """The dense (n_items, n_items) float32 co-occurrence matrix G = X^T X."""
        out = torch.empty(self.n_items, self.n_items, device=self.crow.device)
        for items, counts in self.cooccurrence_blocks():
            out[:, items] = counts
        return out
