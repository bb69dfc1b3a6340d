"""The cold-item table: a finished ``--split cold_items`` sweep's leaderboard beside chance.

    python launch/sweep.py --split cold_items --results-dir results/cold \\
        --models hybrid_vae,lightgcn_text,semantic,two_tower,ease,lightgcn,ials,popularity
    python benchmarks/cold_start.py results/cold

Prints each model's test NDCG@10 and Recall@10 among the cold test items (the cold-start
protocol), its NDCG@10 among every item, the paired tests against the best, and, for the models
that cannot score an item without interactions, their status. The last row is chance: the
expected NDCG@10 and Recall@10 of a uniformly random order of the cold test items for the same
users (Monte Carlo over ``--draws`` orders), which is what a collaborative model's scores of items
it never saw amount to at best.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

K = 10


def chance(split: pd.DataFrame, draws: int, seed: int = 0) -> tuple[float, float]:
    """Expected (NDCG@K, Recall@K) of a random ranking of the cold test items, over the test
    users, each user's relevant items its test items."""
    cold_test = split[(split["split"] == "test") & split["cold_item"]]
    n = cold_test["item_id"].nunique()
    relevant = cold_test.groupby("user_id").size().to_numpy()
    rng = np.random.default_rng(seed)
    discounts = 1 / np.log2(np.arange(2, K + 2))
    ideal = np.cumsum(discounts)[np.minimum(relevant, K) - 1]
    ndcg, recall = np.zeros(len(relevant)), np.zeros(len(relevant))
    for _ in range(draws):
        # Each user's relevant items land on random distinct ranks among n: a hit at rank r < K
        # with probability given by sampling ranks without replacement.
        ranks = np.argsort(rng.random((len(relevant), n)), axis=1)[:, :K]  # items at ranks 0..K-1
        hits = ranks < relevant[:, None]  # items 0..r-1 stand for the user's relevant ones
        ndcg += (hits * discounts).sum(1) / ideal
        recall += hits.sum(1) / relevant
    return float(ndcg.mean() / draws), float(recall.mean() / draws)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results_dir")
    p.add_argument("--draws", type=int, default=200)
    a = p.parse_args()
    folder = Path(a.results_dir)
    board = pd.read_csv(folder / "leaderboard.csv")
    split = pd.read_parquet(folder / "split.parquet")
    if "cold_item" not in split:
        sys.exit(f"{folder} is not a --split cold_items sweep (split.parquet has no cold_item)")
    n_cold = split.loc[split["cold_item"], "item_id"].nunique()
    n_test = split.loc[(split["split"] == "test") & split["cold_item"], "item_id"].nunique()
    print(f"{n_cold} cold items ({n_test} with test pairs); leaderboard of {folder}")
    cols = {
        "test_ndcg_at_10": "NDCG@10 (cold)",
        "test_ndcg_at_10_ci_low": "low",
        "test_ndcg_at_10_ci_high": "high",
        "test_recall_at_10": "Recall@10 (cold)",
        "test_all_ndcg_at_10": "NDCG@10 (all items)",
        "p_wilcoxon": "p Wilcoxon",
        "status": "status",
    }
    shown = board[["model", *[c for c in cols if c in board]]].rename(columns=cols)
    ndcg, recall = chance(split, a.draws)
    shown.loc[len(shown)] = {"model": "chance (random order)", "NDCG@10 (cold)": ndcg,
                             "Recall@10 (cold)": recall}  # fmt: skip
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep=""))


if __name__ == "__main__":
    main()
