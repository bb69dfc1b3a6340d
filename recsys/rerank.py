"""Retrieve, then re-rank: a model's top-N candidates re-ordered by a cross-encoder.

The ML-100K notebook this project follows retrieves candidates with a recommender and re-ranks
them with a sentence-transformers ``CrossEncoder`` that reads (user profile, item text) pairs.
Here the candidates are a finished sweep's ``recommendations/<model>.parquet`` (each test user's
top 100, training and validation items already excluded), the user's profile is the text of
their training items, and the cross-encoder is given by path (nothing is downloaded). The
re-ranked lists are scored on the test split with the project's metrics and compared with the
retriever's own order on the same users (paired tests, :mod:`recsys.stats`).

    rr = Reranker(RerankConfig(cross_encoder="path/to/ms-marco-MiniLM-L-6-v2", candidates=50))
    result = rr.run(data, recommendations)      # -> RerankResult
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError, require
from recsys.metrics import metric_key, ranking_metrics

if TYPE_CHECKING:
    from recsys.tuning.config import SweepConfig


@dataclass(frozen=True)
class RerankConfig:
    """How candidates are re-ranked.

    Args:
        cross_encoder: folder of a saved sentence-transformers ``CrossEncoder``.
        candidates: how many of the retriever's top items are re-ranked (at most the
            recommendations' 100).
        profile_items: how many of a user's training items, in the split's order, make the
            profile text.
        batch_size: (user, item) pairs per cross-encoder forward pass.
        max_length: tokens per pair (longer pairs are truncated).
        device: torch device of the cross-encoder.
    """

    cross_encoder: str
    candidates: int = 50
    profile_items: int = 10
    batch_size: int = 64
    max_length: int = 256
    device: str = "cpu"

    def __post_init__(self) -> None:
        require(self.candidates >= 2, f"candidates must be at least 2, got {self.candidates}")
        require(self.candidates <= 100, f"candidates must be at most 100, got {self.candidates}")
        require(self.profile_items >= 1, "profile_items must be at least 1")
        require(self.batch_size >= 1, "batch_size must be at least 1")
        require(self.max_length >= 8, "max_length must be at least 8")
        require(
            Path(self.cross_encoder).is_dir(),
            f"cross-encoder {self.cross_encoder!r} is not a folder: give the path of a saved "
            "sentence-transformers CrossEncoder (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2, "
            "downloaded with `huggingface-cli download`)",
        )


@dataclass(frozen=True)
class RerankResult:
    """The re-ranked lists and both orders' per-user test metrics (same users, same rows)."""

    recommendations: pd.DataFrame  # user_id, item_id, rank, score (the cross-encoder's)
    before: pd.DataFrame  # user_id + one column per metric, the retriever's order
    after: pd.DataFrame  # the same users, the re-ranked order


