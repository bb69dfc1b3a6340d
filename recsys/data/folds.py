"""K-fold cross-validation splits (``--folds K``): K disjoint test parts, one split per fold.

- ``--split ratio --folds K`` (any dataset): each user's positives are dealt, in a seeded random
  order, into K parts round-robin from a seeded random offset, so that a user's parts differ in
  size by at most one and which parts get the extra pair is random. Fold f tests on part f and
  trains on the other K - 1; a seeded ``val_share`` of each user's training pairs is carved out
  as validation, as for split files. Users with a single positive have nothing to train on in
  the fold that tests it: they stay in train in every fold (counted as ``fold_train_only_users``).
- ``--split ml100k-fold --folds K``: GroupLens' own ``u1``..``uK`` base/test pairs (K <= 5),
  fold f being ``uf.base`` / ``uf.test`` (``recsys.data.predefined``).

Fold f of K is the ``PrepConfig`` of :func:`fold_config`: a split like any other, cached by
its own fingerprint. The parts are drawn from ``PrepConfig.seed`` alone, so every fold of a
seed partitions the same way; each fold's validation is carved with a seed of its own.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recsys.data.prepare import Prepared
from recsys.data.split import SplitResult, _rank_within_user, split
from recsys.errors import RecsysError
from recsys.seeds import derive_seed

# The splits --folds can cross-validate: seeded per-user folds, and ML-100K's own.
FOLD_SPLITS = ("ratio", "ml100k-fold")
ML100K_FOLDS = 5


def fold_parts(users: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The test part (0..k-1) of each pair; -1 for a user's single pair (train in every fold).

    Args:
        users: (n,) user index of each pair.
        k: the number of folds.
        rng: draws each user's order and offset.

    Returns:
        (n,) int64: per user, its pairs in a random order dealt round-robin into the k parts
        from a random offset.
    """
    if users.size == 0:
        return np.empty(0, np.int64)
    rank, sizes = _rank_within_user(users, rng.random(users.shape[0]))
    offset = rng.integers(0, k, size=sizes.shape[0])
    part = (rank + offset[users]) % k
    return np.where(sizes[users] >= 2, part, -1).astype(np.int64)


def split_fold(
    data: Prepared, k: int, fold: int, seed: int, val_share: float | None
) -> SplitResult:
    """Fold ``fold`` (1..k) of the seeded per-user k folds of ``data`` (see the module)."""
    part = fold_parts(data.users, k, np.random.default_rng(seed))
    tags = np.where(part == fold - 1, "test", "train")
    carve = derive_seed(seed, "fold-validation", fold)
    parts = split(dataclasses.replace(data, split=tags), "files", seed=carve, val_share=val_share)
    single = int((np.bincount(data.users[part < 0]) > 0).sum()) if (part < 0).any() else 0
    counts = {**parts.counts, "fold": fold, "folds": k, "fold_train_only_users": single}
    return dataclasses.replace(parts, counts=counts)


def fold_config(config, k: int, fold: int):
    """The ``PrepConfig`` of fold ``fold`` (1..k) of ``config``'s k folds."""
    return dataclasses.replace(config, folds=k, fold=fold)


def check_folds(config) -> None:
    """The fold parameters of a ``PrepConfig`` whose ``folds`` is set.

    Raises:
        RecsysError: K below 2, a split without folds, ``--ratios``, a fold outside 1..K.
    """
    k, split_name = config.folds, config.split
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise RecsysError(
            f"--folds must be an integer of at least 2 (K folds: K disjoint test parts), got {k!r}"
        )
    if split_name not in FOLD_SPLITS:
        raise RecsysError(
            f"--folds does not apply to --split {split_name}: it cross-validates --split ratio "
            "(seeded per-user folds, any dataset) or --split ml100k-fold (ML-100K's u1..u5)"
        )
    if split_name == "ml100k-fold" and k > ML100K_FOLDS:
        raise RecsysError(
            f"--split ml100k-fold has {ML100K_FOLDS} folds (u1..u5); --folds {k} asks for more: "
            f"use --folds 2..{ML100K_FOLDS}, or --split ratio --folds {k}"
        )
    if config.ratios is not None:
        raise RecsysError(
            "--ratios does not apply with --folds: each fold's test is 1/K of each user's "
            "interactions; set the validation share of the training part with --val-share"
        )
    fold = 1 if config.fold is None else config.fold
    if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= k:
        raise RecsysError(f"fold {fold!r} of --folds {k} must be one of 1..{k}")
