"""LightGCN propagation speed: torch.sparse CSR vs torch-geometric's LGConv, forward + backward.

Usage: python benchmarks/propagation.py [--interactions N] [--dim 64] [--layers 3] [--threads 2]

Prints ms per propagation (K layers, mean of layer outputs) forward only and forward + backward,
for each implementation, on the ML-100K training graph (or a synthetic one of N interactions).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from bench_data import ml100k_split, synthetic_of_size

from recsys.models.lightgcn import normalized_adjacency, propagate


def layer_mean(conv: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, layers: int):
    total = x
    for _ in range(layers):
        x = conv(x)
        total = total + x
    return total / (layers + 1)


def implementations(adjacency: torch.Tensor, layers: int) -> dict[str, Callable]:
    from torch_geometric.nn import LGConv

    coo = adjacency.to_sparse_coo().coalesce()
    edge_index, edge_weight = coo.indices(), coo.values()
    conv = LGConv(normalize=False)  # weights precomputed once, as in our model
    return {
        "torch.sparse CSR, symmetric backward (ours)": lambda x: propagate(adjacency, x, layers),
        "torch.sparse.mm CSR, autograd backward": lambda x: layer_mean(
            lambda h: torch.sparse.mm(adjacency, h), x, layers
        ),
        "torch.sparse.mm COO": lambda x: layer_mean(lambda h: torch.sparse.mm(coo, h), x, layers),
        "PyG LGConv, edge_index + weights": lambda x: layer_mean(
            lambda h: conv(h, edge_index, edge_weight), x, layers
        ),
        "PyG LGConv, torch sparse CSR adj_t": lambda x: layer_mean(
            lambda h: conv(h, adjacency), x, layers
        ),
    }


def timed(fn: Callable[[], None], repeats: int) -> float:
    """Median ms per call: robust to other processes on a shared machine."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=None, help="synthetic set size")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    torch.set_num_threads(args.threads)
    if args.interactions:
        data, label = synthetic_of_size(args.interactions), f"synthetic {args.interactions:,}"
    else:
        data, label = ml100k_split(), "ml-100k"
    adjacency = normalized_adjacency(data.train, data.n_users, data.n_items)
    n = data.n_users + data.n_items
    print(
        f"{label}: {n:,} nodes, {adjacency.values().numel():,} nonzeros, dim {args.dim}, "
        f"{args.layers} layers, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    x = torch.randn(n, args.dim) * 0.1
    reference = propagate(adjacency, x, args.layers)
    print(f"{'implementation':46s} {'forward ms':>11s} {'fwd+bwd ms':>11s}")
    for name, fn in implementations(adjacency, args.layers).items():
        torch.testing.assert_close(fn(x), reference, rtol=1e-4, atol=1e-6)
        xg = x.clone().requires_grad_(True)

        def forward(fn=fn) -> None:
            with torch.no_grad():
                fn(x)

        def backward(fn=fn, xg=xg) -> None:
            fn(xg).square().sum().backward()

        print(
            f"{name:46s} {timed(forward, args.repeats):11.2f} {timed(backward, args.repeats):11.2f}"
        )


if __name__ == "__main__":
    main()
