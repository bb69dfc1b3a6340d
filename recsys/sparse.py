"""CSR matrices: building them, and vectorised reads of a batch of their rows (entries or dense)."""

from __future__ import annotations

import warnings

import torch


def row_gather(
    crow: torch.Tensor, col: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every stored entry of the given rows of a CSR matrix, without a Python loop over rows.

    Args:
        crow: (n_rows + 1,) int64 row pointers.
        col: (nnz,) int64 column indices, row by row.
        rows: (B,) int64 row indices on the same device; may repeat.

    Returns:
        ``(batch_row, cols)``, each (E,) int64 with E the total length of the rows: entry e is
        column ``cols[e]`` of row ``rows[batch_row[e]]``; entries keep the CSR order.
    """
    start = crow[rows]
    count = crow[rows + 1] - start
    # One host sync for the total; with output_size the repeat_interleaves need no other.
    total = int(count.sum())
    batch_row = torch.repeat_interleave(
        torch.arange(rows.shape[0], device=rows.device), count, output_size=total
    )
    # Slot of each entry in col: its row's start plus its position within the row, which is a
    # running index minus the index of the row's first entry in the output.
    first = torch.cumsum(count, 0) - count
    slot = torch.arange(total, device=rows.device) - first[batch_row] + start[batch_row]
    return batch_row, col[slot]


def dense_rows(
    crow: torch.Tensor, col: torch.Tensor, rows: torch.Tensor, n_cols: int
) -> torch.Tensor:
    """The given rows of a binary CSR matrix as a dense 0/1 float32 tensor.

    Args:
        crow, col, rows: as in :func:`row_gather`.
        n_cols: number of columns of the matrix.

    Returns:
        (B, n_cols) float32 on ``rows``' device, 1.0 where the row has an entry (values ignored).
    """
    batch_row, cols = row_gather(crow, col, rows)
    out = torch.zeros(rows.shape[0], n_cols, device=rows.device)
    out[batch_row, cols] = 1.0
    return out


def sparse_csr(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """A sparse CSR tensor from parts already in CSR order (ascending columns within a row)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)
