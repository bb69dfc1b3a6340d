"""Sweep overhead: a 6-trial LightGCN search on MovieLens-100K, one trial at a time.

Space: dim 32 or 64, 2 or 3 layers, L2 and lr log-uniform (1e-5..1e-3, 1e-3..1e-2), batch 2048;
ASHA max_t 30, grace 5, reduction factor 2; one CPU per trial. Prints the total wall time, each
trial's start-up (driver starts the trial -> its first epoch starts) and the epochs trained.

    python benchmarks/overhead.py [--no-reuse-actors]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from _sweep_bench import StartupTimer, bench_config, workdir  # noqa: E402

from recsys.tuning.sweep import run_sweep  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-reuse-actors", action="store_true")
    args = parser.parse_args()
    started = time.time()
    folder = workdir()
    cfg = bench_config(
        folder,
        num_samples=6,
        max_epochs=30,
        name="overhead",
        cpus_per_trial=1,
        max_concurrent_trials=1,
        reuse_actors=not args.no_reuse_actors,
    )
    timer = StartupTimer()
    result = run_sweep(cfg, callbacks=[timer])
    total = time.time() - started
    outcome = result.outcomes[0]
    startups = list(timer.startup.values())
    print(f"reuse_actors:          {cfg.reuse_actors}")
    print(f"total wall:            {total:.1f} s (Ray start, search, test evaluation, outputs)")
    print(f"search wall:           {result.state.search_seconds:.1f} s (Tuner.fit)")
    print(f"trials:                {outcome.trials}")
    print(f"epochs trained:        {outcome.epochs} (of {6 * 30} without early stopping)")
    print(f"seconds per epoch:     {outcome.seconds_per_epoch:.3f}")
    print(
        "trial start-up:        "
        + ", ".join(f"{s:.2f}" for s in startups)
        + f" s (median {statistics.median(startups):.2f}, max {max(startups):.2f})"
    )
    print(f"best test ndcg@10:     {outcome.test['ndcg@10']:.4f}")
    print(f"work directory:        {folder}")


if __name__ == "__main__":
    main()
