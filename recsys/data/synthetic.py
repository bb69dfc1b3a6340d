"""Seeded synthetic implicit feedback with a learnable cluster structure and Zipf popularity.

The generative model: items and users each belong to one of ``n_clusters`` taste clusters with a
unit centre in ``dim`` dimensions; a user's taste vector is its cluster's centre plus Gaussian
noise. Item ``i`` has a Zipf(-Mandelbrot) popularity
``pop_i ~ (rank_i + popularity_offset) ** -popularity_exponent`` (ranks shuffled over items) and
is drawn by user ``u`` with probability

    p(i | u) = softmax_i( u . centre[cluster(i)] / temperature + log pop_i )

which is sampled exactly in two steps: a cluster from ``softmax_c(u . centre_c / temperature +
log mass_c)`` (``mass_c`` = popularity mass of cluster ``c``), then an item of that cluster in
proportion to its popularity. Both steps are inverse-CDF look-ups (``np.searchsorted``) over all
draws at once, so ten million interactions take seconds. A user's number of interactions is
heavy-tailed (``min_per_user`` plus a log-normal share of the rest, capped at ``max_per_user`` and
``n_items``); its items are distinct and drawn without replacement from ``p(i | u)`` (see
``_Sampler.distinct``), so the result holds exactly ``n_interactions`` rows.

:data:`SHAPES` are presets with the published shapes of real datasets (``shape=ml-1m``): their
sizes, their per-user minimum and maximum, an activity spread chosen so that the median user
is near the published median, and a popularity exponent and offset chosen so that
the most popular and the median item's counts are near the published ones
(``python benchmarks/synthetic_scale.py --shapes`` prints target and generated statistics).

Every rating is NaN: an implicit positive, kept by the preparation step whatever the threshold.
Timestamps strictly increase down the rows, which are in random order (no user's history is
sequential). Item texts name a few words of the item's cluster theme and some noise words, so a
text encoder sees the same structure as the interactions.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.interactions import Interactions, make_frame
from recsys.errors import RecsysError

THEMES = (
    "galaxy orbit rocket planet comet nebula asteroid astronaut",
    "coral reef tide whale lagoon harbor sailor anchor",
    "recipe kitchen spice baking sauce pastry grill flavor",
    "guitar melody rhythm drum chorus piano concert album",
    "football stadium racket marathon goal tennis coach league",
    "flower seed soil blossom orchard tulip compost hedge",
    "empire dynasty castle medieval knight pharaoh ancient treaty",
    "software robot circuit laptop algorithm network sensor battery",
    "detective clue murder suspect alibi inspector secret crime",
    "love wedding kiss heart passion couple letter romance",
    "passport luggage airport journey hotel map voyage island",
    "dragon wizard magic sword elf quest spell kingdom",
    "fitness yoga vitamin doctor diet sleep therapy wellness",
    "money investment stock budget bank savings market tax",
    "puppy kitten horse zoo wildlife bird rabbit tiger",
    "snow ski frost blizzard sled glacier icicle scarf",
)
NOISE_WORDS = (
    "edition classic new deluxe original premium compact vintage special standard limited "
    "family pocket giant mini collection"
).split()
WORDS_PER_CLUSTER = 6  # when there are more clusters than themes, each gets a random word set
TEXT_CLUSTER_WORDS = 3
TEXT_NOISE_WORDS = 2
START_TIME = 1_600_000_000.0
DRAWS_PER_CHUNK = 2_000_000  # bounds the memory of one sampling pass
REDRAW_ROUNDS = 4
DENSE_CELLS = 1 << 22  # users x items scores per Gumbel-top-k block


@dataclass(frozen=True)
class Shape:
    """A preset: a real dataset's published shape and the generator settings that match it.

    Attributes:
        n_users, n_items, n_interactions: the published sizes.
        min_per_user, max_per_user: the published fewest and most interactions of one user.
        median_per_user: the published median user's interactions (the target of
            :attr:`activity_sigma`: without a binding cap, the median of ``min`` plus a
            log-normal share is ``min + (mean - min) * exp(-sigma^2 / 2)``).
        max_per_item, median_per_item: the published most popular and median item's
            interactions (the targets :attr:`popularity_exponent` and
            :attr:`popularity_offset` were chosen for, at :attr:`temperature`).
        activity_sigma, popularity_exponent, popularity_offset, temperature: generator
            settings (see :func:`generate`).
    """

    n_users: int
    n_items: int
    n_interactions: int
    min_per_user: int
    max_per_user: int
    median_per_user: int
    max_per_item: int
    median_per_item: float
    activity_sigma: float
    popularity_exponent: float
    popularity_offset: float
    temperature: float

    def generator_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`generate` for this shape (its sizes among them)."""
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": self.n_interactions,
            "min_per_user": self.min_per_user,
            "max_per_user": self.max_per_user,
            "activity_sigma": self.activity_sigma,
            "popularity_exponent": self.popularity_exponent,
            "popularity_offset": self.popularity_offset,
            "temperature": self.temperature,
        }


