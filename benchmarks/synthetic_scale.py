"""Prints how long the synthetic generator takes, and what it makes, at growing sizes.

python benchmarks/synthetic_scale.py          # 100k, 1M and 5M interactions
python benchmarks/synthetic_scale.py --10m    # also 10M (100k users x 50k items)
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from recsys.data.synthetic import make_synthetic

SIZES = [  # (users, items, interactions)
    (5_000, 2_000, 100_000),
    (20_000, 10_000, 1_000_000),
    (50_000, 25_000, 5_000_000),
]
TEN_MILLION = (100_000, 50_000, 10_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--10m", dest="ten_million", action="store_true", help="add 10M")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
