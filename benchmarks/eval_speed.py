"""Full-ranking evaluation speed: 50k users x 20k items with a random dense scorer.

Prints the wall time of the whole evaluation and users per second. The scorer is a dot product
of random 64-d user and item embeddings (a dense score row per user, like any factor model);
each user has about 40 training items (masked) and about 5 held-out items.

    python benchmarks/eval_speed.py [--users 50000] [--items 20000] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from recsys.data.dataset import Pairs
from recsys.evaluate import user_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--train-per-user", type=int, default=40)
    parser.add_argument("--heldout-per-user", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    per_user = args.train_per_user + args.heldout_per_user
    keys = np.unique(
        np.repeat(np.arange(args.users), per_user) * args.items
        + rng.integers(0, args.items, args.users * per_user)
    )
    heldout_mask = rng.random(keys.shape[0]) < args.heldout_per_user / per_user
    train = Pairs(keys[~heldout_mask] // args.items, keys[~heldout_mask] % args.items)
    heldout = Pairs(keys[heldout_mask] // args.items, keys[heldout_mask] % args.items)

    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    users_emb = torch.randn(args.users, args.dim, generator=gen).to(device)
    items_emb = torch.randn(args.items, args.dim, generator=gen).to(device)

    def score(users: torch.Tensor) -> torch.Tensor:
        return users_emb[users] @ items_emb.T

    start = time.perf_counter()
    result = user_metrics(score, heldout, [train], args.users, args.items, device=device).means()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, device {device}"
    )
    print(
        f"users evaluated: {result['users']:,} x items {args.items:,} "
        f"(train pairs {len(train):,}, held-out pairs {len(heldout):,})"
    )
    print(f"full-ranking evaluation: {elapsed:.2f} s, {result['users'] / elapsed:,.0f} users/s")
    print(
        f"sanity (random scorer): ndcg@10 = {result['ndcg@10']:.5f}, "
        f"coverage@10 = {result['coverage@10']:.3f}"
    )


if __name__ == "__main__":
    main()
