"""Prints how long the synthetic generator takes, and what it makes, at growing sizes; and, per
shape preset (``shape=ml-1m``...), the published statistics beside the generated ones with the
time and peak memory of generation, preparation and split.

python benchmarks/synthetic_scale.py          # 100k, 1M and 5M interactions
python benchmarks/synthetic_scale.py --10m    # also 10M (100k users x 50k items)
python benchmarks/synthetic_scale.py --shapes # every preset, each in a process of its own
python benchmarks/synthetic_scale.py --shape goodbooks  # one preset
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np

from recsys.data.synthetic import SHAPES, make_synthetic

SIZES = [  # (users, items, interactions)
    (5_000, 2_000, 100_000),
    (20_000, 10_000, 1_000_000),
    (50_000, 25_000, 5_000_000),
]
TEN_MILLION = (100_000, 50_000, 10_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--10m", dest="ten_million", action="store_true", help="add 10M")
    parser.add_argument("--shapes", action="store_true", help="every shape preset")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="one shape preset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.shape:
        return shape_row(args.shape, args.seed)
    if args.shapes:
        print(SHAPE_HEADER)
        for name in SHAPES:  # a process each: peak RSS is per process
            subprocess.run([sys.executable, __file__, "--shape", name, "--seed", str(args.seed)])
        return None
    sizes = SIZES + ([TEN_MILLION] if args.ten_million else [])
    print(f"{'users':>8} {'items':>7} {'asked':>10} {'made':>10} {'seconds':>8} "
          f"{'top10% items':>12} {'max item':>9} {'peak RSS':>9}")  # fmt: skip
    for n_users, n_items, n in sizes:
        start = time.perf_counter()
        data = make_synthetic(n_users, n_items, n, seed=args.seed)
        seconds = time.perf_counter() - start
        counts = np.sort(np.bincount(data.frame["item_id"], minlength=n_items))[::-1]
        share = counts[: n_items // 10].sum() / counts.sum()
        rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{n_users:>8} {n_items:>7} {n:>10} {len(data.frame):>10} {seconds:>8.2f} "
              f"{share:>12.1%} {counts[0]:>9} {rss_gib:>7.2f}GiB")  # fmt: skip
    return None


SHAPE_HEADER = (
    f"{'shape':<10} {'':<9} {'users':>7} {'items':>6} {'pairs':>10} {'min/u':>6} "
    f"{'median/u':>8} {'max/u':>6} {'max/item':>8} {'med/item':>8} {'item Gini':>9} {'top1%':>6} "
    f"{'gen s':>6} {'prep+split s':>12} {'peak RSS':>9}"
)


def gini(counts: np.ndarray) -> float:
    """Gini index of item counts: 0 when equal, (n - 1) / n when one item has all."""
    ordered = np.sort(counts).astype(np.float64)
    n = len(ordered)
    return float(((2 * np.arange(1, n + 1) - n - 1) * ordered).sum() / (n * ordered.sum()))


def shape_row(name: str, seed: int) -> None:
    """Generates, prepares and splits shape ``name``; prints its targets and what it made."""
    from recsys.data import load_split
    from recsys.data.loaders import load_interactions

    shape = SHAPES[name]
    started = time.perf_counter()
    raw = load_interactions("synthetic", shape=name, seed=seed)
    generated = time.perf_counter()
    load_split(raw, use_cache=False)
    prepared = time.perf_counter()
    users = np.bincount(raw.frame["user_id"])
    items = np.bincount(raw.frame["item_id"], minlength=shape.n_items)
    top = np.sort(items)[::-1][: max(1, shape.n_items // 100)].sum() / items.sum()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{name:<10} {'published':<9} {shape.n_users:>7} {shape.n_items:>6} "
          f"{shape.n_interactions:>10} {shape.min_per_user:>6} {shape.median_per_user:>8} "
          f"{shape.max_per_user:>6} {shape.max_per_item:>8} {shape.median_per_item:>8g} {'-':>9} "
          f"{'-':>6}")  # fmt: skip
    print(f"{'':<10} {'generated':<9} {len(users):>7} {int((items > 0).sum()):>6} "
          f"{len(raw.frame):>10} {users.min():>6} {np.median(users):>8.0f} {users.max():>6} "
          f"{items.max():>8} {np.median(items):>8g} {gini(items):>9.3f} {top:>6.1%} "
          f"{generated - started:>6.1f} {prepared - generated:>12.1f} {rss:>7.2f}GiB",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
