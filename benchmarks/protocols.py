"""Full ranking against the sampled protocol, and the beyond-accuracy metrics, on MovieLens-100K.

The closed-form models with their default hyperparameters (fitted in seconds, no training), on
the default split (positives rating >= 4, per-user random 80/10/10, seed 42), scored on test the
way a sweep's final evaluation scores them (``recsys.tuning.scoring.EvalProtocol``): full
ranking, and each test item among 99 sampled negatives (drawn once from the root seed). Prints
one row per model, then the two orders and how many model pairs they rank the other way round.

    python benchmarks/protocols.py [--negatives 99] [--models ease,itemknn] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time

import torch

from recsys.data import PrepConfig, load_split
from recsys.train import Trainer
from recsys.tuning.config import SweepConfig
from recsys.tuning.leaderboard import order_agreement
from recsys.tuning.scoring import EvalProtocol

MODELS = ("popularity", "itemknn", "userknn", "ease", "rp3beta", "gfcf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--negatives", type=int, default=99)
    parser.add_argument("--seed", type=int, default=0, help="the sweep's root seed")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load_split("ml-100k", args.data_dir, PrepConfig(seed=42))
    cfg = SweepConfig(sampled_negatives=args.negatives, seed=args.seed)
    started = time.perf_counter()
    protocol = EvalProtocol.of(cfg, data)
    print(
        f"ml-100k: {data.n_users} users, {data.n_items} items, {len(data.test)} test pairs; "
        f"{args.negatives} negatives each drawn in {time.perf_counter() - started:.2f} s"
    )
    columns = ("ndcg@10", "sampled_ndcg@10", "sampled_hit@10")
    columns += ("coverage@10", "gini@10", "novelty@10", "arp@10")
    print(f"{'model':<11}" + "".join(f"{c:>17}" for c in columns) + f"{'test s':>9}")
    means = {}
    for model in args.models.split(","):
        trainer = Trainer(model, {}, data, seed=0)
        started = time.perf_counter()
        means[model] = protocol.test_users(trainer).means()
        seconds = time.perf_counter() - started
        print(
            f"{model:<11}"
            + "".join(f"{means[model][c]:>17.4f}" for c in columns)
            + f"{seconds:>9.2f}"
        )
    full = sorted(means, key=lambda m: -means[m]["ndcg@10"])
    sampled = sorted(means, key=lambda m: -means[m]["sampled_ndcg@10"])
    discordant, pairs = order_agreement(full, sampled)
    print(f"full ranking (NDCG@10):   {' > '.join(full)}")
    print(f"sampled (NDCG@10 of 100): {' > '.join(sampled)}")
    print(f"the orders disagree on {discordant} of {pairs} model pairs")


if __name__ == "__main__":
    main()