# Published figures: MovieLens-1M and -10M (Harper & Konstan, TiiS 2015; the GroupLens READMEs:
# every user has at least 20 ratings), goodbooks-10k (Zajac 2017; users have 19 to 200 ratings).
SHAPES: dict[str, Shape] = {
    "ml-1m": Shape(6_040, 3_706, 1_000_209, 20, 2_314, 96, 3_428, 123.5, 1.14, 1.2, 45.0, 1.0),
    "goodbooks": Shape(53_424, 10_000, 5_976_479, 19, 200, 111, 22_806, 248, 0.6, 1.0, 60.0, 1.0),
    "ml-10m": Shape(69_878, 10_681, 10_000_054, 20, 7_359, 69, 34_864, 135, 1.36, 1.8, 60.0, 1.0),
}


@dataclass(frozen=True)
class SyntheticWorld:
    """Synthetic interactions together with the ground truth they were drawn from.

    Attributes:
        interactions: the dataset (user ids ``0..n_users-1``, item ids ``0..n_items-1``).
        user_cluster: (n_users,) cluster of each user.
        item_cluster: (n_items,) cluster of each item.
        popularity: (n_items,) Zipf popularity of each item, summing to 1.
    """

    interactions: Interactions
    user_cluster: np.ndarray
    item_cluster: np.ndarray
    popularity: np.ndarray


def make_synthetic(n_users: int, n_items: int, n_interactions: int, **params: Any) -> Interactions:
    """Synthetic implicit feedback: :func:`generate`'s interactions (same arguments)."""
    return generate(n_users, n_items, n_interactions, **params).interactions


def generate(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    dim: int = 16,
    n_clusters: int = 16,
    popularity_exponent: float = 1.0,
    temperature: float = 0.2,
    user_noise: float = 0.5,
    activity_sigma: float = 1.0,
    min_per_user: int = 1,
    max_per_user: int | None = None,
    popularity_offset: float = 0.0,
    seed: int = 0,
) -> SyntheticWorld:
    """Synthetic implicit feedback, with the clusters and popularity behind it (module docstring).

    Args:
        n_users, n_items: sizes; every user gets at least one interaction when
            ``n_interactions >= n_users``.
        n_interactions: distinct (user, item) pairs wanted, at most ``n_users * n_items``.
        dim: dimension of the taste vectors.
        n_clusters: taste clusters (at most ``n_items`` are used).
        popularity_exponent: Zipf exponent of item popularity (0: uniform).
        temperature: lower values keep users closer to their own cluster.
        user_noise: spread of users' tastes around their cluster centre.
        activity_sigma: log-normal spread of users' numbers of interactions.
        min_per_user: every user's fewest interactions (when ``n_interactions`` allows it).
        max_per_user: every user's most interactions (None: ``n_items``).
        popularity_offset: Zipf-Mandelbrot offset of the ranks (>= 0): a flatter head, for the
            same tail.
        seed: seeds everything; equal arguments give equal data.
    """
    _check_sizes(n_users, n_items, n_interactions, dim, n_clusters)
    _check_options(temperature, popularity_exponent, user_noise, activity_sigma)
    _check_per_user(n_users, n_items, n_interactions, min_per_user, max_per_user)
    rng = np.random.default_rng(seed)
    k = min(n_clusters, n_items)
    centres, item_cluster, user_cluster, popularity = _draw_clusters(
        n_users, n_items, k, dim, popularity_exponent, rng, popularity_offset
    )
    tastes = centres[user_cluster] + user_noise * rng.standard_normal((n_users, dim)) / np.sqrt(dim)
    sampler = _Sampler(tastes @ centres.T / temperature, np.log(popularity), item_cluster, rng)
    cap = n_items if max_per_user is None else min(max_per_user, n_items)
    counts = _user_counts(n_users, cap, n_interactions, activity_sigma, rng, min_per_user)
    users, items = _draw_pairs(sampler, counts, n_interactions)
    frame = _shuffled_frame(users, items, rng)
    params = (
        f"n_users={n_users}, n_items={n_items}, n_interactions={n_interactions}, dim={dim}, "
        f"n_clusters={n_clusters}, popularity_exponent={popularity_exponent}, "
        f"temperature={temperature}, user_noise={user_noise}, activity_sigma={activity_sigma}, "
        f"min_per_user={min_per_user}, max_per_user={max_per_user}, "
        f"popularity_offset={popularity_offset}, seed={seed}"
    )
    texts = _item_texts(item_cluster, k, rng)
    interactions = Interactions("synthetic", frame, dict(enumerate(texts)), f"synthetic({params})")
    return SyntheticWorld(interactions, user_cluster, item_cluster, popularity)


