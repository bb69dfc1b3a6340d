"""Prepared splits cached on disk, keyed by a fingerprint of the source and every parameter."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.dataset import ColdItems, ItemEntities, Pairs, SplitData
from recsys.data.interactions import ENTITY_COLUMNS, Interactions

# Bumped whenever preparation or splitting changes what a given set of parameters produces.
FORMAT_VERSION = 1
ENTITIES_FILE = "item_entities.parquet"


@dataclass(frozen=True)
class PrepConfig:
    """Every parameter of preparation and splitting; each one is part of the fingerprint.

    Attributes:
        threshold: ratings >= threshold are positives (``None``: every interaction is one).
        min_user_interactions, min_item_interactions: iterative k-core bounds.
        split: one of ``recsys.data.split.STRATEGIES`` (``ratio``, ``loo``, ``temporal``,
            ``global``, ``files``, ``ml100k-fold``).
        ratios: train/val/test fractions (``None``: 0.8/0.1/0.1 for ratio and global,
            0.7/0.15/0.15 temporal).
        by_time: ``loo`` holds out each user's latest interactions instead of random ones.
        seed: seeds the split.
        low_ratings: ``drop`` (ratings below the threshold are left out) or ``seen`` (they are
            no positives, but are masked from the user's rankings: ``SplitData.seen_only``).
        train_file, val_file, test_file: ``files``: the split's own files (``val_file``
            optional); see ``recsys.data.predefined``. Their content, not their paths, enters
            the fingerprint.
        fold: ``ml100k-fold``: which of ML-100K's ``u1``..``u5`` base/test pairs (default 1);
            with ``folds``, which of the K folds this split is.
        val_share: ``files``/``ml100k-fold`` without a validation file, and ``folds``: the
            share of each user's training pairs carved out as validation (default 0.1).
        folds: K-fold cross-validation (``ratio``: seeded per-user folds; ``ml100k-fold``:
            ``u1``..``uK``); see ``recsys.data.folds``. None: one split.
        cold_share: ``cold_items``: the share of the items held out as new items (default
            0.2).
    """

    threshold: float | None = 4.0
    min_user_interactions: int = 1
    min_item_interactions: int = 1
    split: str = "ratio"
    ratios: tuple[float, float, float] | None = None
    by_time: bool = False
    seed: int = 42
    low_ratings: str = "drop"
    train_file: str | None = None
    val_file: str | None = None
    test_file: str | None = None
    fold: int | None = None
    val_share: float | None = None
    folds: int | None = None
    cold_share: float | None = None


# The parameters of FORMAT_VERSION 1; those added since enter the fingerprint only when they are
# not at their default, so that a split made before they existed keeps its fingerprint.
_FIRST_FIELDS = (
    "threshold",
    "min_user_interactions",
    "min_item_interactions",
    "split",
    "ratios",
    "by_time",
    "seed",
)
# Paths: the content of the files is hashed with the interactions (their ``split`` column).
_CONTENT_FIELDS = ("train_file", "val_file", "test_file")


def _fingerprinted(config: PrepConfig) -> dict:
    defaults = PrepConfig()
    return {
        k: v
        for k, v in asdict(config).items()
        if k not in _CONTENT_FIELDS and (k in _FIRST_FIELDS or v != getattr(defaults, k))
    }


def content_hash(data: Interactions) -> str:
    """Hash of the interactions, item texts and item entities themselves, wherever they were
    read from.

    A dataset without entities hashes exactly as before entities existed, so its cached splits
    stay valid; one with entities hashes them too, so an entry cached without them (or with
    other ones: genres instead of a knowledge graph) is never read for it.
    """
    h = hashlib.sha256()
    # A source's own split (split files) is part of the content.
    columns = ["user_id", "item_id", "rating", "timestamp"]
    frame = data.frame[columns + (["split"] if "split" in data.frame.columns else [])]
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    texts = sorted((str(k), str(v)) for k, v in data.item_text.items())
    h.update(json.dumps(texts).encode())
    if data.item_entities is not None:
        h.update(b"item_entities")
        links = data.item_entities[list(ENTITY_COLUMNS)]
        h.update(pd.util.hash_pandas_object(links, index=False).to_numpy().tobytes())
    return h.hexdigest()


def fingerprint(data: Interactions, config: PrepConfig) -> str:
    """Short hex fingerprint of the source content, its name and every preparation parameter."""
    key = {
        "format": FORMAT_VERSION,
        "dataset": data.name,
        "content": content_hash(data),
        "config": _fingerprinted(config),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _path(cache_dir: Path, fp: str) -> Path:
    return Path(cache_dir) / "splits" / fp


def save(data: SplitData, cache_dir: Path) -> Path:
    """Writes a split under ``cache_dir/splits/<fingerprint>/``, atomically (whole directory)."""
    final = _path(cache_dir, data.fingerprint)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{data.fingerprint}.", dir=final.parent))
    try:
        test = data.test if data.test is not None else Pairs.empty()
        seen_only = {}
        if data.seen_only is not None:
            seen_only = {
                "seen_only_users": data.seen_only.users,
                "seen_only_items": data.seen_only.items,
            }
        cold = {}
        if data.cold_items is not None:
            cold = {"cold_val_items": data.cold_items.val, "cold_test_items": data.cold_items.test}
        np.savez(
            tmp / "pairs.npz",
            train_users=data.train.users,
            train_items=data.train.items,
            val_users=data.val.users,
            val_items=data.val.items,
            test_users=test.users,
            test_items=test.items,
            **seen_only,
            **cold,
        )
        pd.DataFrame({"user_id": data.user_ids}).to_parquet(tmp / "users.parquet", index=False)
        pd.DataFrame({"item_id": data.item_ids, "text": data.item_text}).to_parquet(
            tmp / "items.parquet", index=False
        )
        entities = data.item_entities is not None
        if entities:
            data.item_entities.to_frame().to_parquet(tmp / ENTITIES_FILE, index=False)
        meta = {"name": data.name, "summary": data.summary, "item_entities": entities}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, final)
        except OSError:  # another process cached the same split first: theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load(cache_dir: Path, fp: str) -> SplitData | None:
    """The cached split of fingerprint ``fp``, or ``None`` when there is none or it cannot be
    read (a file cut short or altered: the entry is removed, and the split is made again)."""
    path = _path(cache_dir, fp)
    if not (path / "meta.json").exists():
        return None
    try:
        return _read(path, fp)
    except Exception as error:  # any unreadable file: the cache is only ever a copy
        warnings.warn(
            f"the cached split {path} cannot be read ({type(error).__name__}); it is made again",
            stacklevel=2,
        )
        shutil.rmtree(path, ignore_errors=True)
        return None


def _read(path: Path, fp: str) -> SplitData:
    meta = json.loads((path / "meta.json").read_text())
    with np.load(path / "pairs.npz") as z:
        pairs = {s: Pairs(z[f"{s}_users"], z[f"{s}_items"]) for s in ("train", "val", "test")}
        if "seen_only_users" in z.files:
            pairs["seen_only"] = Pairs(z["seen_only_users"], z["seen_only_items"])
        cold = None
        if "cold_val_items" in z.files:
            cold = ColdItems(z["cold_val_items"], z["cold_test_items"])
    items = pd.read_parquet(path / "items.parquet")
    entities = None
    # Entries written before entities existed have no key: their data had none.
    if meta.get("item_entities", False):
        entities = ItemEntities.from_frame(pd.read_parquet(path / ENTITIES_FILE))
    return SplitData(
        name=meta["name"],
        fingerprint=fp,
        user_ids=pd.read_parquet(path / "users.parquet")["user_id"].to_numpy(),
        item_ids=items["item_id"].to_numpy(),
        item_text=items["text"].tolist(),
        train=pairs["train"],
        val=pairs["val"],
        test=pairs["test"],
        summary=meta["summary"],
        seen_only=pairs.get("seen_only"),
        item_entities=entities,
        cold_items=cold,
    )
