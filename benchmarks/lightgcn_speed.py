"""LightGCN training speed: seconds per epoch on ML-100K and on synthetic sets of 100k-5M pairs.

Usage: python benchmarks/lightgcn_speed.py [--sizes 100000,1000000,5000000,goodbooks]
           [--threads 1,2]
           [--device cpu] [--model lightgcn] [--steps 40] [--batch-sizes 2048,32768]
           [--profile] [--quality 1000000 --quality-seconds 300]

Exact training (the propagation recomputed at every step), embedding 64, 3 layers, uniform
negatives, batch 2048 unless ``--batch-sizes`` says otherwise. ML-100K and sets whose epoch takes
at most ``--steps`` steps are timed over whole epochs (median of 3 after one warm-up epoch);
larger sets over ``--steps`` steps after warm-up, extrapolated to a full epoch (steps per epoch x
median step time + the epoch's negative sampling), and marked so.

``--profile`` splits a step into forward, backward and optimizer (median ms over interleaved
steps), times one sparse product and prints its achieved GB/s next to the machine's memory
bandwidth (a NumPy copy of 256 MiB, measured in the same run), and the step's time with the
code of commit 8c1324f (one autograd node per layer, the gathered L2 term, unfused Adam)
against today's, interleaved, as a ratio. On a shared machine only ratios within one run compare.

``--quality N`` trains on the synthetic set of N pairs: first the default (batch 2048, lr 1e-3)
for ``--quality-seconds`` of training, then each ``--fast`` config (batch:lr) until it reaches the
default's best validation NDCG@10, and prints the training seconds each took (evaluation
excluded).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import statistics
import time
import warnings
from unittest import mock

import numpy as np
import torch
from bench_data import GOODBOOKS, ml100k_split, synthetic_of_size

import recsys.models.lightgcn as lightgcn
from recsys.data.dataset import SplitData
from recsys.train import Trainer, resolve_device

# Issue 21's targets, seconds per LightGCN epoch on a 2-core CPU.
TARGETS = {"synthetic 1,000,000": 3.0, "goodbooks shape": 60.0}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def memory_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """GB/s of a NumPy copy (read + write counted), the best of ``repeats``."""
    src = np.ones(mib << 20, dtype=np.uint8)
    dst = np.empty_like(src)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


class _SparseMM(torch.autograd.Function):
    """Commit 8c1324f's product: ``A @ x``, whose backward multiplies by the given ``A^T``."""

    @staticmethod
    def forward(ctx, adjacency, transpose, x):
        ctx.transpose = transpose
        return torch.sparse.mm(adjacency, x)

    @staticmethod
    def backward(ctx, grad):
        return None, None, torch.sparse.mm(ctx.transpose, grad)


def layer_by_layer(adjacency, x, layers, transpose=None):
    """The propagation of commit 8c1324f, verbatim: one autograd node per layer."""
    transpose = adjacency if transpose is None else transpose
    total = x
    for _ in range(layers):
        x = _SparseMM.apply(adjacency, transpose, x)
        total = total + x
    return total / (layers + 1) if layers else total


def loss_8c1324f(self, batch):
    """``LightGCN.loss`` of commit 8c1324f, verbatim (its L2 term gathers the batch's rows)."""
    self._cache = None
    x0 = self._layer0()
    nodes = torch.cat([batch.users, batch.pos + self.n_users, batch.neg + self.n_users])
    u, i, j = self._propagate(x0, dropped=self.training).index_select(0, nodes).chunk(3)
    bpr = torch.nn.functional.softplus((u * (j - i)).sum(dim=1)).mean()
    reg = x0.index_select(0, nodes).square().sum() / (2 * batch.users.shape[0])
    return {"loss": bpr + self.l2 * reg, "bpr": bpr, "l2": reg}


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


def step_parts(trainer: Trainer, batch) -> tuple[float, float, float]:
    """Seconds of one step's forward (loss), backward and optimizer update."""
    device = trainer.device
    times = [time.perf_counter()]
    losses = trainer.model.loss(batch)
    sync(device)
    times.append(time.perf_counter())
    trainer.optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    sync(device)
    times.append(time.perf_counter())
    trainer.optimizer.step()
    sync(device)
    times.append(time.perf_counter())
    return times[1] - times[0], times[2] - times[1], times[3] - times[2]


