"""CSR row gathering on a small hand-written matrix: empty rows, repeated rows, empty batches."""

from __future__ import annotations

import torch

from recsys.sparse import dense_rows, row_gather

# The 4 x 5 matrix with rows {1, 3}, {}, {0, 2, 4}, {}.
CROW = torch.tensor([0, 2, 2, 5, 5])
COL = torch.tensor([1, 3, 0, 2, 4])


def test_row_gather_returns_each_rows_entries_in_csr_order():
    batch_row, cols = row_gather(CROW, COL, torch.tensor([2, 1, 0, 2, 3]))
    assert batch_row.tolist() == [0, 0, 0, 2, 2, 3, 3, 3]
    assert cols.tolist() == [0, 2, 4, 1, 3, 0, 2, 4]
    assert batch_row.dtype == cols.dtype == torch.int64


def test_row_gather_of_empty_rows_and_an_empty_batch():
    for rows in (torch.tensor([1, 3, 1]), torch.tensor([], dtype=torch.int64)):
        batch_row, cols = row_gather(CROW, COL, rows)
        assert batch_row.shape == cols.shape == (0,)


def test_dense_rows_matches_the_dense_matrix():
    dense = torch.tensor(
        [
            [0.0, 1.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 1.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    rows = torch.tensor([3, 2, 0, 2, 1])
    out = dense_rows(CROW, COL, rows, 5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, dense[rows], rtol=0, atol=0)
    assert dense_rows(CROW, COL, torch.tensor([], dtype=torch.int64), 5).shape == (0, 5)
