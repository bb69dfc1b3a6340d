"""The sweep's data step: the split loaded and checked against the sweep, item embeddings
attached when a model reads them, the trials' copy put into the object store once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from recsys.errors import RecsysError
from recsys.tuning import console
from recsys.tuning.config import (
    SweepConfig,
    check_cold_fits,
    check_fits_data,
    fold_configs,
    needs_item_embeddings,
    needs_item_entities,
)
from recsys.tuning.space import SearchSpace

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData


def load_data(cfg: SweepConfig, data: SplitData | None = None) -> SplitData:
    """``data``, or the split ``cfg`` names (cached by fingerprint), checked to fit the sweep.

    Raises:
        RecsysError: no test or validation pairs, a target cut-off above the catalogue.
    """
    if data is None:
        from recsys.data import load_split

        options = cfg.dataset_options
        data = load_split(cfg.dataset, cfg.data_dir, config=fold_configs(cfg)[0], **options)
    elif cfg.folds is not None:
        raise RecsysError(
            "--folds reads every fold from the dataset; a split passed in is one split only"
        )
    if data.test is None:
        raise RecsysError("the split has no test pairs; a sweep needs train, val and test")
    check_fits_data(cfg, data.n_items, len(data.val), len(data.test))
    if data.cold_items is not None:
        check_cold_fits(cfg, len(data.cold_items.val), len(data.cold_items.test))
    console.say(
        f"dataset {data.name}: {data.n_users} users, {data.n_items} items, "
        f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test pairs, "
        f"fingerprint {data.fingerprint}"
        + (
            f"; cold items {len(data.cold_items.val)} validation, {len(data.cold_items.test)} "
            "test (each split ranks among its own)"
            if data.cold_items is not None
            else ""
        )
    )
    return data


def check_entities(data: SplitData, spaces: Iterable[SearchSpace]) -> SplitData:
    """Before any trial: a model whose graph needs item entities has them in ``data``, which
    is returned.

    Raises:
        RecsysError: which model, and how to load a dataset with entities.
    """
    from recsys.models.base import require_item_entities

    for space in spaces:
        if needs_item_entities(space):
            require_item_entities(data, f"model {space.model!r}")
    return data


def for_trials(data: SplitData, spaces: Iterable[SearchSpace]) -> tuple[SplitData, Any]:
    """``data`` with item embeddings if any model reads them, and an object-store reference to
    its copy without the test pairs: the one copy every trial of the sweep reads."""
    import ray

    if data.item_embeddings is None and any(needs_item_embeddings(s) for s in spaces):
        from recsys.text import with_item_embeddings  # sentence-transformers is heavy

        data = with_item_embeddings(data)
    return data, ray.put(data.without_test())
