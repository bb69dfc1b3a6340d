"""Served top-k through the FAISS item index against exact scoring: recall@10 and speed-up.

For each vector size and catalogue size, a synthetic dot-product model (``VectorScorer``) is served
twice, with the index (``ann_min_items=0``) and without it, and the same users are asked for
their top 10 through ``ServedModel.top_k`` (the served path without the request table's parsing):

- recall@10: share of the exact top 10 the index's answer holds, over ``--recall-users`` users;
  "by index": share of those users the index answered (the others were scored exactly);
- per query: median time of a one-user request; per batch: median time of a 100-user request;
  each as exact / index, the speed-up, measured in the same run on the same users;
- build: seconds to build the index (the first request that needs it pays them).

``--hnsw`` adds, per size, the index alone against FAISS's HNSW (``IndexHNSWFlat``, inner
product, M 32, efSearch 128) on the same vectors: recall@10 of the plain inner-product top 10
(nothing excluded), build seconds, ms per query and per 100 users: why serving uses IVF. HNSW
builds slowly (minutes at 500k items on one thread): use it with ``--sizes 50000,100000``.

Vectors: items in 256 clusters with a decaying spectrum (variance of coordinate j ~ 1/j, as
learned and text embeddings have); 64-d with log-normal norms (a factor model's item vectors),
384-d of unit norm (Sentence-BERT's). Each user has seen 10-70 items, half of them from two
clusters of their own taste and half anywhere; the user's vector is the mean of those items'
vectors plus a little noise (the semantic model's profile; a factor model's user vector is
likewise nowhere near one item). Seen items are excluded in both paths.

    python benchmarks/ann_serving.py [--dims 64,384] [--sizes 20000,100000,500000] [--threads 1]
        [--hnsw]

One thread by default: on a shared 2-core machine two threads per process stall each other's
parallel regions (an exact 5,000-item query took 22 ms with 2 threads and 0.4 ms with 1).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch

from recsys.ann import DEFAULT_MAX_SEEN, AnnConfig, ItemIndex, index_top_k, list_count
from recsys.data.dataset import Pairs, SplitData
from recsys.models.fixed import FixedVectors
from recsys.serving import ModelCard, ServedModel

CLUSTERS = 256


def synthetic(
    n_items: int, dim: int, n_users: int, seed: int = 0
) -> tuple[FixedVectors, SplitData]:
    """The model and its seen items (see the module docstring)."""
    rng = np.random.default_rng(seed)
    spectrum = (np.arange(1, dim + 1) ** -0.5).astype(np.float32)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32) * spectrum
    labels = rng.integers(0, CLUSTERS, n_items)
    items = rng.standard_normal((n_items, dim), dtype=np.float32)
    items *= 0.7 * spectrum
    items += centres[labels]
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    if dim < 128:
        items *= rng.lognormal(0, 0.3, (n_items, 1)).astype(np.float32)
    by_cluster = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[by_cluster], np.arange(CLUSTERS + 1))
    counts = rng.integers(10, 71, n_users)
    users = np.repeat(np.arange(n_users), counts)
    taste = rng.integers(0, CLUSTERS, (n_users, 2))[users, rng.integers(0, 2, users.shape[0])]
    in_taste = by_cluster[
        starts[taste]
        + (rng.random(users.shape[0]) * (starts[taste + 1] - starts[taste]))
        .astype(np.int64)
        .clip(0, n_items - 1)
    ]
    seen = np.where(
        rng.random(users.shape[0]) < 0.5, in_taste, rng.integers(0, n_items, users.size)
    )
    keys = np.unique(users * n_items + seen)
    users, seen = keys // n_items, keys % n_items
    profiles = np.zeros((n_users, dim), np.float32)
    np.add.at(profiles, users, items[seen])
    profiles /= np.bincount(users, minlength=n_users)[:, None]
    noise = rng.standard_normal(profiles.shape, dtype=np.float32) * spectrum
    profiles += 0.05 * noise * np.linalg.norm(profiles, axis=1, keepdims=True)
    data = SplitData(
        name="synthetic",
        fingerprint=f"synthetic-{n_items}-{dim}",
        user_ids=np.arange(n_users).astype(str).astype(object),
        item_ids=np.arange(n_items).astype(str).astype(object),
        item_text=[],
        train=Pairs(users, seen),
        val=Pairs.empty(),
        test=None,
    )
    return FixedVectors(torch.from_numpy(profiles), torch.from_numpy(items)), data


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds per call after one warm-up: robust to other processes on the machine."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n_items: int, dim: int, args: argparse.Namespace) -> dict[str, float]:
    model, data = synthetic(n_items, dim, args.users)
    card = ModelCard("dot", {}, 0, 1, data.name, data.fingerprint)
    index_served = ServedModel(card, model, data, ann=AnnConfig(min_items=0, nprobe=args.nprobe))
    exact_served = ServedModel(card, model, data, ann=AnnConfig(min_items=None))
    start = time.perf_counter()
    index = index_served.item_index()
    build = time.perf_counter() - start

    rng = np.random.default_rng(1)
    users = torch.from_numpy(rng.choice(args.users, args.recall_users, replace=False))
    got, _ = index_served.top_k(users, 10)
    want, _ = exact_served.top_k(users, 10)
    hits = (got[:, :, None] == want[:, None, :]).any(2) & (got >= 0)
    recall = float(hits.sum()) / float((want >= 0).sum())
    counts = index_served.seen.counts[users].numpy()
    asked = counts <= DEFAULT_MAX_SEEN
    answered, _, _ = index_top_k(model, index, users[asked], counts[asked], index_served.seen, 10)

    one = iter(rng.choice(args.users, 10 * args.repeats))
    batch = torch.from_numpy(rng.choice(args.users, 100, replace=False))
    figures = {"build": build, "recall": recall, "by_index": float(answered.mean())}
    for name, served in (("exact", exact_served), ("index", index_served)):
        figures[f"{name}_query"] = timed(
            lambda s=served: s.top_k(torch.tensor([next(one)]), 10), args.repeats
        )
        figures[f"{name}_batch"] = timed(
            lambda s=served: s.top_k(batch, 10), max(3, args.repeats // 10)
        )
    if args.hnsw:
        figures.update(against_hnsw(model, index, users))
    return figures


def against_hnsw(model: FixedVectors, ivf: ItemIndex, users: torch.Tensor) -> dict[str, float]:
    """The served IVF index and an HNSW index alone: recall@10, build and search times."""
    items = model.item_vectors().numpy()
    queries = model.user_vectors(users)
    exact = (queries @ model.item_vectors().T).topk(10, dim=1).indices.numpy()
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(items.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(items)
    hnsw.hnsw.efSearch = 128
    figures = {"hnsw_build": time.perf_counter() - start}
    searches = {
        "ivf": lambda q: ivf.search(q, 10)[1],
        "hnsw": lambda q: hnsw.search(q.numpy(), 10)[1],
    }
    for name, search in searches.items():
        found = search(queries)
        figures[f"{name}_recall"] = float((found[:, :, None] == exact[:, None, :]).any(2).mean())
        # A different user each time, as in serving: one user's cells stay in the CPU's cache.
        one = iter(range(len(users)))
        figures[f"{name}_q"] = timed(lambda s=search, o=one: s(queries[next(o)][None]), 30)
        figures[f"{name}_b"] = timed(lambda s=search: s(queries[:100]), 3)
    return figures


def _cpu() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="64,384")
    parser.add_argument("--sizes", default="20000,100000,500000")
    parser.add_argument("--users", type=int, default=2_000, help="users of the synthetic model")
    parser.add_argument("--recall-users", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=30, help="one-user requests timed")
    parser.add_argument("--nprobe", type=int, default=AnnConfig().nprobe)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hnsw", action="store_true", help="also compare with HNSW")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    print(
        f"{datetime.date.today().isoformat()}, {_cpu()}, {args.threads} threads, torch "
        f"{torch.__version__}, faiss {faiss.__version__}; IVF-Flat, sqrt(n) cells, nprobe "
        f"{args.nprobe}; top 10, ~40 seen items per user excluded"
    )
    print(
        f"{'dim':>4} {'items':>8} {'cells':>6} {'build s':>8} {'recall@10':>9} {'by index':>8} "
        f"{'query ms exact/index':>21} {'x':>6} {'100 users ms exact/index':>25} {'x':>6}"
    )
    for dim in (int(d) for d in args.dims.split(",")):
        for n_items in (int(n) for n in args.sizes.split(",")):
            f = measure(n_items, dim, args)
            query = f"{f['exact_query'] * 1e3:.2f} / {f['index_query'] * 1e3:.2f}"
            batch = f"{f['exact_batch'] * 1e3:.1f} / {f['index_batch'] * 1e3:.1f}"
            print(
                f"{dim:>4} {n_items:>8,} {list_count(n_items):>6} {f['build']:>8.1f} "
                f"{f['recall']:>9.3f} {f['by_index']:>8.1%} {query:>21} "
                f"{f['exact_query'] / f['index_query']:>6.1f} {batch:>25} "
                f"{f['exact_batch'] / f['index_batch']:>6.1f}",
                flush=True,
            )
            if args.hnsw:
                print(
                    f"{'':13} index alone, recall@10 / build s / ms per query / per 100: IVF "
                    f"{f['ivf_recall']:.3f} / {f['build']:.1f} / {f['ivf_q'] * 1e3:.2f} / "
                    f"{f['ivf_b'] * 1e3:.1f}; HNSW {f['hnsw_recall']:.3f} / {f['hnsw_build']:.1f}"
                    f" / {f['hnsw_q'] * 1e3:.2f} / {f['hnsw_b'] * 1e3:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
