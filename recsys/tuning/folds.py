"""``--folds K``: k-fold cross-validation of every model's best config.

The search runs on fold 1 (its validation chooses each model's best checkpoint, as without
folds); after it, each best config is trained again on folds 2..K (``recsys.tuning.replicas``:
fold runs, the same Ray tasks as seed runs, each handed its fold's trials' copy without the
test pairs) for the best checkpoint's epochs and seed, and scored on each fold's test
(:func:`recsys.tuning.scoring.add_fold_runs`). A model's test metrics are then the mean over
its folds, their ``_std`` the fold-to-fold spread; its per-user rows carry a ``fold`` column,
so the leaderboard's intervals and paired tests run over (fold, user) pairs.

The folds are ``recsys.data.folds``' (seeded per-user folds, or ML-100K's ``u1``..``uK``);
``--folds`` with ``--seeds`` is refused (``recsys.tuning.config.fold_configs``): both train each
best config again, and one spread at a time keeps the leaderboard's ``_std`` one thing.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from recsys.tuning import console
from recsys.tuning.config import SweepConfig, check_fits_data, fold_configs
from recsys.tuning.scoring import EvalProtocol, Fold

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData


def load_folds(cfg: SweepConfig, data: SplitData, trial_data: Any) -> tuple[Fold, ...]:
    """Every fold of ``cfg.folds``, fold 1 first: ``data`` and ``trial_data``, the search's;
    folds 2..K loaded (cached by fingerprint), checked to fit the sweep, given fold 1's item
    embeddings (the same items) and put into the object store once each. Empty without
    ``--folds``.

    Raises:
        RecsysError: a fold without validation or test pairs, or with other users or items.
    """
    if cfg.folds is None:
        return ()
    import ray

    from recsys.data import load_folds as load

    config = dataclasses.replace(fold_configs(cfg)[0], fold=None)
    splits = load(cfg.dataset, cfg.data_dir, config, **cfg.dataset_options)
    folds = [Fold(1, data, EvalProtocol.of(cfg, data), trial_data)]
    for number, split in enumerate(splits[1:], 2):
        split = dataclasses.replace(split, item_embeddings=data.item_embeddings)
        check_fits_data(cfg, split.n_items, len(split.val), len(split.test))
        ref = ray.put(split.without_test())
        folds.append(Fold(number, split, EvalProtocol.of(cfg, split), ref))
    sizes = "/".join(str(len(f.data.test)) for f in folds)
    console.say(f"folds: {len(folds)}, test pairs {sizes}; the search runs on fold 1")
    return tuple(folds)
