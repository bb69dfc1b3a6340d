"""Top-K ranking metrics as pure functions over the hit matrix of ranked lists.

Every function takes ``hits``, a (U, K) bool/float tensor whose entry ``[u, r]`` says whether the
item ranked ``r + 1`` for user ``u`` is one of the user's held-out items, and ``n_relevant``, the
(U,) number of held-out items of each user (always >= 1: users with nothing held out are skipped
before this point). Each returns a (U,) float tensor of per-user values at cutoff ``k``; the
evaluator averages them over users.

Definitions (binary relevance, ranks counted from 1):

- Precision@k = hits in the top k / k
- Recall@k = hits in the top k / n_relevant
- Hit@k = 1 if any of the top k is relevant, else 0
- NDCG@k = DCG@k / IDCG@k with DCG@k = sum_{r<=k} rel_r / log2(r + 1) and IDCG@k the DCG of
  min(n_relevant, k) hits at the top
- MRR@k = 1 / rank of the first relevant item within the top k (0 when none)
- MAP@k = sum_{r<=k} Precision@r * rel_r / min(n_relevant, k)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recsys.errors import RecsysError

METRICS = ("recall", "ndcg", "precision", "hit", "mrr", "map")
# What a sweep may target: the per-user metrics, and the evaluator's catalogue coverage.
TARGETS = (*METRICS, "coverage")
# What every evaluation of a sweep reports and every leaderboard shows, besides the target.
REPORTED = ("recall", "ndcg", "precision", "hit")
# The default cut-offs a sweep reports (``--report-ks``); the target's is always added.
REPORT_KS = (10, 20)
MAX_REPORT_KS = 8
# Beyond-accuracy metrics of the top-k lists (``recsys.beyond_accuracy``), shown on test at each
# reported cut-off; novelty and ARP are per user, coverage and Gini are of the whole catalogue.
BEYOND = ("coverage", "gini", "novelty", "arp")
PER_USER_BEYOND = ("novelty", "arp")
# The sampled protocol's metrics (``recsys.sampled``): ``sampled_hit@10``, ``sampled_ndcg@10``.
SAMPLED = ("hit", "ndcg")


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; a RecsysError for anything the evaluator lacks."""
    name, _, k = metric.partition("@")
    if name not in TARGETS or not (k.isascii() and k.isdigit()) or int(k) < 1:
        raise RecsysError(
            f"bad metric {metric!r}; use <name>@<k> with name one of {', '.join(TARGETS)} "
            f"and k a positive integer, e.g. ndcg@10"
        )
    return name, int(k)


def report_ks(target: str, ks: Sequence[int] = REPORT_KS) -> tuple[int, ...]:
    """The cut-offs an evaluation reports: ``ks`` (``--report-ks``) and the target's, ascending."""
    return tuple(sorted({*(int(k) for k in ks), parse_metric(target)[1]}))


def reported_metrics(target: str | None = None, ks: Sequence[int] = REPORT_KS) -> list[str]:
    """The evaluator's names of what a leaderboard shows: ``recall@10``, ``ndcg@10``, ... at every
    reported cut-off (the target's among them), and the target (e.g. ``mrr@10``) last when it is
    not among them."""
    cutoffs = report_ks(target, ks) if target is not None else tuple(sorted(set(ks)))
    names = [f"{m}@{k}" for k in cutoffs for m in REPORTED]
    return names + [target] if target is not None and target not in names else names


def beyond_metrics(target: str, ks: Sequence[int] = REPORT_KS) -> list[str]:
    """The beyond-accuracy names a leaderboard shows at every reported cut-off: ``coverage@10``,
    ``gini@10``, ``novelty@10``, ``arp@10``, ... (less the target, shown with the others)."""
    names = [f"{m}@{k}" for k in report_ks(target, ks) for m in BEYOND]
    return [n for n in names if n != target]


