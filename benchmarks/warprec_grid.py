"""A peer's published grid, like for like: LightGCN on the ML-1M shape, 6 trials of 10 epochs.

WarpRec's 2026 benchmark runs LightGCN on MovieLens-1M over embedding {64, 128, 256} x layers
{2, 3}, 10 epochs each, batch 8192, 6 trials. Here: the same grid (``grid:`` in a space file, so
the 6 trials are exactly its 6 points), 10 epochs, batch 8192, no early stopping (FIFO), on the
synthetic ML-1M shape (``--dataset synthetic --dataset-option shape=ml-1m``: 6,040 users x
3,706 items, ~1M interactions, the split of a default sweep), one sweep through
``run_sweep`` as ``launch/sweep.py`` runs it. Prints the wall time (Ray start-up, the search,
the test evaluation and the outputs), the search's own time, each trial's start-up (the driver
starting it -> its first epoch starting) and seconds per epoch, and the test NDCG@10 of the best
trial.

    python benchmarks/warprec_grid.py [--cpus-per-trial 1] [--epochs 10] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from _sweep_bench import StartupTimer, bench_config, workdir  # noqa: E402

from recsys.tuning.sweep import run_sweep  # noqa: E402

GRID_SPACE = """
budget:
  max_epochs: {{max_epochs}}
  grace_period: {{grace_period}}
  reduction_factor: {{reduction_factor}}
  eval_every: {{max_epochs}}
  num_samples: {{num_samples}}
params:
  dim: {{{{grid: [64, 128, 256]}}}}
  layers: {{{{grid: [2, 3]}}}}
  batch_size: 8192
  lr: {lr}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpus-per-trial", type=int, default=1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    a = p.parse_args()
    started = time.time()
    folder = workdir()
    cfg = bench_config(
        folder,
        num_samples=6,
        max_epochs=a.epochs,
        grace_period=a.epochs,
        name="warprec-grid",
        space=GRID_SPACE.format(lr=a.lr),
        dataset="synthetic",
        dataset_options={"shape": "ml-1m"},
        scheduler="fifo",
        cpus_per_trial=a.cpus_per_trial,
        command="benchmarks/warprec_grid.py",
    )
    timer = StartupTimer()
    result = run_sweep(cfg, callbacks=[timer])
    total = time.time() - started
    outcome = result.outcomes[0]
    startups = sorted(timer.startup.values())
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{datetime.date.today()}; LightGCN grid dim {{64,128,256}} x layers {{2,3}}, "
        f"{a.epochs} epochs, batch 8192, lr {a.lr}, {a.cpus_per_trial} CPU per trial"
    )
    print(f"total wall:        {total:.1f} s (Ray start-up, search, test evaluation, outputs)")
    print(f"search wall:       {result.search_seconds:.1f} s (Tuner.fit)")
    print(f"trials:            {outcome.trials}")
    print(f"epochs trained:    {outcome.epochs}")
    print(f"seconds per epoch: {outcome.seconds_per_epoch:.2f} (mean over the trials' epochs)")
    print(
        "trial start-up:    "
        + ", ".join(f"{s:.2f}" for s in startups)
        + f" s (median {statistics.median(startups):.2f})"
    )
    print(f"best config:       {outcome.config}")
    print(f"best test NDCG@10: {outcome.test.get('ndcg@10', float('nan')):.4f}")
    print(f"results in {folder}")


if __name__ == "__main__":
    main()
