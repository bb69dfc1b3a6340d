"""Seeded train/validation/test splits of prepared positives, all vectorised.

Strategies:
- ``ratio``: per user, a random ``ratios`` share of its items (default 80/10/10);
- ``loo``: leave-one-out per user, the validation and test items chosen at random or, with
  ``by_time``, the user's two latest (test = latest);
- ``temporal``: global cut by timestamp (default 70/15/15): the earliest interactions train;
- ``global``: a random share of all interactions (default 80/10/10), not per user;
- ``files`` / ``ml100k-fold``: the split the source gives (``Prepared.split`` tags each pair
  train, val or test: split files, ML-100K's ``u1.base``/``u1.test``...); without validation
  pairs, a seeded ``val_share`` of each user's training pairs is carved out as validation, as
  ``ratio`` would (at least one, none for a user with a single training pair);
- ``cold_items``: a seeded ``cold_share`` of the items (default 0.2) is held out with every
  interaction it has, half of them (rounded down, at least one) for validation and the rest
  for test; the other items' interactions all train. No training pair has a cold item, so the
  training graph never contains one (the cold-start protocol: the held-out items are new items).

Users with too few interactions to give every split at least one item stay in train only and are
counted. Invariants: the three splits are disjoint, and every validation/test user has training
interactions (for the global strategies, ``temporal``, ``global`` and the predefined ones,
held-out pairs of users absent from train are dropped and counted). Items are not filtered: an
item held out but never trained on stays in the catalogue (a cold item the models still rank).
For ``cold_items``, a user left without a training pair (every item of theirs was held out) is
dropped from validation and test like the global strategies' (``heldout_dropped_no_train``): a
model has nothing of theirs to score from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recsys.data.dataset import ColdItems, Pairs
from recsys.data.prepare import Prepared
from recsys.errors import RecsysError

STRATEGIES = ("ratio", "loo", "temporal", "global", "files", "ml100k-fold", "cold_items")
# The strategies whose split comes with the data (``Prepared.split``), not from ``ratios``.
PREDEFINED = ("files", "ml100k-fold")
DEFAULT_RATIOS = {
    "ratio": (0.8, 0.1, 0.1),
    "temporal": (0.7, 0.15, 0.15),
    "global": (0.8, 0.1, 0.1),
}
DEFAULT_VAL_SHARE = 0.1
# The cold-start literature's usual share of new items (e.g. 20% in CLCRec, Wei et al., MM 2021).
DEFAULT_COLD_SHARE = 0.2
_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SplitResult:
    train: Pairs
    val: Pairs
    test: Pairs
    counts: dict
    cold: ColdItems | None = None


def check_ratios(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    """Validates train/validation/test fractions: three non-negative numbers summing to 1."""
    if len(ratios) != 3 or not all(0 <= r < math.inf for r in ratios) or ratios[0] <= 0:
        raise RecsysError(
            f"split ratios {tuple(ratios)} are invalid; give three fractions train,val,test "
            "with train > 0, e.g. --ratios 0.8,0.1,0.1"
        )
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise RecsysError(
            f"split ratios {tuple(ratios)} sum to {sum(ratios):.4g}, not 1; "
            "e.g. --ratios 0.8,0.1,0.1"
        )
    return tuple(float(r) for r in ratios)


def _rank_within_user(users: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each pair within its user's list sorted by ``keys`` (last is primary)."""
    order = np.lexsort((*keys, users))
    sizes = np.bincount(users)
    starts = np.cumsum(sizes) - sizes
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0]) - starts[users[order]]
    return rank, sizes


def _held_out_sizes(sizes: np.ndarray, ratio: float) -> np.ndarray:
    """Items a user gives to a held-out split: floor(size * ratio), at least 1 if ratio > 0."""
    n = np.floor(sizes * ratio).astype(np.int64)
    return np.where(ratio > 0, np.maximum(n, 1), 0)


