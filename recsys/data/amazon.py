"""Amazon Reviews 2023 (McAuley lab): one category's reviews, items keyed by ``parent_asin``.

Files, from https://amazon-reviews-2023.github.io: ``<Category>.jsonl`` with one review per line
(``rating``, ``user_id``, ``parent_asin``, ``timestamp`` in milliseconds, ``verified_purchase``,
...) and ``meta_<Category>.jsonl`` with one product per line (``parent_asin``, ``title``,
``store``, ``categories``, ``features``, ``description``, ...), either possibly gzipped
(``.jsonl.gz``). The item text is built from the product's title, store, categories, first
features and the start of its description.
"""

from __future__ import annotations

import gzip
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.files import default_dir, find_file, require_dir
from recsys.data.interactions import Interactions, make_frame
from recsys.errors import RecsysError

URL = "https://amazon-reviews-2023.github.io"
HINT = f"it must hold <Category>.jsonl(.gz) and meta_<Category>.jsonl(.gz) from {URL}"
REVIEW_FIELDS = ("user_id", "parent_asin", "rating", "timestamp")
TEXT_FIELDS = ("title", "main_category", "store", "categories", "features", "description")
SUFFIXES = (".jsonl", ".jsonl.gz")
MAX_TEXT_CHARS = 1000  # Sentence-BERT reads only the first 256 word pieces anyway


def load_amazon2023(
    data_dir: str | Path | None = None,
    *,
    category: str | None = None,
    reviews_path: str | Path | None = None,
    meta_path: str | Path | None = None,
    verified_only: bool = False,
    chunksize: int = 200_000,
) -> Interactions:
    """Ratings (1 to 5) of one Amazon Reviews 2023 category, with product texts.

    Args:
        data_dir: folder with the category's files; None means ``<data home>/amazon2023`` unless
            ``reviews_path`` is given.
        category: e.g. ``All_Beauty``: reads ``All_Beauty.jsonl(.gz)`` and
            ``meta_All_Beauty.jsonl(.gz)``. Optional when the folder holds one reviews file.
        reviews_path, meta_path: explicit files (relative ones are taken inside ``data_dir``);
            the meta file defaults to ``meta_<reviews file's name>`` beside the reviews.
        verified_only: keep only reviews with ``verified_purchase`` true.
        chunksize: reviews parsed per pandas chunk, to bound memory.
    """
    reviews, meta = _resolve_paths(data_dir, category, reviews_path, meta_path)
    fields = REVIEW_FIELDS + (("verified_purchase",) if verified_only else ())
    parts = []
    for chunk in _json_chunks(reviews, fields, chunksize):
        if verified_only:
            chunk = chunk[chunk["verified_purchase"].fillna(False).astype(bool)]
        parts.append(chunk[list(REVIEW_FIELDS)])
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=REVIEW_FIELDS)
    for col in ("rating", "timestamp"):
        values = pd.to_numeric(table[col], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise RecsysError(
                f"{reviews}: review {row + 1} has {col} {table[col].iloc[row]!r}, expected a "
                "number; fix or remove that line"
            )
        table[col] = values
    frame = make_frame(
        table["user_id"].astype(str).to_numpy(),
        table["parent_asin"].astype(str).to_numpy(),
        table["rating"].to_numpy(np.float64),
        table["timestamp"].to_numpy(np.float64) / 1000.0,
    )
    wanted = set(frame["item_id"].unique())
    text: dict[str, str] = {}
    for chunk in _json_chunks(meta, ("parent_asin",), chunksize, optional=TEXT_FIELDS):
        chunk = chunk[chunk["parent_asin"].isin(wanted)]
        for row in chunk.itertuples(index=False):
            text[str(row.parent_asin)] = product_text(row._asdict())
    return Interactions("amazon2023", frame, text, str(reviews))


def product_text(product: dict) -> str:
    """Title, store, category path, first features, start of the description; at most 1000 chars."""
    parts = [_plain(product.get("title"))]
    store = _plain(product.get("store"))
    if store:
        parts.append(f"Store: {store}")
    categories = _strings(product.get("categories"))
    category = " > ".join(categories) or _plain(product.get("main_category"))
    if category:
        parts.append(f"Category: {category}")
    features = _strings(product.get("features"))[:3]
    if features:
        parts.append("Features: " + "; ".join(features))
    description = " ".join(_strings(product.get("description")))
    if description:
        parts.append(f"Description: {description[:400]}")
    return ". ".join(p for p in parts if p)[:MAX_TEXT_CHARS]


def _plain(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple | np.ndarray):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]


