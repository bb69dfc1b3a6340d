"""Any interactions table (CSV, TSV or Parquet) with named columns, plus an optional item-text CSV
and an optional item-entity CSV (one ``item, entity`` link per row: genres, tags, brands...).

User and item ids are read as strings, so that ids like ``007`` survive and the ids of the
interactions and of the item-text file always match. A timestamp column may hold numbers (seconds)
or dates (parsed, then turned into seconds since 1970). Without a rating column every row is an
implicit positive (rating NaN), and so is a row whose rating cell is empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.files import default_dir, find_file, read_table, require_dir
from recsys.data.interactions import Interactions, entity_frame, make_frame
from recsys.errors import RecsysError

DEFAULT_NAMES = ("interactions.csv", "interactions.tsv", "interactions.parquet")
PARQUET_SUFFIXES = (".parquet", ".pq")


def load_generic(
    data_dir: str | Path | None = None,
    *,
    path: str | Path | None = None,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    sep: str = ",",
    item_text_path: str | Path | None = None,
    text_col: str = "text",
    entities_path: str | Path | None = None,
    entity_col: str = "entity",
    name: str = "generic",
) -> Interactions:
    """Interactions from one table with named columns.

    Args:
        data_dir: folder of the files; relative ``path`` / ``item_text_path`` are taken inside it.
        path: the interactions file (``.csv``/``.tsv``/other text with ``sep``, or
            ``.parquet``); default: ``interactions.{csv,tsv,parquet}`` in ``data_dir``.
        user_col, item_col: id columns.
        rating_col: numeric rating column; None makes every row an implicit positive.
        timestamp_col: time column (seconds, or dates); None leaves timestamps NaN.
        sep: field separator of a text file (``.tsv`` files default to a tab).
        item_text_path: optional CSV with columns ``item_col`` and ``text_col``.
        text_col: text column of ``item_text_path``.
        entities_path: optional CSV with columns ``item_col`` and ``entity_col``, one link of an
            item to an entity (an attribute value) per row; an item may have several rows.
        entity_col: entity column of ``entities_path``.
        name: dataset name recorded in the result.
    """
    directory, path = _locate(data_dir, path)
    columns = [c for c in (user_col, item_col, rating_col, timestamp_col) if c is not None]
    table = _read_interactions(path, columns, sep, user_col, item_col)
    for col in (user_col, item_col):
        empty = table[col].isna().to_numpy()
        if empty.any():
            raise RecsysError(
                f"{path}: data row {int(empty.argmax()) + 1} has no {col}; fix or remove that row"
            )
    ratings = _ratings(table, path, rating_col) if rating_col else None
    frame = make_frame(
        table[user_col].astype(str).to_numpy(),
        table[item_col].astype(str).to_numpy(),
        ratings.to_numpy(np.float64) if ratings is not None else None,
        _seconds(table[timestamp_col], path, timestamp_col) if timestamp_col else None,
    )
    text: dict[str, str] = {}
    if item_text_path is not None:
        text = _item_text(_inside(directory, item_text_path), item_col, text_col)
    links = None
    if entities_path is not None:
        links = _item_entities(_inside(directory, entities_path), item_col, entity_col)
    return Interactions(name, frame, text, str(path), links)


def _locate(data_dir: str | Path | None, path: str | Path | None) -> tuple[Path | None, Path]:
    """The data folder (None when only ``path`` is given) and the interactions file's path."""
    directory = None
    if data_dir is not None or path is None:
        hint = f"it must hold one of {list(DEFAULT_NAMES)}, or pass the option path=FILE"
        directory = require_dir(default_dir("generic", data_dir, hint), "generic", hint)
    if path is None:
        found = find_file(directory, DEFAULT_NAMES)
        if found is None:
            raise RecsysError(
                f"dataset 'generic': none of {list(DEFAULT_NAMES)} in {directory}; pass the "
                "option path=FILE naming the interactions file"
            )
        path = found
    return directory, _inside(directory, path)


def _read_interactions(
    path: Path, columns: list[str], sep: str, user_col: str, item_col: str
) -> pd.DataFrame:
    """The ``columns`` of a Parquet or delimited text file, ids of a text file as strings."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path, columns)
    if not path.is_file():
        raise RecsysError(f"dataset 'generic': interactions file {path} not found")
    return read_table(
        path,
        columns=columns,
        sep="\t" if path.suffix.lower() == ".tsv" and sep == "," else sep,
        dtype={user_col: str, item_col: str},
    )


def _ratings(table: pd.DataFrame, path: Path, rating_col: str) -> pd.Series:
    """The rating column as numbers (NaN where empty); a RecsysError for a non-number."""
    ratings = pd.to_numeric(table[rating_col], errors="coerce")
    bad = ratings.isna() & table[rating_col].notna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise RecsysError(
            f"{path}: {rating_col} on data row {row + 1} is {table[rating_col].iloc[row]!r}, "
            "expected a number; fix that row or pass the right rating_col"
        )
    return ratings


def _item_text(text_path: Path, item_col: str, text_col: str) -> dict[str, str]:
    """Item id -> text from the item-text CSV; rows without an id are skipped."""
    if not text_path.is_file():
        raise RecsysError(f"dataset 'generic': item text file {text_path} not found")
    items = read_table(text_path, columns=(item_col, text_col), dtype={item_col: str})
    items = items.dropna(subset=[item_col])
    return dict(zip(items[item_col], items[text_col].fillna("").astype(str), strict=True))


def _item_entities(path: Path, item_col: str, entity_col: str) -> pd.DataFrame:
    """Item-entity links from the entities CSV; rows without an id or an entity are skipped."""
    if not path.is_file():
        raise RecsysError(f"dataset 'generic': item entities file {path} not found")
    table = read_table(
        path, columns=(item_col, entity_col), dtype=dict.fromkeys((item_col, entity_col), str)
    )
    table = table.dropna()
    return entity_frame(table[item_col].to_numpy(object), table[entity_col].to_numpy(object))


def _inside(directory: Path | None, path: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if directory is None or path.is_absolute() else directory / path


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise RecsysError(f"dataset 'generic': interactions file {path} not found")
    try:
        import pyarrow.parquet as pq

        found = pq.read_schema(path).names
    except (OSError, ValueError) as exc:
        raise RecsysError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in columns if c not in found]
    if missing:
        raise RecsysError(
            f"{path}: wrong columns: expected {columns}, found {found}; pass the right "
            "user_col/item_col/rating_col/timestamp_col options"
        )
    return pd.read_parquet(path, columns=columns)


def _seconds(values: pd.Series, path: Path, col: str) -> np.ndarray:
    """Timestamps as float seconds: numbers as they are, dates since 1970-01-01 UTC."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(np.float64)
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values
    else:
        dates = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise RecsysError(
            f"{path}: {col} on data row {row + 1} is {values.iloc[row]!r}, neither a number "
            "nor a date; fix or remove that row"
        )
    if getattr(dates.dt, "tz", None) is None:
        dates = dates.dt.tz_localize("UTC")
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return ((dates - epoch) / pd.Timedelta(seconds=1)).to_numpy(np.float64)
