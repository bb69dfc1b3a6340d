"""Datasets: load raw interactions, prepare implicit positives, split, cache.

``load_split`` is the one entry point the rest of the project uses::

    data = load_split("ml-100k")            # cached after the first call
    data.train, data.val, data.test         # Pairs of contiguous indices
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.data import predefined
from recsys.data.cache import PrepConfig, fingerprint
from recsys.data.cache import load as load_cached
from recsys.data.cache import save as save_cached
from recsys.data.dataset import ColdItems, ItemEntities, Pairs, SplitData
from recsys.data.files import data_home
from recsys.data.folds import split_fold
from recsys.data.interactions import Interactions
from recsys.data.prepare import Prepared, check_low_ratings, low_rated, prepare
from recsys.data.split import split


def build_split(raw: Interactions, config: PrepConfig, fp: str | None = None) -> SplitData:
    """Prepares and splits raw interactions (no cache involved).

    For ``config.split`` ``files`` / ``ml100k-fold``, ``raw`` must carry the source's own split
    (a ``split`` column: see :func:`recsys.data.predefined.with_split_files`).
    """
    check_low_ratings(config.low_ratings)
    prepared = prepare(
        raw, config.threshold, config.min_user_interactions, config.min_item_interactions
    )
    if config.folds is not None and config.split == "ratio":
        fold = 1 if config.fold is None else config.fold
        parts = split_fold(prepared, config.folds, fold, config.seed, config.val_share)
    else:
        parts = split(
            prepared,
            config.split,
            config.ratios,
            config.seed,
            config.by_time,
            config.val_share,
            config.cold_share,
        )
    seen_only = None
    if config.low_ratings == "seen":
        seen_only = Pairs(*low_rated(raw.frame, config.threshold, prepared))
    n_users, n_items = len(prepared.user_ids), len(prepared.item_ids)
    n_pos = len(prepared.users)
    summary = {
        **raw.summary(),
        "positives": prepared.counts["positives"],
        "after_k_core": prepared.counts["k_core"],
        "users_prepared": n_users,
        "items_prepared": n_items,
        "density_prepared": n_pos / (n_users * n_items),
        "train": len(parts.train),
        "val": len(parts.val),
        "test": len(parts.test),
        "val_users": int(len(set(parts.val.users.tolist()))),
        "test_users": int(len(set(parts.test.users.tolist()))),
        **parts.counts,
        **_entity_summary(prepared),
    }
    if seen_only is not None:
        summary["seen_only"] = len(seen_only)
    return SplitData(
        name=raw.name,
        fingerprint=fp or fingerprint(raw, config),
        user_ids=prepared.user_ids,
        item_ids=prepared.item_ids,
        item_text=prepared.item_text,
        train=parts.train,
        val=parts.val,
        test=parts.test,
        summary=summary,
        seen_only=seen_only,
        item_entities=prepared.item_entities,
        cold_items=parts.cold,
    )


def _entity_summary(prepared: Prepared) -> dict:
    links = prepared.item_entities
    if links is None:
        return {}
    return {
        "entities_prepared": links.n_entities,
        "item_entity_links_prepared": len(links),
        "items_with_entities": int(np.unique(links.items).size),
    }


def load_split(
    dataset: str | Interactions,
    data_dir: str | Path | None = None,
    config: PrepConfig | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    **loader_options,
) -> SplitData:
    """Loads, prepares and splits a dataset, reusing the on-disk cache when it matches.

    Args:
        dataset: a dataset name known to ``recsys.data.loaders`` or raw interactions.
        data_dir: directory of the source files, for datasets read from disk.
        config: preparation and split parameters (default :class:`PrepConfig`). With split
            files (``files``, ``ml100k-fold``), the interactions are the files' and the dataset
            gives its name and item texts (see :mod:`recsys.data.predefined`).
        cache_dir: where splits (and downloads) are cached (default ``~/.cache/recsys-tune``).
        use_cache: read and write the split cache.
        loader_options: passed to the dataset's loader.
    """
    config = config or PrepConfig()
    cache_dir = data_home(cache_dir)
    name = dataset.name if isinstance(dataset, Interactions) else dataset
    split_files = predefined.check_config(config, name, data_dir)
    if isinstance(dataset, Interactions):
        raw = dataset
    else:
        from recsys.data.loaders import dataset_options, load_interactions

        if "cache_dir" in dataset_options(dataset):
            loader_options.setdefault("cache_dir", cache_dir)
        raw = load_interactions(dataset, data_dir, **loader_options)
    if split_files:
        raw = predefined.with_split_files(raw, split_files)
    fp = fingerprint(raw, config)
    if use_cache and (cached := load_cached(cache_dir, fp)) is not None:
        return cached
    data = build_split(raw, config, fp)
    if use_cache:
        save_cached(data, cache_dir)
    return data


def load_folds(
    dataset: str | Interactions,
    data_dir: str | Path | None = None,
    config: PrepConfig | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    **loader_options,
) -> list[SplitData]:
    """Every fold of ``config.folds`` (see :mod:`recsys.data.folds`), fold 1 first, each a
    :func:`load_split` of its own (cached by its fingerprint).

    Raises:
        RecsysError: bad fold parameters; folds whose users or items differ (every fold must
            rank the same catalogue for the same users, so that they compare user by user).
    """
    from recsys.data.folds import fold_config
    from recsys.errors import RecsysError

    config = config or PrepConfig()
    if config.folds is None:
        raise RecsysError("load_folds needs PrepConfig.folds (--folds K)")
    splits = [
        load_split(
            dataset, data_dir, fold_config(config, config.folds, f), cache_dir, use_cache,
            **loader_options,
        )
        for f in range(1, config.folds + 1)
    ]  # fmt: skip
    first = splits[0]
    for f, other in enumerate(splits[1:], 2):
        if not (
            np.array_equal(first.user_ids, other.user_ids)
            and np.array_equal(first.item_ids, other.item_ids)
        ):
            raise RecsysError(
                f"fold {f} of {first.name} has other users or items than fold 1 "
                f"({other.n_users}/{other.n_items} against {first.n_users}/{first.n_items}): "
                "its files are not folds of one dataset"
            )
    return splits


__all__ = [
    "ColdItems",
    "Interactions",
    "ItemEntities",
    "Pairs",
    "PrepConfig",
    "SplitData",
    "build_split",
    "load_folds",
    "load_split",
]
