"""The leaderboard: one typed row per model, ranked by the sweep's target metric on test, with
bootstrap intervals and paired tests against the best model on that metric.

``Leaderboard.build(outcomes, metric, per_user, seed)`` is the one place the ranking is made;
the results files, MLflow's statistics, the registry's champion (:meth:`Leaderboard.best_model`)
and the console's summary all read it. ``to_frame()`` is ``leaderboard.csv``'s table; with the
sampled protocol (``--sampled-negatives``), ``to_sampled_frame()`` is ``leaderboard_sampled.csv``'s:
the same models in the order of their sampled target beside their full-ranking order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.metrics import (
    REPORT_KS,
    all_items_metrics,
    beyond_metrics,
    metric_key,
    reported_metrics,
    sampled_metrics,
    sampled_target,
)
from recsys.tuning.outcome import ModelOutcome

_NAN = float("nan")
# The columns that follow their metric's: its interval, spread, and lowest and highest fold.
_SPREAD = ("_ci_low", "_ci_high", "_std", "_fold_min", "_fold_max")


@dataclass(frozen=True)
class Row:
    """One model's line.

    Attributes:
        outcome: what the search and the final evaluation found.
        intervals: per test metric key (``test_ndcg_at_10``), its 95% bootstrap interval over
            test users; empty for a model without per-user metrics.
        p_wilcoxon, p_ttest: the paired tests of the target against the best model's,
            Holm-corrected (None: the best row itself, or no test).
        tied_with_best: neither test below 0.05 (True on the best row; None without tests).
    """

    outcome: ModelOutcome
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    p_wilcoxon: float | None = None
    p_ttest: float | None = None
    tied_with_best: bool | None = None

    @property
    def model(self) -> str:
        return self.outcome.model

    @property
    def has_scores(self) -> bool:
        return self.outcome.has_scores

    def test(self, metric: str) -> float:
        """The test value of ``metric`` (NaN without scores)."""
        return float(self.outcome.test.get(metric, _NAN))


@dataclass(frozen=True)
class Leaderboard:
    """Rows best first by ``metric`` on test, models without scores last.

    ``metrics`` are the evaluator's names of what it shows on validation and test (the target
    among them), ``beyond`` the beyond-accuracy metrics it shows on test, ``sampled`` the
    sampled protocol's (shown by :meth:`to_sampled_frame`; empty without it, ``negatives`` its
    negatives per test item); ``statistics`` whether intervals were computed (some model had
    per-user metrics), ``tested`` whether paired tests were (the target is a per-user metric);
    ``all_items`` a cold-item split's test metrics ranked among every item (``all_ndcg@10``;
    empty on other splits: there ``metrics`` already rank among every item).
    """

    metric: str
    rows: tuple[Row, ...]
    metrics: tuple[str, ...]
    statistics: bool = False
    tested: bool = False
    beyond: tuple[str, ...] = ()
    sampled: tuple[str, ...] = ()
    negatives: int = 0
    folds: int = 0
    all_items: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        outcomes: Sequence[ModelOutcome],
        metric: str = "ndcg@10",
        per_user: Mapping[str, pd.DataFrame] | None = None,
        seed: int = 0,
        ks: Sequence[int] = REPORT_KS,
        negatives: int = 0,
        cold: bool = False,
    ) -> Leaderboard:
        """Ranks ``outcomes`` by ``metric`` on test; with ``per_user`` (model -> its
        ``per_user`` frame), each row gets its intervals and tests (seeded by ``seed``).

        Args:
            ks: the reported cut-offs (``--report-ks``; the target's is added).
            negatives: the sampled protocol's negatives per test item (0: not run).
            cold: a cold-item split: show the test metrics among every item too.
        """
        shown = {
            "metrics": tuple(reported_metrics(metric, ks)),
            "beyond": tuple(beyond_metrics(metric, ks)),
            "sampled": tuple(sampled_metrics(metric, ks)) if negatives else (),
            "negatives": negatives,
            "folds": max((len(o.folds) for o in outcomes), default=0),
            "all_items": tuple(all_items_metrics(metric, ks)) if cold else (),
        }
        ranked = sorted(outcomes, key=lambda o: _descending(o.test.get(metric, _NAN)))
        rows = tuple(Row(o) for o in ranked)
        if not per_user:
            return cls(metric, rows, **shown)
        every = (*shown["metrics"], *shown["beyond"], *shown["sampled"], *shown["all_items"])
        stats = statistics(per_user, [r.model for r in rows], metric, every, seed)
        rows = tuple(
            Row(r.outcome, **vars(stats[r.model])) if r.model in stats else r for r in rows
        )
        tested = any(s.tied_with_best is not None for s in stats.values())
        return cls(metric, rows, statistics=True, tested=tested, **shown)

    def best_model(self) -> Row | None:
        """The first row with scores: the sweep's champion (None when no model has one)."""
        return next((r for r in self.rows if r.has_scores), None)

    def row(self, model: str) -> Row:
        return next(r for r in self.rows if r.model == model)

    def __len__(self) -> int:
        return len(self.rows)

    def to_frame(self) -> pd.DataFrame:
        """``leaderboard.csv``'s table (its columns: ``recsys.tuning.results``' docstring)."""
        records = [self._record(r) for r in self.rows]
        frame = pd.DataFrame(records)
        return frame[_ordered(frame.columns)] if len(frame.columns) else frame

    def _record(self, row: Row) -> dict[str, Any]:
        o = row.outcome
        out: dict[str, Any] = {"model": o.model}
        for split, values in (("val", o.val), ("test", o.test)):
            for name in self.metrics:
                out[metric_key(split, name)] = float(values.get(name, _NAN))
        for name in self.metrics:
            out[f"{metric_key('test', name)}_std"] = float(o.test_std.get(name, _NAN))
        for name in (*self.beyond, *self.all_items):
            out[metric_key("test", name)] = float(o.test.get(name, _NAN))
            out[f"{metric_key('test', name)}_std"] = float(o.test_std.get(name, _NAN))
        out.update(
            seeds=len(o.seeds) if o.error is None else 0,
            epochs=o.epochs,
            trials=o.trials,
            trials_finished=o.trials_finished,
            trials_stopped=o.trials_stopped,
            trials_failed=o.trials_failed,
            wall_seconds=round(o.wall_seconds, 2),
            seconds_per_epoch=round(o.seconds_per_epoch, 4),
            best_epoch=o.best_epoch,
            best_trial=o.trial_id,
            best_run_id=o.best_run_id or "",
            error=o.error or "",
        )
        if self.folds:
            out.update(self.fold_spread(o))
        if any(r.outcome.skipped for r in self.rows):
            out["status"] = o.skipped or ("failed" if o.error else "scored")
        if self.statistics:
            out.update(self._intervals(row, (*self.metrics, *self.beyond, *self.all_items)))
        if self.tested:
            out.update(
                p_wilcoxon=_NAN if row.p_wilcoxon is None else row.p_wilcoxon,
                p_ttest=_NAN if row.p_ttest is None else row.p_ttest,
                tied_with_best=row.tied_with_best,
            )
        return out

    def fold_spread(self, o: ModelOutcome) -> dict[str, Any]:
        """``--folds``: how many folds scored the model, and its target's lowest and highest
        fold (``_std`` is their standard deviation)."""
        values = [t.get(self.metric, _NAN) for t in o.fold_tests] or [_NAN]
        key = metric_key("test", self.metric)
        return {
            "folds": len(o.folds) if o.error is None else 0,
            f"{key}_fold_min": float(min(values)),
            f"{key}_fold_max": float(max(values)),
        }

    def to_folds_frame(self) -> pd.DataFrame:
        """``leaderboard_folds.csv``'s table (``--folds``): one row per model with scores and
        fold, in the leaderboard's order: ``model``, ``fold``, its test metrics and
        beyond-accuracy metrics on that fold's test (fold 1's: the best checkpoint's)."""
        records = [
            {"model": r.model, "fold": fold}
            | {metric_key("test", n): float(t.get(n, _NAN)) for n in (*self.metrics, *self.beyond)}
            for r in self.rows
            if r.has_scores
            for fold, t in zip(r.outcome.folds, r.outcome.fold_tests, strict=True)
        ]
        return pd.DataFrame(records)

    def _intervals(self, row: Row, names: Sequence[str]) -> dict[str, float]:
        """``<key>_ci_low`` / ``_ci_high`` of ``names``, where some row has an interval."""
        out = {}
        for name in names:
            key = metric_key("test", name)
            low, high = row.intervals.get(key, (_NAN, _NAN))
            if any(key in r.intervals for r in self.rows):
                out[f"{key}_ci_low"], out[f"{key}_ci_high"] = low, high
        return out

    def sampled_order(self) -> list[Row]:
        """The rows with scores best first by :func:`recsys.metrics.sampled_target` (equal values
        in the full ranking's order); empty without the sampled protocol."""
        if not self.sampled:
            return []
        target = sampled_target(self.metric)
        scored = [r for r in self.rows if r.has_scores]
        return sorted(scored, key=lambda r: _descending(r.test(target)))

    def to_sampled_frame(self) -> pd.DataFrame:
        """``leaderboard_sampled.csv``'s table: per model with scores, ``rank_sampled`` (by
        sampled NDCG at the target's cut-off), ``rank_full`` (its place on the full-ranking
        leaderboard), the full-ranking target on test, then each sampled metric on test with
        its interval and spread; sorted by ``rank_sampled``."""
        full = {r.model: i for i, r in enumerate((r for r in self.rows if r.has_scores), 1)}
        target = metric_key("test", self.metric)
        records = []
        for place, row in enumerate(self.sampled_order(), 1):
            out: dict[str, Any] = {
                "model": row.model,
                "rank_sampled": place,
                "rank_full": full[row.model],
                target: row.test(self.metric),
            }
            for name in self.sampled:
                out[metric_key("test", name)] = row.test(name)
                out[f"{metric_key('test', name)}_std"] = float(row.outcome.test_std.get(name, _NAN))
            if self.statistics:
                out.update(self._intervals(row, self.sampled))
            records.append(out)
        frame = pd.DataFrame(records)
        return frame[_ordered(frame.columns)] if len(frame.columns) else frame


def order_agreement(first: Sequence[str], second: Sequence[str]) -> tuple[int, int]:
    """How many pairs of the models of ``first`` the two orders rank the other way round, and
    how many pairs there are (Kendall's tau is 1 - 2 x discordant / pairs)."""
    place = {m: i for i, m in enumerate(second)}
    models = [m for m in first if m in place]
    pairs = len(models) * (len(models) - 1) // 2
    discordant = sum(place[a] > place[b] for i, a in enumerate(models) for b in models[i + 1 :])
    return discordant, pairs


def _descending(value: float) -> tuple[bool, float]:
    return (math.isnan(value), -value if not math.isnan(value) else 0.0)


def _ordered(columns: Sequence[str]) -> list[str]:
    """Each test metric followed by its interval and spread, then everything else."""
    out: list[str] = []
    for c in columns:
        if c in out or c.endswith(_SPREAD):
            continue
        out.append(c)
        out += [f"{c}{s}" for s in _SPREAD if f"{c}{s}" in columns]
    return out


@dataclass(frozen=True)
class Statistics:
    """One model's statistics: see :class:`Row`."""

    intervals: Mapping[str, tuple[float, float]]
    p_wilcoxon: float | None = None
    p_ttest: float | None = None
    tied_with_best: bool | None = None


def statistics(
    per_user: Mapping[str, pd.DataFrame],
    ranking: Sequence[str],
    metric: str,
    metrics: Sequence[str],
    seed: int = 0,
) -> dict[str, Statistics]:
    """Bootstrap intervals of every test metric and paired tests of the target against the
    best model, per model of ``per_user``.

    A user's value is the mean over the model's seed runs. Models are compared on the users
    every one of them was scored on. With ``--folds`` (a ``fold`` column in every frame), the
    units are (fold, user) pairs: intervals resample users within each fold and are of the
    mean over folds, the paired tests pair each (fold, user) of two models.

    Args:
        per_user: model -> its per-user test metrics (``recsys.tuning.results.per_user_frame``).
        ranking: models, best first; the first with per-user metrics is the best.
        metric: the target metric, the one tested (not when it is no per-user metric, e.g.
            coverage); ``metrics`` every metric shown.
        seed: the bootstrap's seed.
    """
    from recsys.stats import against_best, bootstrap_ci

    keys = [metric_key("test", m) for m in metrics]
    columns = [c for c in keys if all(c in f for f in per_user.values())]
    unit = ["fold", "user_id"] if all("fold" in f for f in per_user.values()) else "user_id"
    users = {m: f.groupby(unit)[columns].mean() for m, f in per_user.items()}
    common = sorted(set.intersection(*(set(u.index) for u in users.values())), key=str)
    strata = np.array([c[0] for c in common]) if unit != "user_id" else None
    out = {}
    for model, values in users.items():
        bounds = bootstrap_ci(values.loc[common].to_numpy(), seed=seed, strata=strata)
        intervals = {
            c: (float(low), float(high)) for c, (low, high) in zip(columns, bounds, strict=True)
        }
        out[model] = Statistics(intervals)
    target = metric_key("test", metric)
    ranked = [m for m in ranking if m in users]
    if not ranked or target not in columns:
        return out
    best = ranked[0]
    tests = against_best({m: users[m].loc[common, target].to_numpy() for m in ranked}, best)
    for model, stats in out.items():
        test = tests.get(model) if model != best else None
        out[model] = Statistics(
            stats.intervals,
            p_wilcoxon=None if test is None else test.wilcoxon_p_holm,
            p_ttest=None if test is None else test.ttest_p_holm,
            tied_with_best=True if test is None else test.tied,
        )
    return out