def _check_options(
    temperature: float, popularity_exponent: float, user_noise: float, activity_sigma: float
) -> None:
    """Raises a RecsysError unless temperature > 0 and the other options are >= 0."""
    if temperature <= 0 or popularity_exponent < 0 or user_noise < 0 or activity_sigma < 0:
        raise RecsysError(
            "synthetic: temperature must be > 0 and popularity_exponent, user_noise and "
            f"activity_sigma >= 0 (got {temperature}, {popularity_exponent}, {user_noise}, "
            f"{activity_sigma}); fix the options"
        )


def _check_per_user(
    n_users: int, n_items: int, n_interactions: int, least: int, most: int | None
) -> None:
    """Raises a RecsysError unless 1 <= least <= most and the users can hold every pair."""
    cap = n_items if most is None else min(most, n_items)
    if least < 1 or (most is not None and most < least):
        raise RecsysError(
            f"synthetic: need 1 <= min_per_user <= max_per_user, got {least} and {most}"
        )
    if n_interactions > n_users * cap:
        raise RecsysError(
            f"synthetic: n_interactions={n_interactions} exceeds n_users * max_per_user = "
            f"{n_users * cap}; ask for fewer interactions or allow more per user"
        )


def _draw_clusters(
    n_users: int,
    n_items: int,
    k: int,
    dim: int,
    exponent: float,
    rng: np.random.Generator,
    offset: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ground truth: cluster centres, item and user clusters, Zipf(-Mandelbrot) item
    popularity ``(rank + offset) ** -exponent``.

    Returns:
        centres (k, dim) unit vectors, item_cluster (n_items,), user_cluster (n_users,) and
        popularity (n_items,) summing to 1.
    """
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    item_cluster = rng.permutation(np.arange(n_items) % k)
    user_cluster = rng.permutation(np.arange(n_users) % k)
    popularity = (rng.permutation(n_items) + 1.0 + offset) ** -exponent
    popularity /= popularity.sum()
    return centres, item_cluster, user_cluster, popularity


def _draw_pairs(
    sampler: _Sampler, counts: np.ndarray, n_interactions: int
) -> tuple[np.ndarray, np.ndarray]:
    """``counts[u]`` distinct items for every user u, grouped by user; (users, items) arrays."""
    users, items = [], []
    # Chunks of whole users, about DRAWS_PER_CHUNK draws each, bound the memory of one pass.
    cuts = np.arange(DRAWS_PER_CHUNK, n_interactions, DRAWS_PER_CHUNK)
    bounds = np.searchsorted(np.cumsum(counts), cuts)
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(counts)], strict=True):
        if hi > lo:
            u, i = sampler.distinct(lo, counts[lo:hi])
            users.append(u)
            items.append(i)
    return np.concatenate(users), np.concatenate(items)


def _shuffled_frame(users: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The interactions frame of the pairs in random order, timestamps increasing down the rows."""
    # Draws come grouped by user; shuffling them keeps no user's history sequential.
    order = rng.permutation(len(users))
    gaps = rng.integers(1, 120, size=len(users)).astype(np.float64)
    return make_frame(users[order], items[order], None, START_TIME + np.cumsum(gaps))


def _check_sizes(n_users: int, n_items: int, n_interactions: int, dim: int, k: int) -> None:
    sizes = {"n_users": n_users, "n_items": n_items, "n_interactions": n_interactions}
    sizes |= {"dim": dim, "n_clusters": k}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise RecsysError(f"synthetic: {name} must be a positive integer, got {value!r}")
    if n_interactions > n_users * n_items:
        raise RecsysError(
            f"synthetic: n_interactions={n_interactions} exceeds n_users * n_items = "
            f"{n_users * n_items} distinct pairs; ask for fewer interactions or more users/items"
        )


def _row_cdf(weights: np.ndarray) -> np.ndarray:
    """Per-row CDF shifted by the row index, flattened: row r spans (r, r + 1], ending exactly."""
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    cdf += np.arange(len(weights))[:, None]
    return cdf.ravel()


def _user_counts(
    n_users: int, cap: int, n: int, sigma: float, rng: np.random.Generator, least: int = 1
) -> np.ndarray:
    """Interactions per user: ``least`` (when n allows it, else as many as it allows) plus a
    log-normal share of the rest, at most ``cap``."""
    activity = rng.lognormal(0.0, sigma, n_users)
    floor = min(least, n // n_users, cap)
    counts = floor + rng.multinomial(n - floor * n_users, activity / activity.sum())
    # Whatever a capped user cannot take goes to the others, again by activity.
    while (excess := int(np.maximum(counts - cap, 0).sum())) > 0:
        counts = np.minimum(counts, cap)
        room = activity * (counts < cap)
        counts += rng.multinomial(excess, room / room.sum())
    return counts


class _Sampler:
    """Draws distinct items for users from p(i | u), by inverse CDF over all draws at once."""

    def __init__(
        self,
        affinity: np.ndarray,
        log_pop: np.ndarray,
        item_cluster: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Args: affinity (n_users, k) ``u . centre_c / temperature``; log_pop (n_items,)."""
        self.affinity, self.log_pop, self.item_cluster, self.rng = (
            affinity,
            log_pop,
            item_cluster,
            rng,
        )
        self.k = affinity.shape[1]
        self.n_items = len(log_pop)
        mass = np.bincount(item_cluster, weights=np.exp(log_pop), minlength=self.k)
        logits = affinity + np.log(mass)
        self.cluster_cdf = _row_cdf(np.exp(logits - logits.max(axis=1, keepdims=True)))
        # Items sorted by cluster; per cluster, the CDF of popularity shifted by the cluster
        # index, so that one searchsorted finds the item of every draw whatever its cluster.
        self.by_cluster = np.argsort(item_cluster, kind="stable")
        sizes = np.bincount(item_cluster, minlength=self.k)
        self.ends = np.cumsum(sizes)
        cum = np.cumsum(np.exp(log_pop[self.by_cluster]))
        before = np.concatenate([[0.0], cum[self.ends[:-1] - 1]])
        cdf = (cum - np.repeat(before, sizes)) / np.repeat(mass, sizes)
        cdf[self.ends - 1] = 1.0
        self.item_cdf = cdf + np.repeat(np.arange(self.k), sizes)

    def draw(self, users: np.ndarray) -> np.ndarray:
        """One item per entry of ``users`` (global indices), with replacement; (len(users),)."""
        pos = np.searchsorted(self.cluster_cdf, users + self.rng.random(len(users)), "right")
        # u + r may round up to u + 1; the clamp keeps the draw inside the user's own row
        clusters = np.minimum(pos - users * self.k, self.k - 1)
        pos = np.searchsorted(self.item_cdf, clusters + self.rng.random(len(users)), "right")
        return self.by_cluster[np.minimum(pos, self.ends[clusters] - 1)]

    def distinct(self, first_user: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``counts[j]`` distinct items for user ``first_user + j``; (users, items) arrays.

        Draws with replacement and drops repeats for a few rounds (successive sampling, which is
        sampling without replacement); the few users still short, who want most of the items
        they are likely to draw, get the rest by Gumbel-top-k over all the items they lack.
        """
        local = np.arange(len(counts))
        need = counts.copy()
        kept_users, kept_items = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        kept_keys = np.empty(0, np.int64)
        for round_ in range(REDRAW_ROUNDS):
            short = local[need > 0]
            if len(short) == 0:
                break
            # Redraw more than the shortfall: a user short after a round has few items left.
            users = np.repeat(short, need[short] * 2**round_)
            items = self.draw(users + first_user)
            keys = users * self.n_items + items
            if round_ > 0:
                owned = np.sort(kept_keys[need[kept_keys // self.n_items] > 0])
                fresh = ~_in_sorted(keys, owned)
                users, items, keys = users[fresh], items[fresh], keys[fresh]
            first = _first_occurrences(keys)  # in draw order, so still grouped by user
            users, items, keys = users[first], items[first], keys[first]
            starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
            rank = np.arange(len(users)) - np.repeat(starts, np.diff(np.r_[starts, len(users)]))
            take = rank < need[users]
            need -= np.bincount(users[take], minlength=len(counts))
            kept_users.append(users[take])
            kept_items.append(items[take])
            kept_keys = np.concatenate([kept_keys, keys[take]])
        short = local[need > 0]
        rows = max(1, DENSE_CELLS // self.n_items)
        for lo in range(0, len(short), rows):
            users, items = self._top_k(short[lo : lo + rows], need, first_user, kept_keys)
            kept_users.append(users)
            kept_items.append(items)
        return np.concatenate(kept_users) + first_user, np.concatenate(kept_items)

    def _top_k(
        self, users: np.ndarray, need: np.ndarray, first_user: int, kept_keys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``need[u]`` items per (sorted, local) user not in ``kept_keys``, by Gumbel-top-k."""
        scores = self.affinity[users + first_user][:, self.item_cluster] + self.log_pop
        scores += self.rng.gumbel(size=scores.shape)
        is_row = np.zeros(len(need), dtype=bool)
        is_row[users] = True
        owned = kept_keys[is_row[kept_keys // self.n_items]]
        scores[np.searchsorted(users, owned // self.n_items), owned % self.n_items] = -np.inf
        order = np.argsort(-scores, axis=1)
        row, col = np.nonzero(np.arange(self.n_items) < need[users][:, None])
        return users[row], order[row, col]


def _first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Sorted positions of the first occurrence of each distinct key."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    return np.sort(order[np.r_[True, ordered[1:] != ordered[:-1]]])


def _in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``values`` are in ``sorted_set`` (sorted ascending)."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def _item_texts(item_cluster: np.ndarray, k: int, rng: np.random.Generator) -> list[str]:
    """A few words of the item's cluster vocabulary and some noise words, per item."""
    if k <= len(THEMES):
        vocab = [theme.split() for theme in THEMES[:k]]
    else:
        words = np.array(" ".join(THEMES).split())
        vocab = [list(rng.choice(words, WORDS_PER_CLUSTER, replace=False)) for _ in range(k)]
    width = min(len(v) for v in vocab)
    table = np.array([v[:width] for v in vocab])  # (k, width)
    n = len(item_cluster)
    picks = np.argsort(rng.random((n, width)), axis=1)[:, :TEXT_CLUSTER_WORDS]
    topic = table[item_cluster[:, None], picks]  # (n, 3)
    noise = np.array(NOISE_WORDS)[rng.integers(len(NOISE_WORDS), size=(n, TEXT_NOISE_WORDS))]
    return [
        " ".join(extra) + ": " + ", ".join(words)
        for extra, words in zip(noise.tolist(), topic.tolist(), strict=True)
    ]


def load_synthetic(
    data_dir: str | None = None,
    *,
    shape: str = "",
    n_users: int = 1000,
    n_items: int = 500,
    n_interactions: int = 20_000,
    dim: int = 16,
    n_clusters: int = 16,
    popularity_exponent: float = 1.0,
    temperature: float = 0.2,
    user_noise: float = 0.5,
    activity_sigma: float = 1.0,
    seed: int = 0,
) -> Interactions:
    """:func:`generate` with default sizes, as a dataset loader (``data_dir`` is unused).

    ``shape`` names a preset of :data:`SHAPES` (``ml-1m``, ``goodbooks``, ``ml-10m``): it sets
    the sizes, the per-user bounds, ``activity_sigma``, ``popularity_exponent`` and
    ``temperature``; ``dim``, ``n_clusters``, ``user_noise`` and ``seed`` still apply.
    """
    options = {k: v for k, v in locals().items() if k not in ("data_dir", "shape")}
    check_synthetic_options(shape=shape, **options)
    if shape:
        options.update(SHAPES[shape].generator_options())
    return generate(**options).interactions


def check_synthetic_options(*, shape: str = "", **options: Any) -> None:
    """Every check of :func:`load_synthetic`'s options, without generating (a sweep runs it
    before Ray starts)."""
    if shape:
        if shape not in SHAPES:
            raise RecsysError(
                f"synthetic: unknown shape {shape!r}; choose one of {sorted(SHAPES)} (or leave "
                f"shape out and give n_users, n_items, n_interactions)"
            )
        preset = SHAPES[shape].generator_options()
        defaults = inspect.signature(load_synthetic).parameters
        clash = sorted(k for k in preset if k in options and options[k] != defaults[k].default)
        if clash:
            raise RecsysError(
                f"synthetic: shape={shape} sets {', '.join(clash)}; drop those options or the shape"
            )
        options = {**options, **preset}
    _check_sizes(options["n_users"], options["n_items"], options["n_interactions"],
                 options["dim"], options["n_clusters"])  # fmt: skip
    shape_options = [options[k] for k in _SHAPE_OPTIONS]
    _check_options(*shape_options)
    if not np.isfinite(shape_options).all():
        raise RecsysError("synthetic: temperature and the other shape options must be finite")
    if options["seed"] < 0:
        raise RecsysError(f"synthetic: seed must be an integer >= 0, got {options['seed']}")


_SHAPE_OPTIONS = ("temperature", "popularity_exponent", "user_noise", "activity_sigma")

load_synthetic.check_options = check_synthetic_options  # see recsys.data.loaders.check_options