def sampled_metrics(target: str, ks: Sequence[int] = REPORT_KS) -> list[str]:
    """The sampled protocol's names at every reported cut-off: ``sampled_hit@10``,
    ``sampled_ndcg@10``, ..."""
    return [f"sampled_{m}@{k}" for k in report_ks(target, ks) for m in SAMPLED]


# A cold-item split ranks each split among its cold items; its test figures among every item
# carry this prefix: ``all_ndcg@10`` (``recsys.evaluate``).
ALL_ITEMS = "all_"


def all_items_metrics(target: str, ks: Sequence[int] = REPORT_KS) -> list[str]:
    """A cold-item split's second test figures, ranked among every item: ``all_recall@10``,
    ``all_ndcg@10``, ... of :func:`reported_metrics`."""
    return [ALL_ITEMS + n for n in reported_metrics(target, ks)]


def sampled_target(target: str) -> str:
    """What orders the sampled leaderboard: sampled NDCG at the target's cut-off."""
    return f"sampled_ndcg@{parse_metric(target)[1]}"


def metric_key(split: str, metric: str) -> str:
    """The one spelling of ``metric`` on ``split`` outside the evaluator: ``val_ndcg_at_10``.

    Tune results, MLflow metrics, leaderboard columns and plot labels all use it (MLflow forbids
    ``@`` in metric names, so the evaluator's ``ndcg@10`` becomes ``ndcg_at_10``).
    """
    return f"{split}_{metric.replace('@', '_at_')}"


def _check(hits: torch.Tensor, k: int) -> torch.Tensor:
    if k < 1:
        raise ValueError(f"cutoff k must be >= 1, got {k}")
    if hits.dim() != 2:
        raise ValueError(f"hits must be (users, K), got shape {tuple(hits.shape)}")
    # A list shorter than k (a catalogue smaller than k) counts the missing ranks as misses.
    return hits[:, :k].to(torch.float32)


def _discounts(k: int, device: torch.device) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float32))


def precision(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    return _check(hits, k).sum(1) / k


def recall(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    return _check(hits, k).sum(1) / n_relevant.to(torch.float32)


def hit(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    return (_check(hits, k).sum(1) > 0).to(torch.float32)


def ndcg(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    h = _check(hits, k)
    disc = _discounts(k, hits.device)
    dcg = (h * disc[: h.shape[1]]).sum(1)
    ideal_hits = torch.clamp(n_relevant, max=k)
    idcg = torch.cumsum(disc, 0)[ideal_hits.long() - 1]
    return dcg / idcg


def mrr(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    h = _check(hits, k)
    ranks = torch.arange(1, h.shape[1] + 1, device=hits.device, dtype=torch.float32)
    # argmax finds the first maximum: the first hit when there is one.
    first = ranks[h.argmax(1)] if h.shape[1] else torch.ones(h.shape[0], device=hits.device)
    return torch.where(h.sum(1) > 0, 1.0 / first, torch.zeros_like(first))


def average_precision(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    h = _check(hits, k)
    ranks = torch.arange(1, h.shape[1] + 1, device=hits.device, dtype=torch.float32)
    precision_at_r = torch.cumsum(h, 1) / ranks
    return (precision_at_r * h).sum(1) / torch.clamp(n_relevant, max=k).to(torch.float32)


FUNCTIONS = {
    "recall": recall,
    "ndcg": ndcg,
    "precision": precision,
    "hit": hit,
    "mrr": mrr,
    "map": average_precision,
}


def ranking_metrics(
    hits: torch.Tensor, n_relevant: torch.Tensor, ks: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """Every metric of :data:`METRICS` at every cutoff, per user.

    Args:
        hits: (U, K) relevance of the ranked lists, K >= max(ks) or the catalogue size.
        n_relevant: (U,) number of held-out items per user, >= 1.
        ks: cutoffs.

    Returns:
        ``{"recall@10": (U,), "ndcg@10": (U,), ...}``.
    """
    return {f"{name}@{k}": FUNCTIONS[name](hits, n_relevant, k) for k in ks for name in METRICS}
