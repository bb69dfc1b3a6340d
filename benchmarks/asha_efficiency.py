"""ASHA against no early stopping (FIFO): the same LightGCN space, the same sampled trials.

Both searches draw the same configurations (same root seed, seeded random search); prints the
epochs spent, the wall time and the best test NDCG@10 of each.

    python benchmarks/asha_efficiency.py [--num-samples 8] [--max-epochs 30]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from _sweep_bench import bench_config, workdir  # noqa: E402

from recsys.tuning.sweep import run_sweep  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=8)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = workdir()
    rows = []
    for scheduler in ("asha", "fifo"):
        cfg = bench_config(
            folder,
            num_samples=args.num_samples,
            max_epochs=args.max_epochs,
            name=scheduler,
            scheduler=scheduler,
            seed=args.seed,
        )
        outcome = run_sweep(cfg).outcomes[0]
        rows.append((scheduler, outcome))
    print(f"{args.num_samples} trials, up to {args.max_epochs} epochs each, MovieLens-100K")
    print(
        f"{'scheduler':<10} {'epochs':>7} {'wall s':>8} {'best val ndcg@10':>17} "
        f"{'best test ndcg@10':>18} {'best epoch':>11}"
    )
    for scheduler, o in rows:
        print(
            f"{scheduler:<10} {o.epochs:>7} {o.wall_seconds:>8.1f} {o.val['ndcg@10']:>17.4f} "
            f"{o.test['ndcg@10']:>18.4f} {o.best_epoch:>11}"
        )
    (_, asha), (_, fifo) = rows
    print(
        f"ASHA used {asha.epochs / fifo.epochs:.0%} of FIFO's epochs and "
        f"{asha.wall_seconds / fifo.wall_seconds:.0%} of its wall time"
    )


if __name__ == "__main__":
    main()
