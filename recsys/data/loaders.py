"""The dataset registry: dataset name -> loader, and :func:`load_interactions`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from recsys.data.amazon import load_amazon2023
from recsys.data.generic import load_generic
from recsys.data.goodbooks import load_goodbooks
from recsys.data.interactions import Interactions
from recsys.data.movielens import load_ml1m, load_ml100k
from recsys.data.synthetic import load_synthetic
from recsys.errors import RecsysError

# Each loader takes ``data_dir`` first, then keyword options, and returns raw Interactions.
DATASETS: dict[str, Callable[..., Interactions]] = {
    "ml-100k": load_ml100k,
    "ml-1m": load_ml1m,
    "goodbooks-10k": load_goodbooks,
    "amazon2023": load_amazon2023,
    "generic": load_generic,
    "synthetic": load_synthetic,
}


def dataset_options(name: str) -> list[str]:
    """The keyword options the loader of dataset ``name`` accepts (besides ``data_dir``)."""
    params = inspect.signature(_loader(name)).parameters
    return [p for p in params if p != "data_dir"]


def load_interactions(
    name: str, data_dir: str | Path | None = None, **options: object
) -> Interactions:
    """Loads dataset ``name`` as raw interactions.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: folder of the dataset's files (see each loader); None lets the loader find or
            fetch them.
        options: loader options, e.g. ``category`` for ``amazon2023`` or ``n_users`` for
            ``synthetic``.
    """
    loader = _loader(name)
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise RecsysError(
            f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; its options are "
            f"{allowed}"
        )
    return loader(data_dir, **options)


def _loader(name: str) -> Callable[..., Interactions]:
    try:
        return DATASETS[name]
    except KeyError:
        raise RecsysError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None