def _resolve_paths(
    data_dir: str | Path | None,
    category: str | None,
    reviews_path: str | Path | None,
    meta_path: str | Path | None,
) -> tuple[Path, Path]:
    directory = None
    if data_dir is not None or reviews_path is None:
        directory = require_dir(default_dir("amazon2023", data_dir, HINT), "amazon2023", HINT)
    if reviews_path is not None:
        reviews = _inside(directory, reviews_path)
        if not reviews.is_file():
            raise RecsysError(f"dataset 'amazon2023': reviews file {reviews} not found; {HINT}")
    elif category is not None:
        reviews = find_file(directory, [category + s for s in SUFFIXES])
        if reviews is None:
            present = sorted(p.name for p in directory.glob("*.jsonl*"))
            raise RecsysError(
                f"dataset 'amazon2023': no {category}.jsonl or {category}.jsonl.gz in {directory} "
                f"(found {present}); pass the right category or --data-dir"
            )
    else:
        names = sorted(p.name for p in directory.iterdir() if p.is_file())
        found = [directory / n for n in names if n.endswith(SUFFIXES) and n[:5] != "meta_"]
        if len(found) != 1:
            names = [p.name for p in found]
            raise RecsysError(
                f"dataset 'amazon2023': {directory} holds {len(found)} reviews files {names}; "
                "choose one with the option category=<Category> (e.g. All_Beauty)"
            )
        reviews = found[0]
    if meta_path is not None:
        meta = _inside(directory, meta_path)
        if not meta.is_file():
            raise RecsysError(f"dataset 'amazon2023': meta file {meta} not found; {HINT}")
        return reviews, meta
    stem = reviews.name.removesuffix(".gz").removesuffix(".jsonl")
    meta = find_file(reviews.parent, ["meta_" + stem + s for s in SUFFIXES])
    if meta is None:
        raise RecsysError(
            f"dataset 'amazon2023': meta_{stem}.jsonl(.gz) not found beside {reviews}; download "
            f"it from {URL} or pass meta_path"
        )
    return reviews, meta


def _inside(directory: Path | None, path: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if directory is None or path.is_absolute() else directory / path


def _open(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _json_chunks(
    path: Path, fields: tuple[str, ...], chunksize: int, optional: tuple[str, ...] = ()
) -> Iterator[pd.DataFrame]:
    """Yields frames of ``fields`` (+ the ``optional`` ones, None when absent) of a JSONL file."""
    try:
        # dtype=False keeps ids like "0312..." as strings; convert_dates=False keeps the
        # "timestamp" field a number on pandas 2 (pandas 3 deprecates it, dtype=False suffices).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*convert_dates.*")
            reader = pd.read_json(
                path,
                lines=True,
                chunksize=chunksize,
                dtype=False,
                convert_dates=False,
                compression="infer",
                encoding="utf-8",
            )
        start = 0
        with reader:
            for chunk in reader:
                missing = [f for f in fields if f not in chunk.columns]
                if missing:
                    raise RecsysError(
                        f"{path}: wrong fields: expected {list(fields)}, found "
                        f"{list(chunk.columns)} (lines {start + 1}-{start + len(chunk)}); is it "
                        "an Amazon Reviews 2023 file?"
                    )
                absent = [f for f in optional if f not in chunk.columns]
                chunk = chunk.assign(**{f: None for f in absent})
                yield chunk[list(fields + optional)]
                start += len(chunk)
    except UnicodeDecodeError as exc:
        raise RecsysError(f"{path}: not UTF-8 text (byte {exc.start}); check the file") from None
    except ValueError as exc:
        line = _first_bad_json_line(path)
        where = f"line {line}" if line else "a line"
        raise RecsysError(
            f"{path}: malformed JSON on {where} ({exc}); fix or remove that line"
        ) from None
    except (OSError, EOFError) as exc:
        raise RecsysError(f"{path}: cannot read it ({exc}); check the file") from None


def _first_bad_json_line(path: Path) -> int | None:
    """Number of the first line that is not a JSON object (only run once parsing has failed)."""
    try:
        with _open(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    if not isinstance(json.loads(line), dict):
                        return number
                except ValueError:
                    return number
    except (OSError, EOFError, UnicodeDecodeError):
        return None
    return None