def _assign(
    rank: np.ndarray, users: np.ndarray, n_test: np.ndarray, n_val: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """Split code per pair (0 train, 1 val, 2 test): the last ranks test, before them val."""
    from_end = sizes[users] - 1 - rank
    code = np.zeros(users.shape[0], dtype=np.int8)
    code[from_end < n_test[users] + n_val[users]] = 1
    code[from_end < n_test[users]] = 2
    return code


def split(
    data: Prepared,
    strategy: str = "ratio",
    ratios: tuple[float, float, float] | None = None,
    seed: int = 42,
    by_time: bool = False,
    val_share: float | None = None,
    cold_share: float | None = None,
) -> SplitResult:
    """Splits prepared positives into train, validation and test pairs.

    Args:
        data: output of :func:`recsys.data.prepare.prepare`.
        strategy: one of :data:`STRATEGIES`.
        ratios: train/val/test fractions (``ratio``, ``temporal``, ``global``); default per
            strategy.
        seed: seeds every random choice.
        by_time: ``loo`` only: hold out each user's latest interactions instead of random ones.
        val_share: predefined splits without validation pairs: the share of each user's
            training pairs carved out as validation (default :data:`DEFAULT_VAL_SHARE`).
        cold_share: ``cold_items``: the share of the items held out (default
            :data:`DEFAULT_COLD_SHARE`).
    """
    _check_strategy(strategy, data.timestamps, by_time)
    users, items, ts = data.users, data.items, data.timestamps
    rng = np.random.default_rng(seed)
    if strategy == "cold_items":
        return _cold_items(users, items, len(data.item_ids), cold_share, rng)
    if strategy == "temporal":
        r = check_ratios(ratios or DEFAULT_RATIOS["temporal"])
        # Ties in time are broken at random (seeded) so the cut is exact in size.
        order = np.lexsort((rng.random(users.shape[0]), ts))
        users, items, code, counts = _global_cut(users, items, order, r)
    elif strategy == "global":
        r = check_ratios(ratios or DEFAULT_RATIOS["global"])
        order = rng.permutation(users.shape[0])
        users, items, code, counts = _global_cut(users, items, order, r)
    elif strategy in PREDEFINED:
        users, items, code, counts = _predefined(data, strategy, val_share, rng)
    else:
        code, counts = _per_user(users, ts, strategy, ratios, by_time, rng)
    parts = [Pairs(users[code == c], items[code == c]) for c in (0, 1, 2)]
    return SplitResult(*parts, counts=counts)


def _check_strategy(strategy: str, ts: np.ndarray, by_time: bool) -> None:
    """Raises a RecsysError for an unknown strategy, or a time-based one without timestamps."""
    if strategy not in STRATEGIES:
        raise RecsysError(
            f"unknown split strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}"
        )
    needs_time = strategy == "temporal" or (strategy == "loo" and by_time)
    if needs_time and np.isnan(ts).any():
        raise RecsysError(
            f"split {strategy!r}{' by time' if by_time else ''} needs timestamps, and this dataset "
            "has interactions without one; use --split ratio or a dataset with timestamps"
        )


def _global_cut(
    users: np.ndarray, items: np.ndarray, order: np.ndarray, r: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """One cut over all pairs in ``order`` (by time, or random): the first ``r[0]`` train, the
    next ``r[1]`` validation, the rest test; held-out pairs of users absent from train dropped.

    Returns:
        users, items and split code of the pairs kept, and the counts for the summary.
    """
    n = users.shape[0]
    cut1, cut2 = int(round(n * r[0])), int(round(n * (r[0] + r[1])))
    code = np.zeros(n, dtype=np.int8)
    code[order[cut1:cut2]] = 1
    code[order[cut2:]] = 2
    return _drop_orphans(users, items, code, {"train_only_users": 0})


def _drop_orphans(
    users: np.ndarray, items: np.ndarray, code: np.ndarray, counts: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Drops (and counts) the held-out pairs of users without a training pair."""
    in_train = np.zeros(int(users.max()) + 1 if users.size else 0, dtype=bool)
    in_train[users[code == 0]] = True
    orphan = (code > 0) & ~in_train[users]
    keep = ~orphan
    counts = {"heldout_dropped_no_train": int(orphan.sum()), **counts}
    return users[keep], items[keep], code[keep], counts


def _predefined(
    data: Prepared, strategy: str, val_share: float | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The source's own split (``data.split``), validation carved from train when it has none."""
    if data.split is None:
        raise RecsysError(
            f"split {strategy!r} needs interactions tagged train/val/test by their source; give "
            "--train-file and --test-file (or --split ml100k-fold), or choose another --split"
        )
    tags = np.asarray(data.split)
    code = np.full(tags.shape[0], -1, dtype=np.int8)
    for name, value in _CODES.items():
        code[tags == name] = value
    if (code < 0).any():
        bad = tags[code < 0][0]
        raise RecsysError(f"split tag {bad!r} is not one of {list(_CODES)}")
    users, items = data.users, data.items
    counts = {"train_only_users": 0, "val_carved_from_train": 0}
    if not (code == 1).any():
        share = DEFAULT_VAL_SHARE if val_share is None else val_share
        check_val_share(share)
        train = np.flatnonzero(code == 0)
        carved, carve_counts = _per_user(
            users[train], data.timestamps[train], "ratio", (1.0 - share, share, 0.0), False, rng
        )
        code[train[carved == 1]] = 1
        counts = {**carve_counts, "val_carved_from_train": int((carved == 1).sum())}
    return _drop_orphans(users, items, code, counts)


def check_val_share(share: float) -> float:
    """A validation share carved from training pairs: a fraction strictly between 0 and 1."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
        raise RecsysError(
            f"--val-share {share!r} must be a fraction strictly between 0 and 1, e.g. 0.1"
        )
    return float(share)


def _per_user(
    users: np.ndarray,
    ts: np.ndarray,
    strategy: str,
    ratios: tuple[float, float, float] | None,
    by_time: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict]:
    """Split code per pair for ``ratio`` and ``loo``, and the counts for the summary."""
    if strategy == "ratio":
        r = check_ratios(ratios or DEFAULT_RATIOS["ratio"])
        key = rng.random(users.shape[0])
        rank, sizes = _rank_within_user(users, key)
        n_val, n_test = _held_out_sizes(sizes, r[1]), _held_out_sizes(sizes, r[2])
    else:
        # By time, equal timestamps are ordered at random (seeded); otherwise all is random.
        keys = (rng.random(users.shape[0]),) + ((ts,) if by_time else ())
        rank, sizes = _rank_within_user(users, *keys)
        n_val = np.ones_like(sizes)
        n_test = np.ones_like(sizes)
    too_small = sizes < n_val + n_test + 1
    n_val = np.where(too_small, 0, n_val)
    n_test = np.where(too_small, 0, n_test)
    code = _assign(rank, users, n_test, n_val, sizes)
    return code, {"train_only_users": int((too_small & (sizes > 0)).sum())}


def check_cold_share(share: float) -> float:
    """A share of the items held out as cold: a fraction strictly between 0 and 1."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
        raise RecsysError(
            f"--cold-share {share!r} must be a fraction strictly between 0 and 1 (the share of "
            "the items held out as new items), e.g. 0.2"
        )
    return float(share)


def _cold_items(
    users: np.ndarray,
    items: np.ndarray,
    n_items: int,
    share: float | None,
    rng: np.random.Generator,
) -> SplitResult:
    """``cold_items``: a seeded share of the items, and every pair of theirs, held out; the
    first half of them (in the seeded order) for validation, the others for test."""
    share = check_cold_share(DEFAULT_COLD_SHARE if share is None else share)
    n_cold = int(round(n_items * share))
    if n_cold < 2 or n_cold >= n_items:
        raise RecsysError(
            f"--cold-share {share:g} of {n_items} items holds out {n_cold}; a cold split needs "
            "at least one validation and one test item and one item left to train on: choose "
            "another share"
        )
    order = rng.permutation(n_items)
    n_val = n_cold // 2
    val_items, test_items = np.sort(order[:n_val]), np.sort(order[n_val:n_cold])
    code = np.zeros(n_items, dtype=np.int8)
    code[val_items], code[test_items] = 1, 2
    users, items, pair_code, counts = _drop_orphans(
        users, items, code[items], {"cold_val_items": n_val, "cold_test_items": n_cold - n_val}
    )
    parts = [Pairs(users[pair_code == c], items[pair_code == c]) for c in (0, 1, 2)]
    return SplitResult(*parts, counts=counts, cold=ColdItems(val_items, test_items))
