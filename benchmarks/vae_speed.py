"""Epoch time of Mult-VAE and HybridVAE (and fit time of EASE / ItemKNN) at growing sizes.

Data: the synthetic generator (``recsys.data.loaders``, dataset ``synthetic``) at 100k, 1M and 5M
interactions, plus one set of MovieLens-100K's shape (943 users x 1,682 items, 100k interactions),
split 80/10/10. HybridVAE's item vectors are random unit vectors of Sentence-BERT's width (384)
unless ``--text`` encodes the items' texts: the epoch time does not depend on their values, and
encoding 25k texts on a CPU takes longer than the epoch itself. Each model trains ``--epochs``
epochs with the real training loop (``recsys.train.Trainer``) and default hyperparameters; the
first epoch is reported apart (it includes allocator warm-up). ``score`` is the time to score every
user once (what one full-ranking evaluation spends in the model). EASE inverts a dense
n_items x n_items matrix in float64 (5 GB at 25k items), so it is skipped above
``--ease-max-items``.

    python benchmarks/vae_speed.py [--sizes ml100k-shape,100k,1m,5m] [--models mult_vae,...]
        [--epochs 2] [--device cpu] [--text]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import numpy as np
import torch

from recsys.data import PrepConfig, load_split
from recsys.data.loaders import load_interactions
from recsys.train import Trainer

SIZES = {  # name: (users, items, interactions)
    "ml100k-shape": (943, 1_682, 100_000),
    "100k": (5_000, 2_000, 100_000),
    "1m": (20_000, 10_000, 1_000_000),
    "5m": (50_000, 25_000, 5_000_000),
}
TEXT_DIM = 384


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def score_all(trainer: Trainer, batch: int = 1024) -> None:
    model = trainer.model
    model.eval()
    with torch.no_grad():
        for users in torch.arange(model.n_users, device=model.device).split(batch):
            model.score(users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--models", default="mult_vae,hybrid_vae,ease,itemknn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--text", action="store_true", help="encode item texts with SBERT")
    parser.add_argument("--ease-max-items", type=int, default=10_000)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, device {args.device}")
    print(
        f"{'size':>12} {'users':>6} {'items':>6} {'train':>8} {'model':>10} "
        f"{'build s':>8} {'1st epoch s':>11} {'epoch s':>8} {'users/s':>8} {'score s':>8}"
    )
    for size in args.sizes.split(","):
        n_users, n_items, n = SIZES[size]
        raw = load_interactions(
            "synthetic", n_users=n_users, n_items=n_items, n_interactions=n, seed=0
        )
        data = load_split(raw, config=PrepConfig(threshold=None), use_cache=False)
        if args.text:
            from recsys.text import with_item_embeddings

            data = with_item_embeddings(data)
        else:
            vectors = np.random.default_rng(0).normal(size=(data.n_items, TEXT_DIM))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            data = dataclasses.replace(data, item_embeddings=vectors.astype(np.float32))
        active = len(np.unique(data.train.users))
        for name in args.models.split(","):
            if name == "ease" and data.n_items > args.ease_max_items:
                print(f"{size:>12} {'':>6} {'':>6} {'':>8} {name:>10} skipped (--ease-max-items)")
                continue
            start = time.perf_counter()
            trainer = Trainer(name, {}, data, device=args.device, seed=0)
            build_s = time.perf_counter() - start
            epochs = [timed(trainer.train_epoch) for _ in range(args.epochs)]
            if trainer.optimizer is None:
                first, later, rate = "-", "-", "-"
            else:
                first = f"{epochs[0]:.2f}"
                mean = float(np.mean(epochs[1:] or epochs))
                later, rate = f"{mean:.2f}", f"{active / mean:.0f}"
            score_s = timed(lambda trainer=trainer: score_all(trainer))
            print(
                f"{size:>12} {data.n_users:>6} {data.n_items:>6} {len(data.train):>8} "
                f"{name:>10} {build_s:>8.2f} {first:>11} {later:>8} {rate:>8} {score_s:>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
