"""Fit time of the closed-form models on the MovieLens-100K split, on one core by default.

Per model (default config): the median and fastest ``spec.build`` (the whole fit) over the
repeats, and the time to score every user once. Torch, OpenMP and the BLAS SciPy uses are all
limited to ``--threads`` (set before they load).

    python benchmarks/fit_time.py [--models gfcf,rp3beta,userknn] [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="default: every closed-form model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)

    import torch

    from recsys.data import PrepConfig, load_split
    from recsys.models import MODELS

    torch.set_num_threads(args.threads)
    data = load_split("ml-100k", args.data_dir, PrepConfig(seed=42))
    names = (
        args.models.split(",") if args.models else [n for n, s in MODELS.items() if not s.trainable]
    )
    print(f"ml-100k: {data.n_users} users, {data.n_items} items, train {len(data.train)}")
    print(f"machine: {platform.machine()}, {args.threads} thread(s), {args.repeats} repeats")
    print(f"{'model':12} {'fit median':>10} {'fit min':>8} {'score all':>9}")
    device = torch.device("cpu")
    users = torch.arange(data.n_users)
    for name in names:
        spec = MODELS[name]
        cfg = spec.config_cls()
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model = spec.build(cfg, data, device)
            seconds.append(time.perf_counter() - start)
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            model.score(users)
        scoring = time.perf_counter() - start
        print(
            f"{name:12} {statistics.median(seconds):>9.3f}s {min(seconds):>7.3f}s {scoring:>8.3f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
