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

from _sweep_bench import StartupTimer, workdir  # noqa: E402

from recsys.tuning.config import SweepConfig  # noqa: E402
from recsys.tuning.sweep import run_sweep  # noqa: E402

GRID_SPACE = """
budget:
  max_epochs: {epochs}
  grace_period: {epochs}
  reduction_factor: 2
  eval_every: {epochs}
  num_samples: 6
params:
  dim: {{grid: [64, 128, 256]}}
  layers: {{grid: [2, 3]}}
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
    spaces = folder / "spaces"
    spaces.mkdir()
    (spaces / "lightgcn.yaml").write_text(GRID_SPACE.format(epochs=a.epochs, lr=a.lr))
    cfg = SweepConfig(
        dataset="synthetic",
        dataset_options={"shape": "ml-1m"},
        models=("lightgcn",),
        space_dir=str(spaces),
        scheduler="fifo",
        cpus_per_trial=a.cpus_per_trial,
        tracking_uri=f"sqlite:///{folder}/mlflow.db",
        experiment="benchmarks",
        storage_path=str(folder / "ray"),
        results_dir=str(folder / "results"),
        name="warprec-grid",
        verbose=0,
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
