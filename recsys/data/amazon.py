"""Amazon Reviews 2023 (McAuley lab): one category's reviews, items keyed by ``parent_asin``.

Files, from https://amazon-reviews-2023.github.io: ``<Category>.jsonl`` with one review per line
(``rating``, ``user_id``, ``parent_asin``, ``timestamp`` in milliseconds, ``verified_purchase``,
...) and ``meta_<Category>.jsonl`` with one product per line (``parent_asin``, ``title``,
``store``, ``categories``, ``features``, ``description``, ...), either possibly gzipped
(``.jsonl.gz``). The item text is built from the product's title, store, categories, first
features and the start of its description. Its entities (``Interactions.item_entities``) are its
categories (``category:<name>``, every level of the path) and its store (``store:<name>``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pj

from recsys.data.files import default_dir, find_file, require_dir
from recsys.data.interactions import Interactions, entity_frame, make_frame
from recsys.errors import RecsysError

URL = "https://amazon-reviews-2023.github.io"
HINT = f"it must hold <Category>.jsonl(.gz) and meta_<Category>.jsonl(.gz) from {URL}"
REVIEW_FIELDS = ("user_id", "parent_asin", "rating", "timestamp")
REVIEW_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("parent_asin", pa.string()), ("rating", pa.float64())]
    + [("timestamp", pa.float64()), ("verified_purchase", pa.bool_())]
)
META_SCHEMA = pa.schema(
    [("parent_asin", pa.string()), ("title", pa.string()), ("main_category", pa.string())]
    + [("store", pa.string())]
    + [(name, pa.list_(pa.string())) for name in ("categories", "features", "description")]
)
BLOCK_BYTES = 16 << 20  # a record must fit in one block; product descriptions can be long
SUFFIXES = (".jsonl", ".jsonl.gz")
MAX_TEXT_CHARS = 1000  # Sentence-BERT reads only the first 256 word pieces anyway


def load_amazon2023(
    data_dir: str | Path | None = None,
    *,
    category: str | None = None,
    reviews_path: str | Path | None = None,
    meta_path: str | Path | None = None,
    verified_only: bool = False,
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
    """
    reviews, meta = _resolve_paths(data_dir, category, reviews_path, meta_path)
    table = _read_jsonl(reviews, REVIEW_SCHEMA, required=REVIEW_FIELDS)
    if verified_only:
        table = table[table["verified_purchase"].fillna(False).astype(bool).to_numpy()]
    frame = make_frame(
        table["user_id"].astype(str).to_numpy(),
        table["parent_asin"].astype(str).to_numpy(),
        table["rating"].to_numpy(np.float64),
        table["timestamp"].to_numpy(np.float64) / 1000.0,
    )
    products = _read_jsonl(meta, META_SCHEMA, required=("parent_asin",))
    products = products[products["parent_asin"].isin(frame["item_id"].unique()).to_numpy()]
    records = products.to_dict("records")
    text = {str(product["parent_asin"]): product_text(product) for product in records}
    return Interactions("amazon2023", frame, text, str(reviews), product_links(records))


def product_links(products: list[dict]) -> pd.DataFrame:
    """Item-entity links of the products' categories (each level of the path) and store."""
    items, names = [], []
    for product in products:
        own = [f"category:{c}" for c in _strings(product.get("categories"))]
        store = _plain(product.get("store"))
        own += [f"store:{store}"] if store else []
        items += [str(product["parent_asin"])] * len(own)
        names += own
    return entity_frame(np.asarray(items, dtype=object), np.asarray(names, dtype=object))


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


def _read_jsonl(path: Path, schema: pa.Schema, required: tuple[str, ...]) -> pd.DataFrame:
    """The ``schema`` fields of a JSONL file (others skipped), checked for ``required`` ones.

    pyarrow's multithreaded parser is about ten times faster than ``json.loads`` per line; a file
    it rejects (a field whose type varies, a syntax error) is read again line by line, which
    tolerates the former and locates the latter.
    """
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            table = pj.read_json(
                stream,
                read_options=pj.ReadOptions(block_size=BLOCK_BYTES),
                parse_options=pj.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="ignore"
                ),
            )
        frame = table.to_pandas()
    except pa.ArrowInvalid:
        frame = _read_jsonl_slowly(path, schema)
    except OSError as exc:
        raise RecsysError(f"{path}: cannot read it ({exc}); check the file") from None
    for field in required:
        absent = frame[field].isna().to_numpy()
        if absent.all() and len(frame):
            raise RecsysError(
                f"{path}: wrong fields: expected {list(required)}, found {_first_keys(path)}; is "
                "it an Amazon Reviews 2023 file?"
            )
        if absent.any():
            raise RecsysError(
                f"{path}: record {int(absent.argmax()) + 1} has no {field}; fix or remove it"
            )
    return frame


def _read_jsonl_slowly(path: Path, schema: pa.Schema) -> pd.DataFrame:
    """Like :func:`_read_jsonl`'s fast path, one ``json.loads`` per line, exact about errors."""
    names = schema.names
    numbers = {f.name for f in schema if pa.types.is_floating(f.type)}
    columns: dict[str, list] = {name: [] for name in names}
    try:
        with _open(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise RecsysError(
                        f"{path}: malformed JSON on line {number} ({exc}); fix or remove that line"
                    ) from None
                if not isinstance(record, dict):
                    raise RecsysError(f"{path}: line {number} is not a JSON object; fix it")
                for name in names:
                    value = record.get(name)
                    if name in numbers and not (value is None or _is_number(value)):
                        raise RecsysError(
                            f"{path}: line {number} has {name} {value!r}, expected a number; "
                            "fix or remove that line"
                        )
                    columns[name].append(value)
    except (OSError, EOFError) as exc:
        raise RecsysError(f"{path}: cannot read it ({exc}); check the file") from None
    except UnicodeDecodeError as exc:
        raise RecsysError(f"{path}: not UTF-8 text (byte {exc.start}); check the file") from None
    frame = pd.DataFrame(columns)
    for name in numbers:
        frame[name] = pd.to_numeric(frame[name]).astype(np.float64)
    return frame


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _first_keys(path: Path) -> list[str]:
    """Field names of the file's first record, for error messages."""
    try:
        with _open(path) as handle:
            record = json.loads(handle.readline())
        return sorted(record) if isinstance(record, dict) else []
    except (OSError, EOFError, ValueError):
        return []
