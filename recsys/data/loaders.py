"""The dataset registry: dataset name -> loader, and :func:`load_interactions`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from recsys.data.amazon import load_amazon2023
from recsys.data.generic import load_generic
from recsys.data.goodbooks import load_goodbooks
from recsys.data.interactions import Interactions
from recsys.data.movielens import load_ml1m, load_ml10m, load_ml100k
from recsys.data.synthetic import load_synthetic
from recsys.errors import RecsysError

# Each loader takes ``data_dir`` first, then keyword options, and returns raw Interactions.
DATASETS: dict[str, Callable[..., Interactions]] = {
    "ml-100k": load_ml100k,
    "ml-1m": load_ml1m,
    "ml-10m": load_ml10m,
    "goodbooks-10k": load_goodbooks,
    "amazon2023": load_amazon2023,
    "generic": load_generic,
    "synthetic": load_synthetic,
}


def dataset_options(name: str) -> list[str]:
    """The keyword options the loader of dataset ``name`` accepts (besides ``data_dir``)."""
    params = inspect.signature(_loader(name)).parameters
    return [p for p in params if p != "data_dir"]


def check_options(name: str, options: dict[str, object]) -> None:
    """Raises a one-line RecsysError unless ``options`` are options of dataset ``name``'s loader
    with values of the types its defaults have (and pass the loader's own ``check_options``,
    where it has one); loads nothing, so a sweep checks them before Ray starts."""
    loader = _loader(name)
    params = inspect.signature(loader).parameters
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise RecsysError(
            f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; its options are "
            f"{allowed}"
        )
    for key, value in options.items():
        default = params[key].default
        kind = (
            type(default)
            if default is not None and default is not inspect.Parameter.empty
            else None
        )
        if (
            kind is None
            or isinstance(value, kind)
            and not (kind is int and isinstance(value, bool))
        ):
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        raise RecsysError(
            f"dataset option {key}={value!r}: {name} wants {kind.__name__} values like "
            f"{default!r}; fix --dataset-option {key}"
        )
    check = getattr(loader, "check_options", None)
    if check is not None:
        defaults = {k: p.default for k, p in params.items() if k in allowed}
        check(**{**defaults, **options})


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
    check_options(name, options)
    return loader(data_dir, **options)


def _loader(name: str) -> Callable[..., Interactions]:
    try:
        return DATASETS[name]
    except KeyError:
        raise RecsysError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None
