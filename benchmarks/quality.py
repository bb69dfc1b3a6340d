"""Quality of every model with its default hyperparameters on MovieLens-100K.

Protocol: positives rating >= 4, per-user random 80/10/10 split, seed 42; each trainable model is
early-stopped on validation NDCG@10 (evaluated every few epochs, with a warm-up so that the
popularity plateau of LightGCN's first epochs does not stop it), then its best state is evaluated
once on the test split with full ranking. Prints one row per model. ``lightgcn_kg``'s entities
are ML-100K's Freebase knowledge graph (the loader's ``entities=kg``, fetched once from the
recbole wheel); the other models read no entities.

    python benchmarks/quality.py [--models lightgcn,ease] [--device cpu] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import torch

from recsys.data import PrepConfig, load_split
from recsys.models import MODELS
from recsys.text import with_item_embeddings
from recsys.train import Trainer

# Reference figures (test NDCG@10, Recall@10) of a well-known framework on this protocol.
REFERENCE = {
    "popularity": (0.049, 0.060),
    "bpr_mf": (0.197, 0.238),
    "itemknn": (0.208, 0.244),
    "mult_vae": (0.214, 0.261),
    "ease": (0.235, 0.281),
    "lightgcn": (0.226, 0.259),
}
# (max epochs, evaluate every, patience in evaluations, warm-up epochs before stopping may happen)
BUDGET = {
    # At lr 1e-3 (22 steps per epoch) LightGCN converges after 500-600 epochs.
    "lightgcn": (800, 5, 10, 100),
    "lightgcn_hardneg": (800, 5, 10, 100),
    "lightgcn_text": (800, 5, 10, 100),
    "lightgcn_kg": (800, 5, 10, 100),
    "bpr_mf": (400, 5, 8, 100),
    "mult_vae": (300, 5, 8, 50),
    # Mult-DAE: Mult-VAE's network without sampling or KL term, so its budget.
    "mult_dae": (300, 5, 8, 50),
    "hybrid_vae": (300, 5, 8, 50),
    # iALS (implicit's ALS): an epoch is one ALS iteration; the default peaks after 5-6.
    "ials": (50, 1, 5, 5),
    # NCF's MLP tower over [p_u; q_i], BCE on 4 sampled negatives: peaks near epoch 16 at the
    # paper's settings, then overfits (0.125 by epoch 60).
    "ncf_mlp": (60, 2, 8, 10),
    # Two towers (pooled history | item id), in-batch softmax with log-Q: validation 0.20-0.21
    # from epoch 10 to 40.
    "two_tower": (80, 2, 10, 10),
}


def early_stopped(
    trainer: Trainer, max_epochs: int, every: int, patience: int | None, warmup: int
) -> tuple[int, int]:
    """Trains with early stopping on validation NDCG@10 and leaves the trainer at its best state.

    Stops after ``patience`` evaluations without improvement, but not before ``warmup`` epochs.
    Returns the best epoch and the epochs trained.
    """
    best: tuple[float, int, dict] | None = None
    since_best = 0
    for evaluation in trainer.run(max_epochs, every, ks=(10,)):
        score = evaluation.metrics["ndcg@10"]
        if best is None or score > best[0]:
            best, since_best = (score, evaluation.epoch, copy.deepcopy(trainer.state_dict())), 0
        else:
            since_best += 1
        if patience is not None and since_best >= patience and evaluation.epoch >= warmup:
            break
    trained = trainer.epoch
    trainer.load_state_dict(best[2])
    return best[1], trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    models = args.models.split(",")
    entities = "kg" if "lightgcn_kg" in models else "auto"
    split = load_split("ml-100k", args.data_dir, PrepConfig(seed=args.seed), entities=entities)
    data = with_item_embeddings(split)
    print(
        f"ml-100k: {data.n_users} users, {data.n_items} items, train {len(data.train)}, "
        f"val {len(data.val)}, test {len(data.test)}; fingerprint {data.fingerprint}"
    )
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads")
    header = (
        f"{'model':18} {'epochs':>7} {'val ndcg@10':>11} {'val rec@10':>10} "
        f"{'test ndcg@10':>12} {'test rec@10':>11} {'reference':>13} {'seconds':>8}"
    )
    print(header)
    for name in models:
        start = time.perf_counter()
        trainer = Trainer(name, {}, data, device=args.device, seed=args.seed)
        max_epochs, every, patience, warmup = BUDGET.get(name, (1, 1, None, 0))
        best_epoch, trained = early_stopped(trainer, max_epochs, every, patience, warmup)
        epochs = f"{best_epoch}/{trained}" if trainer.spec.trainable else "-"
        val = trainer.evaluate("val", ks=(10,))
        test = trainer.evaluate("test", ks=(10,))
        ref = REFERENCE.get(name)
        ref_text = f"{ref[0]:.3f} ({ref[1]:.3f})" if ref else "-"
        print(
            f"{name:18} {epochs:>7} {val['ndcg@10']:>11.4f} {val['recall@10']:>10.4f} "
            f"{test['ndcg@10']:>12.4f} {test['recall@10']:>11.4f} {ref_text:>13} "
            f"{time.perf_counter() - start:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