def candidate_matrix(
    recommendations: pd.DataFrame, data: SplitData, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The retriever's top ``n`` per user as indices.

    Returns:
        users (U,) user indices, items (U, n) item indices in rank order, -1 past a short list.
    """
    user_index = pd.Index(data.user_ids)
    item_index = pd.Index(data.item_ids)
    top = recommendations[recommendations["rank"] <= n]
    u = user_index.get_indexer(top["user_id"].to_numpy())
    i = item_index.get_indexer(top["item_id"].to_numpy())
    if (u < 0).any() or (i < 0).any():
        raise RecsysError(
            "the recommendations name users or items the split does not have: re-rank a "
            "sweep's recommendations with the dataset and split it was run on"
        )
    users, row = np.unique(u, return_inverse=True)
    items = np.full((len(users), n), -1, dtype=np.int64)
    items[row, top["rank"].to_numpy() - 1] = i
    return users, items


def profiles(data: SplitData, users: np.ndarray, n: int) -> list[str]:
    """Each user's profile: the texts of up to ``n`` of their training items, joined by ``"; "``."""
    train = data.train
    order = np.lexsort((np.arange(len(train.users)), train.users))
    sorted_users, sorted_items = train.users[order], train.items[order]
    starts = np.searchsorted(sorted_users, users)
    ends = np.minimum(np.searchsorted(sorted_users, users, side="right"), starts + n)
    text = data.item_text
    return [
        "; ".join(text[j] for j in sorted_items[s:e] if text[j])
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def reorder(items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates sorted by score, best first; ties keep the retriever's order; -1 slots last.

    Args:
        items: (U, N) candidate indices, -1 where a list is short.
        scores: (U, N) the re-ranker's scores of those candidates.
    """
    keyed = np.where(items >= 0, scores, -np.inf)
    order = np.argsort(-keyed, axis=1, kind="stable")
    return np.take_along_axis(items, order, 1), np.take_along_axis(keyed, order, 1)


def list_metrics(
    data: SplitData, users: np.ndarray, items: np.ndarray, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Per-user test metrics of ranked lists (the project's definitions, ``recsys.metrics``).

    Args:
        users: (U,) sorted user indices, each with test items.
        items: (U, N) ranked item indices, -1 past a short list.

    Returns:
        ``{"ndcg@10": (U,), ...}`` as numpy arrays.
    """
    assert data.test is not None, "list metrics are for the test users"
    n_items = data.n_items
    test_keys = np.unique(data.test.users * n_items + data.test.items)
    keys = users[:, None] * n_items + np.where(items >= 0, items, 0)
    hits = np.isin(keys, test_keys) & (items >= 0)
    test_users = test_keys // n_items
    at = np.searchsorted(users, test_users).clip(max=len(users) - 1)
    n_relevant = np.bincount(at[users[at] == test_users], minlength=len(users))
    metrics = ranking_metrics(
        torch.from_numpy(hits.astype(np.float32)), torch.from_numpy(n_relevant), ks
    )
    return {k: v.numpy() for k, v in metrics.items()}


class Reranker:
    """A saved cross-encoder, loaded once, that re-orders candidate lists (module docstring)."""

    def __init__(self, config: RerankConfig) -> None:
        from sentence_transformers import CrossEncoder

        self.config = config
        try:
            self.model = CrossEncoder(
                config.cross_encoder, device=config.device, max_length=config.max_length
            )
        except (OSError, ValueError) as e:
            raise RecsysError(
                f"cannot load a cross-encoder from {config.cross_encoder!r} "
                f"({type(e).__name__}): give the folder of a saved sentence-transformers "
                "CrossEncoder"
            ) from None

    def pair_scores(self, queries: list[str], texts: list[list[str]]) -> np.ndarray:
        """(U, N) scores of (queries[u], texts[u][j]); every list has the same length N."""
        width = len(texts[0]) if texts else 0
        pairs = [(q, t) for q, row in zip(queries, texts, strict=True) for t in row]
        if not pairs:
            return np.zeros((len(queries), width), dtype=np.float32)
        flat = self.model.predict(pairs, batch_size=self.config.batch_size, show_progress_bar=False)
        return np.asarray(flat, dtype=np.float32).reshape(len(queries), width)

    def run(
        self, data: SplitData, recommendations: pd.DataFrame, ks: tuple[int, ...] = (10, 20)
    ) -> RerankResult:
        """Re-ranks each test user's top ``candidates`` and scores both orders on test."""
        require(max(ks) <= self.config.candidates, "a cut-off is above --candidates")
        users, items = candidate_matrix(recommendations, data, self.config.candidates)
        text = np.asarray(list(data.item_text) + [""], dtype=object)
        texts = text[np.where(items >= 0, items, len(data.item_text))].tolist()
        scores = self.pair_scores(profiles(data, users, self.config.profile_items), texts)
        ranked, ranked_scores = reorder(items, scores)
        ids = pd.Series(data.user_ids[users], name="user_id")
        before = pd.concat([ids, pd.DataFrame(list_metrics(data, users, items, ks))], axis=1)
        after = pd.concat([ids, pd.DataFrame(list_metrics(data, users, ranked, ks))], axis=1)
        valid = ranked >= 0
        frame = pd.DataFrame(
            {
                "user_id": np.repeat(data.user_ids[users], ranked.shape[1]).reshape(ranked.shape)[
                    valid
                ],
                "item_id": data.item_ids[ranked[valid]],
                "rank": np.tile(np.arange(1, ranked.shape[1] + 1), (len(users), 1))[valid],
                "score": ranked_scores[valid].astype(np.float32),
            }
        )
        return RerankResult(frame, before, after)


def comparison(result: RerankResult, seed: int = 0) -> pd.DataFrame:
    """Per metric: the retriever's mean, the re-ranked mean with its bootstrap interval, the
    mean difference and the paired tests (``recsys.stats``), on the same users."""
    from recsys.stats import bootstrap_ci, paired_test

    rows = []
    for name in result.before.columns.drop("user_id"):
        before, after = result.before[name].to_numpy(), result.after[name].to_numpy()
        low, high = bootstrap_ci(after, seed=seed)
        test = paired_test(after, before)
        rows.append(
            {
                "metric": metric_key("test", name),
                "retriever": before.mean(),
                "reranked": after.mean(),
                "reranked_ci_low": low,
                "reranked_ci_high": high,
                "difference": test.mean_difference,
                "p_wilcoxon": test.wilcoxon_p,
                "p_ttest": test.ttest_p,
                "users": len(after),
            }
        )
    return pd.DataFrame(rows)


def rerank_sweep(
    results_dir: str | Path, model: str, config: RerankConfig, ks: tuple[int, ...] | None = None
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Re-ranks one model's recommendations of a finished sweep and writes ``rerank/``.

    The split is the sweep's own (its saved config, loaded through the split cache); files are
    written whole or not at all: ``rerank/<model>.parquet`` (the re-ranked lists),
    ``rerank/<model>.csv`` and ``.md`` (:func:`comparison`).

    Raises:
        RecsysError: not a sweep's results folder, no recommendations for ``model``, or a split
            that is not the sweep's.
    """
    from recsys.io import write_text_atomic
    from recsys.tuning.results import markdown_table, write_parquet
    from recsys.tuning.state import SweepState

    folder = Path(results_dir)
    require(
        (folder / ".sweep" / "sweep.json").is_file(),
        f"{str(folder)!r} is not a sweep's results folder (no .sweep/sweep.json): give the "
        "--results-dir of a finished sweep",
    )
    source = folder / "recommendations" / f"{model}.parquet"
    require(
        source.is_file(),
        f"the sweep in {str(folder)!r} has no recommendations for {model!r}: give a model of "
        f"its leaderboard ({', '.join(sorted(p.stem for p in source.parent.glob('*.parquet')))})",
    )
    cfg = SweepState.load(folder).config
    data = _sweep_split(cfg)
    require(bool(data.item_text) and any(data.item_text), "the dataset has no item text to rank")
    ks = tuple(ks or cfg.report_ks)
    result = Reranker(config).run(data, pd.read_parquet(source), ks)
    table = comparison(result, seed=cfg.seed)
    out = folder / "rerank"
    out.mkdir(exist_ok=True)
    files = {
        "recommendations": write_parquet(result.recommendations, out / f"{model}.parquet"),
        "table": out / f"{model}.csv",
        "markdown": out / f"{model}.md",
    }
    write_text_atomic(files["table"], table.to_csv(index=False))
    title = (
        f"# {model}: top {config.candidates} re-ranked by {Path(config.cross_encoder).name}\n\n"
        f"Profiles: up to {config.profile_items} training items per user. Paired tests: "
        "re-ranked against the retriever's order, user by user.\n\n"
    )
    write_text_atomic(files["markdown"], title + markdown_table(table))
    return table, files


def _sweep_split(cfg: SweepConfig) -> SplitData:
    """The split a sweep's config names, read through the cache like the sweep read it."""
    from recsys.data import load_split
    from recsys.tuning.config import prep_config

    options = cfg.dataset_options
    return load_split(cfg.dataset, cfg.data_dir, config=prep_config(cfg.prep), **options)
