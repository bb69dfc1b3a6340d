"""Retrieve-then-rerank (``recsys.rerank``, ``launch/rerank.py``): the re-ordering, the list
metrics and the profiles on hand-computed cases; a tiny cross-encoder the test builds and saves
scores pairs as its own network does; a finished sweep's recommendations re-ranked end to end in a
real process, with the retriever's figures equal to the sweep's evaluator's."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.dataset import Pairs, SplitData
from recsys.errors import RecsysError
from recsys.metrics import metric_key
from recsys.rerank import RerankConfig, Reranker, list_metrics, profiles, reorder

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("rerank_launcher", ROOT / "launch" / "rerank.py")
launcher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launcher)
WORDS = "drama comedy space war love robot horse city night ocean".split()


def tiny_data() -> SplitData:
    texts = [f"{WORDS[i % len(WORDS)]} film {i}" for i in range(6)]
    return SplitData(
        name="tiny",
        fingerprint="tiny",
        user_ids=np.array(["a", "b"], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(6)], dtype=object),
        item_text=texts,
        train=Pairs(np.array([0, 0, 1, 0]), np.array([0, 1, 2, 3])),
        val=Pairs.empty(),
        test=Pairs(np.array([0, 1, 1]), np.array([4, 4, 5])),
    )


def test_reorder_sorts_by_score_keeps_ties_in_retriever_order_and_short_lists_last():
    items = np.array([[3, 1, 2, -1], [5, 6, 7, 8]])
    scores = np.array([[0.1, 0.9, 0.1, 5.0], [1.0, 1.0, 2.0, 0.0]])
    ranked, ranked_scores = reorder(items, scores)
    assert ranked.tolist() == [[1, 3, 2, -1], [7, 5, 6, 8]]
    assert ranked_scores[0, -1] == -np.inf


def test_list_metrics_on_a_hand_computed_case():
    data = tiny_data()
    # User a's one test item (4) at rank 2; user b's two (4, 5) at ranks 1 and 3.
    got = list_metrics(data, np.array([0, 1]), np.array([[5, 4, -1], [4, 0, 5]]), (2, 3))
    assert got["recall@2"].tolist() == [1.0, 0.5]
    idcg_b = 1 + 1 / np.log2(3)
    np.testing.assert_allclose(got["ndcg@3"], [1 / np.log2(3), (1 + 1 / np.log2(4)) / idcg_b])


def test_profiles_are_the_users_training_texts_in_order_up_to_n():
    data = tiny_data()
    assert profiles(data, np.array([0, 1]), 2) == ["drama film 0; comedy film 1", "space film 2"]


def test_bad_configs_are_one_clear_error(tmp_path):
    with pytest.raises(RecsysError, match="not a folder"):
        RerankConfig(str(tmp_path / "missing"))
    with pytest.raises(RecsysError, match="at most 100"):
        RerankConfig(str(tmp_path), candidates=500)
    with pytest.raises(RecsysError, match="cannot load a cross-encoder"):
        Reranker(RerankConfig(str(tmp_path)))


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> Path:
    """A 1-layer BERT cross-encoder (random weights, a 40-word vocabulary), saved as a folder."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("cross-encoder")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ";", "film", *WORDS]
    vocab += [str(i) for i in range(10)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_pair_scores_are_the_networks_logits_for_each_pair(cross_encoder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    queries = ["drama film 0; space film 2", "robot film 7"]
    texts = [["love film 4", "war film 3"], ["city film 6", "robot film 7"]]
    got = Reranker(RerankConfig(str(cross_encoder), batch_size=3)).pair_scores(queries, texts)
    net = AutoModelForSequenceClassification.from_pretrained(cross_encoder).eval()
    tok = AutoTokenizer.from_pretrained(cross_encoder)
    flat = [(q, t) for q, row in zip(queries, texts, strict=True) for t in row]
    with torch.no_grad():
        enc = tok([q for q, _ in flat], [t for _, t in flat], padding=True, return_tensors="pt")
        logits = net(**enc).logits.squeeze(-1)
    # CrossEncoder applies a sigmoid to a one-label model's logit (its default activation).
    np.testing.assert_allclose(got.ravel(), torch.sigmoid(logits).numpy(), rtol=1e-5, atol=1e-6)
    assert got.shape == (2, 2)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    """A sweep's results folder as a finished sweep leaves it, for Popularity on synthetic data:
    its saved config, split cache and ``recommendations/popularity.parquet``."""
    from recsys.data import load_split
    from recsys.evaluate import user_metrics
    from recsys.models import MODELS
    from recsys.tuning.config import SweepConfig, prep_config
    from recsys.tuning.results import recommendations, write_parquet

    root = tmp_path_factory.mktemp("sweep")
    env = {"RECSYS_TUNE_DATA": str(root / "cache")}
    options = {"n_users": 60, "n_items": 40, "n_interactions": 1500}
    cfg = SweepConfig(dataset="synthetic", dataset_options=options, models=("popularity",))
    old = os.environ.get("RECSYS_TUNE_DATA")
    os.environ.update(env)
    try:
        data = load_split("synthetic", config=prep_config(cfg.prep), **options)
    finally:
        os.environ.pop("RECSYS_TUNE_DATA") if old is None else os.environ.update(
            RECSYS_TUNE_DATA=old
        )
    spec = MODELS["popularity"]
    model = spec.build(spec.make_config({}), data, torch.device("cpu"))
    results = root / "results"
    (results / ".sweep").mkdir(parents=True)
    state = {
        "name": "results",
        "results_dir": str(results),
        "config": cfg.to_dict(),
        "storage": str(root / "ray"),
        "tracking_uri": "sqlite:///unused.db",
        "experiment": "x",
        "status": "finished",
    }
    (results / ".sweep" / "sweep.json").write_text(json.dumps(state))
    write_parquet(recommendations(model, data), results / "recommendations" / "popularity.parquet")
    own = user_metrics(
        model.score, data.test, [data.train, data.val], data.n_users, data.n_items, ks=(10, 20)
    ).means()
    return results, env, own


def rerank(results: Path, env: dict, *flags: str) -> int:
    """``launch/rerank.py``'s ``main`` with ``env`` set (the split cache of the fixture)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return launcher.main(["--results-dir", str(results), *flags])
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.update({k: v})


def test_a_finished_sweeps_recommendations_reranked_end_to_end(finished_sweep, cross_encoder):
    results, env, own = finished_sweep
    done = rerank(
        results, env, "--model", "popularity", "--cross-encoder", str(cross_encoder),
        "--candidates", "30",
    )  # fmt: skip
    assert done == 0
    table = pd.read_csv(results / "rerank" / "popularity.csv").set_index("metric")
    # The retriever's order scored here is the sweep's own evaluation of the same model.
    for name in ("ndcg@10", "recall@20"):
        got = table.loc[metric_key("test", name), "retriever"]
        assert got == pytest.approx(own[name], abs=1e-6)
    lists = pd.read_parquet(results / "rerank" / "popularity.parquet")
    assert lists.groupby("user_id")["rank"].max().max() == 30
    assert lists.groupby("user_id")["score"].is_monotonic_decreasing.all()
    assert "re-ranked by" in (results / "rerank" / "popularity.md").read_text()


def test_bad_input_is_one_line_and_writes_nothing(finished_sweep, cross_encoder, tmp_path, capsys):
    results, env, _ = finished_sweep
    ce = str(cross_encoder)
    cases = [
        (results, ["--model", "ease", "--cross-encoder", ce], "no recommendations"),
        (tmp_path, ["--model", "popularity", "--cross-encoder", ce], "not a sweep"),
        (
            results,
            ["--model", "popularity", "--cross-encoder", str(tmp_path / "x")],
            "not a folder",
        ),
    ]
    for folder, flags, message in cases:
        assert rerank(folder, env, *flags) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rerank").exists()