def profile(trainer: Trainer, steps: int) -> None:
    """Prints the step's parts, one sparse product's time and GB/s, and today's step against
    commit 8c1324f's (layer-by-layer propagation, unfused Adam; interleaved steps, medians)."""
    model, device = trainer.model, trainer.device
    adjacency = model.adjacency
    n, d = adjacency.shape[0], model.user_weight.shape[1]
    nnz = adjacency.values().numel()
    x = torch.randn(n, d, device=device)
    spmm = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        torch.sparse.mm(adjacency, x)
        sync(device)
        spmm.append(time.perf_counter() - start)
    spmm_s = statistics.median(spmm[1:])
    # Bytes a CSR product must move at least: values and column indices once, one gathered
    # (d,) row per entry, the output written once.
    moved = nnz * (4 + 4 + 4 * d) + 4 * n * d
    # 8c1324f's step: its propagation, and Adam without fusing (the optimizer is built then).
    with mock.patch.object(type(model), "fused_optimizer", False):
        before = Trainer(trainer.spec.name, dataclasses.asdict(trainer.cfg), trainer.data, seed=0)
    runs = {"today": (trainer, lightgcn.propagate), "8c1324f": (before, layer_by_layer)}
    parts: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
    batches = trainer._pair_batches()
    for batch in itertools.islice(batches, 2):  # warm-up
        trainer._step(batch)
        before._step(batch)
    for i, batch in enumerate(itertools.islice(batches, 2 * steps)):
        name = "8c1324f" if i % 2 else "today"
        runner, propagation = runs[name]
        loss = loss_8c1324f if name == "8c1324f" else lightgcn.LightGCN.loss
        with (
            mock.patch.object(lightgcn, "propagate", propagation),
            mock.patch.object(lightgcn.LightGCN, "loss", loss),
        ):
            parts[name].append(step_parts(runner, batch))
    medians = {
        name: [statistics.median(p[k] for p in runs) * 1e3 for k in range(3)]
        for name, runs in parts.items()
    }
    today, before = medians["today"], medians["8c1324f"]
    share = 2 * model.layers * spmm_s * 1e3 / sum(today)
    print(
        f"    one SpMM ({nnz:,} nnz, dim {d}): {spmm_s * 1e3:.1f} ms, {moved / spmm_s / 1e9:.1f} "
        f"GB/s moved; {2 * model.layers} per step = {share:.0%} of today's step"
    )
    for name, (fwd, bwd, opt) in (("today", today), ("8c1324f", before)):
        print(
            f"    step ({name:7s}): forward {fwd:6.1f}  backward {bwd:6.1f}  optimizer {opt:5.1f}"
            f"  total {fwd + bwd + opt:6.1f} ms"
        )
    print(f"    step ratio 8c1324f / today: {sum(before) / sum(today):.2f}")


def time_to_quality(data: SplitData, seconds: float, fast: list[tuple[int, float]]) -> None:
    """The default config's best validation NDCG@10 within ``seconds`` of training, and the
    training time each ``fast`` (batch, lr) config needs to reach it."""
    base = {"dim": 64, "layers": 3}
    target, base_time = None, 0.0
    configs = [(2048, 1e-3)] + fast
    for batch_size, lr in configs:
        trainer = Trainer("lightgcn", {**base, "batch_size": batch_size, "lr": lr}, data, seed=0)
        trained, best, reached = 0.0, 0.0, None
        limit = seconds if target is None else 10 * seconds
        while trained < limit and reached is None:
            start = time.perf_counter()
            trainer.train_epoch()
            trained += time.perf_counter() - start
            ndcg = trainer.evaluate("val", ks=(10,))["ndcg@10"]
            best = max(best, ndcg)
            if target is not None and ndcg >= target:
                reached = trained
            print(
                f"    batch {batch_size:6d} lr {lr:g}: epoch {trainer.epoch:3d}  "
                f"{trained:7.1f} s trained  val ndcg@10 {ndcg:.4f}",
                flush=True,
            )
        if target is None:
            target, base_time = best, trained
            print(f"  default: best val ndcg@10 {target:.4f} after {base_time:.1f} s of training")
        elif reached is None:
            print(f"  batch {batch_size} lr {lr:g}: did not reach {target:.4f} in {trained:.0f} s")
        else:
            print(
                f"  batch {batch_size} lr {lr:g}: reached {target:.4f} after {reached:.1f} s, "
                f"{reached / base_time:.3f} of the default's {base_time:.1f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="lightgcn")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-sizes", default="2048")
    parser.add_argument("--profile", action="store_true", help="per-step profile (see above)")
    parser.add_argument("--skip-ml100k", action="store_true")
    parser.add_argument("--quality", type=int, default=0, help="synthetic pairs (see above)")
    parser.add_argument("--quality-seconds", type=float, default=300.0)
    parser.add_argument("--fast", default="32768:1e-2", help="batch:lr,... for --quality")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    device = resolve_device(args.device)
    print(f"memory bandwidth (NumPy copy of 256 MiB): {memory_bandwidth():.1f} GB/s")
    if args.quality:
        torch.set_num_threads(int(args.threads.split(",")[-1]))
        fast = [(int(b), float(lr)) for b, lr in (c.split(":") for c in args.fast.split(","))]
        print(f"time to the default's quality, synthetic {args.quality:,}:")
        time_to_quality(synthetic_of_size(args.quality), args.quality_seconds, fast)
        return
    sets: list[tuple[str, SplitData]] = []
    if not args.skip_ml100k:
        sets.append(("ml-100k", ml100k_split()))
    for size in filter(None, args.sizes.split(",")):
        if size == "goodbooks":
            users, items, pairs = GOODBOOKS
            sets.append(("goodbooks shape", synthetic_of_size(pairs, shape=(users, items))))
        else:
            sets.append((f"synthetic {int(size):,}", synthetic_of_size(int(size))))
    print(f"{args.model} dim 64, 3 layers, device {device}, torch {torch.__version__}")
    print(
        f"{'data':20s} {'users':>7s} {'items':>7s} {'train':>9s} {'batch':>6s} {'threads':>7s} "
        f"{'s/epoch':>8s}"
    )
    for (label, data), batch_size in itertools.product(sets, args.batch_sizes.split(",")):
        config = {"dim": 64, "layers": 3, "batch_size": int(batch_size)}
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            trainer = Trainer(args.model, config, data, device=device, seed=0)
            seconds, how = seconds_per_epoch(trainer, args.steps)
            print(
                f"{label:20s} {data.n_users:7,d} {data.n_items:7,d} {len(data.train):9,d} "
                f"{int(batch_size):6d} {threads:7d} {seconds:8.3f}  ({how})",
                flush=True,
            )
            if args.profile and trainer.model.layers:
                profile(trainer, args.steps)
            target = TARGETS.get(label)
            if target is not None:
                verdict = "met" if seconds <= target else "NOT met"
                print(f"    target <= {target:g} s per epoch: {verdict} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
