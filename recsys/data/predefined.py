"""Splits that come with the data: split files a user already has, and ML-100K's five folds.

``--split files --train-file A --test-file B [--val-file C]`` reads the interactions from those
files, not from the dataset's own: the dataset still gives the name and the item texts (its
interactions are set aside). ``--split ml100k-fold --fold N`` is the same with GroupLens'
``uN.base`` / ``uN.test`` from the ML-100K folder given as ``--data-dir`` (the cached and RecBole
copies of ML-100K have no folds).

A split file is the GroupLens ``u.data`` format: one interaction a line, tab-separated
``user, item[, rating[, timestamp]]`` with no header (every line with the same number of
fields). Ids are read as the dataset's own ids: integers when the dataset's are (MovieLens),
strings otherwise, so that they meet the item texts.

The files' rows are tagged ``train``/``val``/``test`` in an extra ``split`` column of the raw
frame, then prepared like any dataset (threshold, dedupe keeping the earliest, k-core over all
files) and split as tagged by ``recsys.data.split``: without a validation file, a seeded share of
each user's training pairs becomes validation; held-out pairs of users left without a training
pair are dropped and counted; items only in the test file stay (cold items).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.files import read_table, read_text
from recsys.data.folds import check_folds
from recsys.data.interactions import COLUMNS, Interactions, make_frame
from recsys.data.split import PREDEFINED, check_val_share
from recsys.errors import RecsysError

log = logging.getLogger(__name__)

SPLIT_COLUMN = "split"
FOLDS = (1, 2, 3, 4, 5)
DEFAULT_FOLD = 1
ML100K_ZIP = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
_FIELDS_HINT = "tab-separated user, item[, rating[, timestamp]] with no header, like u1.base"


def check_config(config, dataset: str, data_dir: str | Path | None) -> dict[str, Path]:
    """Checks the split-file parameters of a ``PrepConfig`` and returns the files to read.

    Every file must exist and be readable; nothing is read yet.

    Args:
        config: a ``recsys.data.PrepConfig``.
        dataset: the dataset's name (``ml100k-fold`` needs ``ml-100k``).
        data_dir: the dataset's folder (``ml100k-fold`` reads its folds there).

    Returns:
        split name (``train``, ``val``, ``test``) -> file; empty for the other strategies.

    Raises:
        RecsysError: a parameter that does not fit the strategy, a missing or unreadable file.
    """
    files = {"train": config.train_file, "val": config.val_file, "test": config.test_file}
    given = [f"--{k}-file" for k, v in files.items() if v is not None]
    if config.folds is not None:
        check_folds(config)
    if config.split not in PREDEFINED:
        for flag, value in (("--fold", config.fold), ("--val-share", config.val_share)):
            if value is not None and config.folds is None:  # folds: its fold, its val share
                given.append(flag)
        if given:
            one = len(given) == 1
            raise RecsysError(
                f"{', '.join(given)} {'is' if one else 'are'} for --split files or ml100k-fold, "
                f"not --split {config.split}; drop {'it' if one else 'them'} or choose one of "
                "those splits"
            )
        if config.val_share is not None:
            check_val_share(config.val_share)
        return {}
    if config.ratios is not None:
        raise RecsysError(
            f"--ratios does not apply to --split {config.split}: its test pairs are the test "
            "file's; for the validation share of a train file use --val-share"
        )
    if config.val_share is not None:
        check_val_share(config.val_share)
    if config.split == "files":
        paths = _given_files(config, files)
    else:
        paths = _fold_files(config, dataset, data_dir, given)
    if paths.get("val") is not None and config.val_share is not None:
        raise RecsysError(
            "--val-share carves validation pairs from the train file, and --val-file gives them; "
            "drop one of the two"
        )
    for path in paths.values():
        _check_readable(path)
    return paths


def _given_files(config, files: dict[str, str | None]) -> dict[str, Path]:
    if config.fold is not None:
        raise RecsysError("--fold is for --split ml100k-fold; --split files reads the given files")
    missing = [f"--{k}-file" for k in ("train", "test") if files[k] is None]
    if missing:
        raise RecsysError(
            f"--split files needs {' and '.join(missing)} (and optionally --val-file): files "
            f"{_FIELDS_HINT}"
        )
    return {k: Path(v).expanduser() for k, v in files.items() if v is not None}


def _fold_files(
    config, dataset: str, data_dir: str | Path | None, given: list[str]
) -> dict[str, Path]:
    if given:
        raise RecsysError(
            f"--split ml100k-fold reads its files from the ML-100K folder; drop {', '.join(given)}"
            " (or use --split files)"
        )
    if dataset != "ml-100k":
        raise RecsysError(
            f"--split ml100k-fold is MovieLens-100K's own folds, not {dataset!r}'s; use "
            "--dataset ml-100k, or --split files with your own files"
        )
    fold = DEFAULT_FOLD if config.fold is None else config.fold
    if isinstance(fold, bool) or fold not in FOLDS:
        raise RecsysError(f"--fold must be one of 1, 2, 3, 4, 5 (ML-100K's u1..u5), got {fold!r}")
    names = (f"u{fold}.base", f"u{fold}.test")
    fix = f"pass --data-dir with the GroupLens ml-100k folder (unzip {ML100K_ZIP})"
    if data_dir is None:
        raise RecsysError(
            f"--split ml100k-fold reads {names[0]} and {names[1]}, which only the GroupLens "
            f"folder has (the cached and RecBole copies have no folds); {fix}"
        )
    directory = Path(data_dir).expanduser()
    for folder in (directory, directory / "ml-100k"):
        if all((folder / n).is_file() for n in names):
            return {"train": folder / names[0], "test": folder / names[1]}
    raise RecsysError(f"{directory} holds no {names[0]} and {names[1]}; {fix}")


def _check_readable(path: Path) -> None:
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise RecsysError(f"split file {path} {what}; check the path ({_FIELDS_HINT})")
    if not os.access(path, os.R_OK):
        raise RecsysError(f"split file {path} is not readable; fix its permissions")


def read_split_file(path: Path) -> pd.DataFrame:
    """One split file as a frame of :data:`~recsys.data.interactions.COLUMNS` (ids as strings;
    a missing rating or timestamp is NaN).

    Raises:
        RecsysError: an empty, undecodable or malformed file, naming the file and the line.
    """
    text = read_text(path)
    if not text.strip():
        raise RecsysError(f"split file {path} is empty; it must hold {_FIELDS_HINT}")
    first = text.lstrip("\n").split("\n", 1)[0].rstrip("\r")
    n = len(first.split("\t"))
    if not 2 <= n <= len(COLUMNS):
        raise RecsysError(
            f"split file {path}: line 1 has {n} tab-separated fields; expected {_FIELDS_HINT}"
        )
    table = read_table(
        text,
        columns=COLUMNS[:n],
        sep="\t",
        header=False,
        numeric=COLUMNS[2:n],
        dtype={"user_id": str, "item_id": str},
        quoting=csv.QUOTE_NONE,
        label=str(path),
    )
    for col in ("user_id", "item_id"):
        empty = table[col].isna().to_numpy()
        if empty.any():
            raise RecsysError(
                f"{path}: malformed line {int(empty.argmax()) + 1}: {col} is missing; fix or "
                "remove that line"
            )
    return make_frame(
        table["user_id"].to_numpy(),
        table["item_id"].to_numpy(),
        table["rating"].to_numpy(np.float64) if n > 2 else None,
        table["timestamp"].to_numpy(np.float64) if n > 3 else None,
    )


def with_split_files(raw: Interactions, paths: dict[str, Path]) -> Interactions:
    """``raw``'s name and item texts with the interactions of the split files, each row tagged
    with its split in the :data:`SPLIT_COLUMN` column (train rows first, so that a pair in two
    files with no timestamps is kept as training)."""
    frames = []
    for split in ("train", "val", "test"):
        if split in paths:
            frame = read_split_file(paths[split])
            frame[SPLIT_COLUMN] = split
            frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    for col in ("user_id", "item_id"):
        frame[col] = _as_dataset_ids(frame[col], raw.frame[col], col, paths)
    _warn_untexted(frame, raw)
    source = ", ".join(str(p) for p in paths.values())
    return Interactions(raw.name, frame, raw.item_text, f"split files {source} ({raw.source})")


def _as_dataset_ids(ids: pd.Series, own: pd.Series, col: str, paths: dict) -> pd.Series:
    """The files' ids in the dtype of the dataset's own, so that they meet its item texts."""
    if not pd.api.types.is_integer_dtype(own.dtype):
        return ids.astype(str)
    numbers = pd.to_numeric(ids, errors="coerce")
    bad = numbers.isna() | (numbers != numbers.round())
    if bad.any():
        raise RecsysError(
            f"split files {', '.join(map(str, paths.values()))}: {col} {ids[bad].iloc[0]!r} is "
            f"not an integer, and the dataset's {col}s are; give the dataset's own ids"
        )
    return numbers.astype(np.int64)


def _warn_untexted(frame: pd.DataFrame, raw: Interactions) -> None:
    """Warns when the files name items the dataset has no text for (another catalogue?)."""
    items = pd.Series(pd.unique(frame["item_id"]))
    missing = int((items.map(raw.item_text).fillna("") == "").sum())
    if raw.item_text and missing:
        log.warning(
            "split files: %s of their %s items have no text in dataset %r; is it the dataset "
            "the files come from?",
            f"{missing:,}",
            f"{len(items):,}",
            raw.name,
        )
