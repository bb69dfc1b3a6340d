"""Trials per hour with 1, 0.5 and 0.25 GPU per trial (GPU only; on CPU it says so and exits 0).

The same LightGCN search (FIFO, fixed epochs) at each GPU share; fractional shares run several
trials on one GPU at once.

    python benchmarks/packing.py [--num-samples 8] [--max-epochs 10]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=8)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--shares", default="1,0.5,0.25")
    args = parser.parse_args()

    import ray

    from recsys.tuning.resources import ClusterShape

    ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False)
    cluster = ClusterShape.from_ray()
    if cluster.total_gpus == 0:
        print("no GPU in the Ray cluster: nothing to measure (packing needs a GPU)")
        return 0
    from _sweep_bench import bench_config, workdir

    from recsys.tuning.sweep import run_sweep

    folder = workdir()
    cpus = max(1.0, cluster.max_node_cpus // 8)
    print(f"{cluster.total_gpus:g} GPUs, {cluster.total_cpus:g} CPUs; {cpus:g} CPUs per trial")
    print(f"{'GPU/trial':>9} {'trials':>7} {'wall s':>8} {'trials/hour':>12}")
    for share in (float(s) for s in args.shares.split(",")):
        cfg = bench_config(
            folder,
            num_samples=args.num_samples,
            max_epochs=args.max_epochs,
            name=f"gpu{share:g}",
            scheduler="fifo",
            gpus_per_trial=share,
            cpus_per_trial=cpus,
        )
        outcome = run_sweep(cfg).outcomes[0]
        per_hour = outcome.trials / outcome.wall_seconds * 3600
        print(f"{share:>9g} {outcome.trials:>7} {outcome.wall_seconds:>8.1f} {per_hour:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
