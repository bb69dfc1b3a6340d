"""Statistics over per-user metrics: bootstrap confidence intervals and paired significance tests.

Every test user contributes one value per metric (``recsys.evaluate.user_metrics``), and every
model is scored on the same users, so models compare pairwise, user by user:

- a metric's confidence interval is the percentile bootstrap of its mean over users (users
  resampled with replacement, seeded, every resample at once as one matrix product);
- a model differs from the best one by the Wilcoxon signed-rank test and the paired t-test on
  the per-user differences, each Holm-corrected across the models compared with the best;
- any pairs of models asked for (``--compare a:b``) by the same tests, Holm-corrected across
  those pairs (:func:`pairwise`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 1000
LEVEL = 0.95
ALPHA = 0.05
_CHUNK = 256  # resamples per matrix product: chunk x users counts, kept small in memory


def bootstrap_ci(
    values: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> np.ndarray:
    """Percentile-bootstrap intervals of the mean over users, for one or several metrics.

    Each resample draws ``len(values)`` users with replacement (the same draws for every
    metric, so intervals of different metrics come from the same resamples). With ``strata``
    (cross-validation: each row a (fold, user) pair), each stratum's users are resampled
    within it and the statistic is the mean of the strata's means: the mean over folds.

    Args:
        values: (U,) or (U, M) per-user values.
        n_resamples: bootstrap resamples.
        level: the interval's coverage (0.95: the 2.5th and 97.5th percentiles).
        seed: the resampling's seed; the same seed gives the same bounds.
        strata: (U,) the stratum (fold) of each row; None: one stratum.

    Returns:
        (2,) ``[low, high]`` for (U,) input, else (M, 2).
    """
    x = np.asarray(values, dtype=np.float64)
    single = x.ndim == 1
    x = x.reshape(len(x), -1)
    n = len(x)
    if n == 0:
        raise ValueError("a bootstrap needs at least one user")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    groups = [x] if strata is None else [x[strata == s] for s in np.unique(strata)]
    means = np.zeros((n_resamples, x.shape[1]))
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        for group in groups:
            m = len(group)
            # How often each user is drawn in each resample: a multinomial row per resample.
            counts = rng.multinomial(m, np.full(m, 1.0 / m), size=size)
            means[start : start + size] += counts @ group / m / len(groups)
    tail = (1 - level) / 2 * 100
    bounds = np.percentile(means, [tail, 100 - tail], axis=0).T  # (M, 2)
    return bounds[0] if single else bounds


@dataclass(frozen=True)
class PairedTest:
    """One model against the best on the same users: the mean difference (model - best) and the
    raw and Holm-corrected p-values of both tests."""

    mean_difference: float
    wilcoxon_p: float
    ttest_p: float
    wilcoxon_p_holm: float = float("nan")
    ttest_p_holm: float = float("nan")

    @property
    def tied(self) -> bool:
        """Whether neither corrected test tells this model from the best at :data:`ALPHA`."""
        return not (self.wilcoxon_p_holm < ALPHA or self.ttest_p_holm < ALPHA)


def paired_test(model: np.ndarray, best: np.ndarray) -> PairedTest:
    """Wilcoxon signed-rank and paired t-test (two-sided) of ``model`` against ``best``.

    Args:
        model, best: (U,) per-user values of one metric, user for user.

    Identical values (every difference zero) give p = 1: nothing tells them apart.
    """
    from scipy import stats

    a, b = np.asarray(model, dtype=np.float64), np.asarray(best, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need the same users: shapes {a.shape} and {b.shape}")
    diff = a - b
    if not np.any(diff):
        return PairedTest(0.0, 1.0, 1.0)
    wilcoxon = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    ttest = stats.ttest_rel(a, b, alternative="two-sided")
    return PairedTest(float(diff.mean()), float(wilcoxon.pvalue), float(ttest.pvalue))


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def against_best(per_user: Mapping[str, np.ndarray], best: str) -> dict[str, PairedTest]:
    """Every other model against ``best``, on one metric, Holm-corrected across the models.

    Args:
        per_user: model -> (U,) per-user values of the metric, the same users in the same order.
        best: the model the others are compared with.
    """
    others = [m for m in per_user if m != best]
    raw = {m: paired_test(per_user[m], per_user[best]) for m in others}
    wilcoxon = holm(np.array([raw[m].wilcoxon_p for m in others]))
    ttest = holm(np.array([raw[m].ttest_p for m in others]))
    return {
        m: PairedTest(raw[m].mean_difference, raw[m].wilcoxon_p, raw[m].ttest_p, w, t)
        for m, w, t in zip(others, wilcoxon, ttest, strict=True)
    }


def pairwise(
    per_user: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], PairedTest]:
    """Each pair ``(a, b)`` by :func:`paired_test` (the difference is a - b), Holm-corrected
    across the pairs.

    Args:
        per_user: model -> (U,) per-user values of one metric, the same users in the same order.
        pairs: the pairs compared, each of two models of ``per_user``.
    """
    raw = {pair: paired_test(per_user[pair[0]], per_user[pair[1]]) for pair in pairs}
    wilcoxon = holm(np.array([t.wilcoxon_p for t in raw.values()]))
    ttest = holm(np.array([t.ttest_p for t in raw.values()]))
    return {
        pair: PairedTest(t.mean_difference, t.wilcoxon_p, t.ttest_p, w, p)
        for (pair, t), w, p in zip(raw.items(), wilcoxon, ttest, strict=True)
    }
