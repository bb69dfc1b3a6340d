"""Sentence-BERT item embeddings: the disk cache, and one real encode with the packaged model."""

from __future__ import annotations

import numpy as np
import pytest

from recsys import text
from recsys.errors import RecsysError


@pytest.fixture
def counting_encoder(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replaces the Sentence-BERT call by a fake one; the list holds how many texts it encoded."""
    calls: list[int] = []

    def fake_encode(texts, model_name, batch_size, device):
        calls.append(len(texts))
        rng = np.random.default_rng(len(calls))
        return rng.normal(size=(len(texts), 8)).astype(np.float32) * 3.0

    monkeypatch.setattr(text, "_encode", fake_encode)
    return calls


def test_cache_is_hit_on_second_call(tmp_path, counting_encoder):
    first = text.encode_texts(["a", "b", "c"], cache_dir=tmp_path)
    second = text.encode_texts(["a", "b", "c"], cache_dir=tmp_path)
    assert counting_encoder == [3]
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_cache_key_depends_on_texts_and_model(tmp_path, counting_encoder):
    text.encode_texts(["a", "b"], cache_dir=tmp_path)
    text.encode_texts(["ab"], cache_dir=tmp_path)
    text.encode_texts(["a", "b"], model_name="other-model", cache_dir=tmp_path)
    assert counting_encoder == [2, 1, 2]
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_cache_dir_from_environment(tmp_path, monkeypatch, counting_encoder):
    monkeypatch.setenv("RECSYS_TUNE_CACHE", str(tmp_path))
    text.encode_texts(["x"])
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 1


def test_cache_dir_falls_back_to_the_data_home(tmp_path, monkeypatch, counting_encoder):
    monkeypatch.delenv("RECSYS_TUNE_CACHE", raising=False)
    monkeypatch.setenv("RECSYS_TUNE_DATA", str(tmp_path))
    assert text.default_cache_dir() == tmp_path / "embeddings"


def test_corrupt_cache_file_is_recomputed(tmp_path, counting_encoder):
    path = text.cache_path(["a", "b"], text.DEFAULT_MODEL, tmp_path)
    path.write_bytes(b"not an npy file")
    out = text.encode_texts(["a", "b"], cache_dir=tmp_path)
    assert counting_encoder == [2]
    assert out.shape == (2, 8)
    np.testing.assert_array_equal(np.load(path), out)


def test_no_texts_is_a_clear_error(tmp_path):
    with pytest.raises(RecsysError, match="no texts"):
        text.encode_texts([], cache_dir=tmp_path)


def test_with_item_embeddings_returns_a_copy(tmp_path, blocks, counting_encoder):
    out = text.with_item_embeddings(blocks, cache_dir=tmp_path)
    assert blocks.item_embeddings is None
    assert out.item_embeddings.shape == (blocks.n_items, 8)
    assert out.train is blocks.train
    text.with_item_embeddings(blocks, cache_dir=tmp_path)
    assert counting_encoder == [blocks.n_items]


def test_packaged_model_is_resolved_locally():
    source, local = text.resolve_model(text.DEFAULT_MODEL)
    assert local
    assert source.endswith("model")


@pytest.fixture(scope="module")
def real_embeddings(tmp_path_factory) -> np.ndarray:
    """One real encode with the packaged all-MiniLM-L6-v2 (the model is loaded once)."""
    texts = ["a cute little puppy", "a small young dog", "quarterly corporate tax report"]
    return text.encode_texts(texts, cache_dir=tmp_path_factory.mktemp("emb"), device="cpu")


def test_real_encode_shape_norm_and_similarity(real_embeddings):
    assert real_embeddings.shape == (3, 384)
    assert real_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(real_embeddings, axis=1), 1.0, rtol=1e-5)
    sims = real_embeddings @ real_embeddings.T
    assert sims[0, 1] > sims[0, 2] + 0.2
    assert sims[0, 1] > sims[1, 2] + 0.2
