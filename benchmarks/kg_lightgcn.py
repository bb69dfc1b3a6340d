"""Plain LightGCN against KG-LightGCN (``lightgcn_kg``) on MovieLens-100K, with a paired test.

Protocol: ``benchmarks/quality.py``'s (positives rating >= 4, per-user random 80/10/10 split, seed
42; early stopping on validation NDCG@10, the best state evaluated once on test with full
ranking), with one change made to both models alike: lr 5e-3 instead of the default 1e-3, with
which LightGCN needs about 500 epochs (minutes per model on a CPU). Every other hyperparameter
is the default of both (dim 64, 3 layers, l2 1e-4, batch 2048, uniform negatives; lightgcn_kg:
entity_weight 1.0, min_entity_items 2). The entities are ML-100K's Freebase knowledge graph
(``entities=kg``: fetched once from the recbole wheel, then cached beside the ratings).

Per seed every model trains from that seed (``--entity-weight 0.2,1.0``: one lightgcn_kg per
weight). A user's test NDCG@10 is the mean over the seeds (as the leaderboard takes it) and
``recsys.stats.against_best`` compares each lightgcn_kg with LightGCN user by user (Wilcoxon
signed-rank and paired t-test, two-sided, Holm-corrected across the weights). The tail column:
the share of the test pairs whose item had at most ``--tail`` training interactions that are in
the user's top 10.

    python benchmarks/kg_lightgcn.py [--seeds 0,1,2] [--lr 5e-3] [--entities kg|genres]
                                     [--entity-weight 1.0[,0.2...]]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from quality import early_stopped  # this folder's script: the same early stopping

from recsys.data import PrepConfig, SplitData, load_split
from recsys.evaluate import recommend
from recsys.models.lightgcn import LightGCNKGConfig, graph_entities
from recsys.stats import against_best, bootstrap_ci
from recsys.train import Trainer

# (max epochs, evaluate every, patience in evaluations, warm-up epochs): quality.py's LightGCN
# budget scaled to lr 5e-3, which peaks about five times sooner than 1e-3.
BUDGET = (400, 5, 8, 50)


def tail_hits(trainer: Trainer, data: SplitData, tail: int) -> tuple[float, int]:
    """Share of the test pairs of items with <= ``tail`` training interactions that are in
    their user's top 10 (training and validation items excluded), and how many such pairs."""
    counts = np.bincount(data.train.items, minlength=data.n_items)
    rare = counts[data.test.items] <= tail
    users = torch.arange(data.n_users)
    top, _ = recommend(trainer.model, data, users, k=10)
    hit = (top.numpy()[data.test.users[rare]] == data.test.items[rare, None]).any(axis=1)
    return float(hit.mean()) if rare.any() else float("nan"), int(rare.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--entities", default="kg", help="ml-100k loader option: kg or genres")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--tail", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=BUDGET[0])
    parser.add_argument(
        "--entity-weight", default="1.0", help="lightgcn_kg's entity_weight, comma-separated"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on busy cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_split("ml-100k", args.data_dir, PrepConfig(seed=42), entities=args.entities)
    kept = graph_entities(LightGCNKGConfig(), data)
    items_linked = np.unique(kept.items).size
    print(
        f"ml-100k: {data.n_users} users, {data.n_items} items, train {len(data.train)}, "
        f"val {len(data.val)}, test {len(data.test)}; fingerprint {data.fingerprint}\n"
        f"entities ({args.entities}): {data.item_entities.n_entities} linked to the items, "
        f"{kept.n_entities} of them to >= 2 items: {len(kept)} links over {items_linked} items "
        f"({len(kept) / items_linked:.1f} per linked item; training pairs per item "
        f"{len(data.train) / data.n_items:.1f})"
    )
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads; lr {args.lr}")
    print(
        f"{'model':22} {'seed':>4} {'epochs':>8} {'val ndcg@10':>11} {'test ndcg@10':>12} "
        f"{'test rec@10':>11} {f'tail<={args.tail} hit@10':>16} {'s/epoch':>8} {'seconds':>8}"
    )
    runs = variants(args.entity_weight)
    per_user: dict[str, list[np.ndarray]] = {label: [] for label in runs}
    users = None
    for seed in (int(s) for s in args.seeds.split(",")):
        for label, (name, config) in runs.items():
            start = time.perf_counter()
            trainer = Trainer(name, {"lr": args.lr, **config}, data, device="cpu", seed=seed)
            best, trained = early_stopped(trainer, args.max_epochs, *BUDGET[1:])
            fit = time.perf_counter() - start
            val = trainer.evaluate("val", ks=(10,))
            test = trainer.evaluate_users("test", ks=(10,))
            users = test.users if users is None else users
            assert np.array_equal(users, test.users)
            per_user[label].append(test.values["ndcg@10"])
            means = test.means()
            hits, n_tail = tail_hits(trainer, data, args.tail)
            print(
                f"{label:22} {seed:>4} {f'{best}/{trained}':>8} {val['ndcg@10']:>11.4f} "
                f"{means['ndcg@10']:>12.4f} {means['recall@10']:>11.4f} {hits:>16.4f} "
                f"{fit / trained:>8.2f} {fit:>8.1f}",
                flush=True,
            )
        # After every seed, so that a run cut short still reports the seeds it finished.
        compare(per_user, len(users))
    print(f"(tail: {n_tail} test pairs of items with <= {args.tail} training interactions)")


def variants(weights: str) -> dict[str, tuple[str, dict]]:
    """Label -> (model, config besides lr): LightGCN, then lightgcn_kg at each entity weight."""
    runs = {"lightgcn": ("lightgcn", {})}
    for weight in (float(w) for w in weights.split(",")):
        runs[f"lightgcn_kg w={weight:g}"] = ("lightgcn_kg", {"entity_weight": weight})
    return runs


def compare(per_user: dict[str, list[np.ndarray]], n_users: int) -> None:
    """Each variant's users' mean test NDCG@10 over the seeds so far, and the paired tests of
    each lightgcn_kg against LightGCN (Holm-corrected across them, as the leaderboard does)."""
    mean = {label: np.mean(v, axis=0) for label, v in per_user.items()}
    seeds = len(per_user["lightgcn"])
    for label, values in mean.items():
        low, high = bootstrap_ci(values, seed=0)
        print(
            f"  {label}: test NDCG@10 {values.mean():.4f} (95% bootstrap {low:.4f}-{high:.4f}), "
            f"each user's mean over {seeds} seed(s)"
        )
    for label, test in against_best(mean, "lightgcn").items():
        print(
            f"  {label} - lightgcn over {n_users} test users: mean NDCG@10 difference "
            f"{test.mean_difference:+.4f}; Wilcoxon p = {test.wilcoxon_p:.3g} (Holm "
            f"{test.wilcoxon_p_holm:.3g}), paired t-test p = {test.ttest_p:.3g} (Holm "
            f"{test.ttest_p_holm:.3g})",
            flush=True,
        )


if __name__ == "__main__":
    main()
