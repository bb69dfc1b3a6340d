"""Beyond-accuracy metrics of top-k lists: what a model recommends, whatever the held-out items.

The lists are the evaluator's (``recsys.evaluate.user_metrics``): every evaluated user's top k
with its excluded items masked, so on test they are the lists of
``recommendations/<model>.parquet`` (training and validation items excluded). ``items`` is a
(U, K) long tensor of recommended item indices, ``valid`` (U, K) whether each position holds an
item (a user with fewer than k unexcluded items has a shorter list); ``popularity`` the (I,)
number of TRAINING interactions of each item; ``n_users`` the dataset's users.

Definitions (over the whole catalogue of I items; c_i = how many lists hold item i in their top
k, c_(1) <= ... <= c_(I) those counts ascending):

- Coverage@k = |{i : c_i > 0}| / I, the share of the catalogue in at least one list;
- Gini@k = sum_{j=1..I} (2j - I - 1) c_(j) / (I sum_i c_i), the Gini index of the counts
  (Fleder and Hosanagar, Management Science 2009): 0 when every item is recommended equally
  often, (I - 1) / I (-> 1) when a single item takes every slot;
- Novelty@k = mean over the user's list of -log2(max(pop_i, 1) / n_users), the self-information
  of a recommended item (Zhou et al., PNAS 2010); an item without training interactions counts as
  seen once (log2(n_users), the rarest a seen item can be) rather than as infinitely novel;
- ARP@k = mean over the user's list of pop_i, the average recommended popularity (Abdollahpouri
  et al., FLAIRS 2019).

Novelty and ARP are per user (a mean over the list, then the evaluator's mean over users);
coverage and Gini are of the whole set of lists. All vectorised, on the lists' device.
"""

from __future__ import annotations

import torch


def item_counts(items: torch.Tensor, valid: torch.Tensor, n_items: int, k: int) -> torch.Tensor:
    """(I,) int64: how many lists hold each item among their first ``k``."""
    return torch.bincount(items[:, :k][valid[:, :k]], minlength=n_items)


def coverage(counts: torch.Tensor) -> float:
    """Share of the catalogue recommended at least once."""
    return float((counts > 0).to(torch.float64).mean()) if counts.numel() else 0.0


def gini(counts: torch.Tensor) -> float:
    """Gini index of the recommendation counts over the catalogue (0: equal; -> 1: one item).

    No recommendation at all counts as equal (0).
    """
    c = torch.sort(counts.to(torch.float64)).values
    n, total = c.numel(), float(c.sum())
    if n == 0 or total == 0:
        return 0.0
    j = torch.arange(1, n + 1, dtype=torch.float64, device=c.device)
    return float(((2 * j - n - 1) * c).sum() / (n * total))


def self_information(popularity: torch.Tensor, n_users: int) -> torch.Tensor:
    """(I,) -log2(max(pop_i, 1) / n_users) per item."""
    seen = torch.clamp(popularity.to(torch.float64), min=1.0)
    return -torch.log2(seen / max(n_users, 1))


def _list_mean(
    per_item: torch.Tensor, items: torch.Tensor, valid: torch.Tensor, k: int
) -> torch.Tensor:
    """(U,) mean of ``per_item`` over each user's first ``k`` valid items (0 for an empty list)."""
    items, valid = items[:, :k], valid[:, :k]
    values = per_item[items.clamp(min=0)] * valid
    return values.sum(1) / valid.sum(1).clamp(min=1)


def novelty(
    items: torch.Tensor, valid: torch.Tensor, popularity: torch.Tensor, n_users: int, k: int
) -> torch.Tensor:
    """(U,) mean self-information of each user's top ``k``, in bits."""
    return _list_mean(self_information(popularity, n_users), items, valid, k)


def average_popularity(
    items: torch.Tensor, valid: torch.Tensor, popularity: torch.Tensor, k: int
) -> torch.Tensor:
    """(U,) mean training count of the items of each user's top ``k`` (ARP)."""
    return _list_mean(popularity.to(torch.float64), items, valid, k)
