"""LightGCN training speed: seconds per epoch on ML-100K and on synthetic sets of 100k-5M pairs.

Usage: python benchmarks/lightgcn_speed.py [--sizes 100000,1000000,5000000] [--threads 1,2]
           [--device cpu] [--model lightgcn] [--steps 40]

Exact training (the propagation recomputed at every step), embedding 64, 3 layers, batch 2048,
uniform negatives. ML-100K and sets whose epoch takes at most ``--steps`` steps are timed over
whole epochs (median of 3 after one warm-up epoch); larger sets over ``--steps`` steps after
warm-up, extrapolated to a full epoch (steps per epoch x median step time + the epoch's
negative sampling), and marked so.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
import warnings

import torch
from bench_data import ml100k_split, synthetic_of_size

from recsys.data.dataset import SplitData
from recsys.train import Trainer, resolve_device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_epoch(trainer: Trainer, max_steps: int) -> tuple[float, str]:
    device = trainer.device
    n_pairs = len(trainer.data.train)
    steps_per_epoch = math.ceil(n_pairs / trainer.cfg.batch_size)
    if steps_per_epoch <= max_steps:
        trainer.train_epoch()  # warm-up
        times = []
        for _ in range(3):
            sync(device)
            start = time.perf_counter()
            trainer.train_epoch()
            sync(device)
            times.append(time.perf_counter() - start)
        return statistics.median(times), "measured"
    # Too long to run whole epochs here: time the epoch's sampling, then single steps.
    users = trainer._train_users[torch.randperm(n_pairs, device=device)]
    sync(device)
    start = time.perf_counter()
    trainer.sampler.draw(users)
    sync(device)
    sampling = time.perf_counter() - start
    batches = trainer._pair_batches()
    for batch in itertools.islice(batches, 3):  # warm-up
        trainer._step(batch)
    times = []
    for batch in itertools.islice(batches, max_steps):
        sync(device)
        start = time.perf_counter()
        trainer._step(batch)
        sync(device)
        times.append(time.perf_counter() - start)
    estimate = sampling + steps_per_epoch * statistics.median(times)
    return estimate, f"extrapolated from {len(times)} steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="lightgcn")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--skip-ml100k", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    device = resolve_device(args.device)
    sets: list[tuple[str, SplitData]] = []
    if not args.skip_ml100k:
        sets.append(("ml-100k", ml100k_split()))
    for size in filter(None, args.sizes.split(",")):
        sets.append((f"synthetic {int(size):,}", synthetic_of_size(int(size))))
    config = {"dim": 64, "layers": 3, "batch_size": 2048}
    print(f"{args.model} {config}, device {device}, torch {torch.__version__}")
    print(f"{'data':20s} {'users':>7s} {'items':>7s} {'train':>9s} {'threads':>7s} {'s/epoch':>8s}")
    for label, data in sets:
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            trainer = Trainer(args.model, config, data, device=device, seed=0)
            seconds, how = seconds_per_epoch(trainer, args.steps)
            print(
                f"{label:20s} {data.n_users:7,d} {data.n_items:7,d} {len(data.train):9,d} "
                f"{threads:7d} {seconds:8.3f}  ({how})",
                flush=True,
            )


if __name__ == "__main__":
    main()
