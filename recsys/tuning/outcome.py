"""``ModelOutcome``: what the search and the final evaluation found for one model, the type every
step after the search reads (results files, MLflow, the registry, the sweep's state)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SearchCost:
    """What a model's search spent: trials (stopped early by ASHA, failed), epochs, training
    seconds, and wall seconds from its first trial's start to its last report."""

    trials: int
    stopped: int
    failed: int
    epochs: int
    seconds: float
    wall_seconds: float


@dataclass(frozen=True)
class ModelOutcome:
    """What the search and the final evaluation found for one model (frozen: each step that adds
    to it returns a copy, :meth:`with_seeds`, :meth:`with_runs`).

    Attributes:
        model: registry name.
        trial_id: the best trial.
        config: its hyperparameters; ``seed`` its seed, ``best_epoch`` the checkpoint's epoch.
        val: full-ranking validation metrics of the best checkpoint (``"ndcg@10"``, ...).
        test: full-ranking test metrics, the mean over the model's seed runs (``--seeds``; with
            one seed, the best checkpoint's); ``test_std`` their standard deviation across
            seeds (empty with one seed), ``seed_tests`` each seed run's, in ``seeds`` order.
        trials, epochs: the search's cost: trials run, epochs trained over all of them.
        trials_stopped, trials_failed: trials ASHA stopped early; trials that ended in an error
            (after their restarts), whose results are lost. The others finished their budget.
        wall_seconds: the model's share of the search's wall time, from its first trial's start
            to its last report (models search at the same time); ``seconds_per_epoch`` a
            trial's mean epoch time.
        curves: every reported (trial, epoch, value) of the validation target.
        folds: with ``--folds K``, the folds its config was scored on (1: the search's, its
            best checkpoint), ``fold_tests`` each one's test metrics; ``test`` is then their
            mean and ``test_std`` their standard deviation across folds.
        best_run_id: the model's "best" MLflow run, once logged; ``seed_run_ids`` its seed
            runs (with ``--folds``, its fold runs).
        error: why the model has no result (every trial failed), in one line; None if it has.
        skipped: why the model was not searched at all (on a cold-item split: it cannot score
            cold items), in one line; None if it was.
    """

    model: str
    trial_id: str
    config: dict[str, Any]
    seed: int
    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    trials: int
    epochs: int
    wall_seconds: float
    seconds_per_epoch: float
    curves: list[dict[str, Any]] = field(default_factory=list)
    best_run_id: str | None = None
    trials_stopped: int = 0
    trials_failed: int = 0
    error: str | None = None
    seeds: list[int] = field(default_factory=list)
    seed_tests: list[dict[str, float]] = field(default_factory=list)
    test_std: dict[str, float] = field(default_factory=dict)
    seed_run_ids: list[str] = field(default_factory=list)
    folds: list[int] = field(default_factory=list)
    fold_tests: list[dict[str, float]] = field(default_factory=list)
    skipped: str | None = None

    @property
    def has_scores(self) -> bool:
        """Whether the model was searched and scored (it neither failed nor was skipped)."""
        return self.error is None and self.skipped is None

    @property
    def trials_finished(self) -> int:
        """Trials that trained their whole budget."""
        return self.trials - self.trials_stopped - self.trials_failed

    @classmethod
    def failed(cls, model: str, error: str, cost: SearchCost) -> ModelOutcome:
        """The outcome of a model whose every trial failed: no config, no scores."""
        return cls(
            model=model,
            trial_id="",
            config={},
            seed=0,
            best_epoch=0,
            val={},
            test={},
            trials=cost.trials,
            epochs=cost.epochs,
            wall_seconds=cost.wall_seconds,
            seconds_per_epoch=cost.seconds / max(1, cost.epochs),
            trials_stopped=cost.stopped,
            trials_failed=cost.failed,
            error=error,
        )

    @classmethod
    def not_searched(cls, model: str, reason: str) -> ModelOutcome:
        """The outcome of a model the sweep did not search (``skipped``: ``reason``)."""
        return cls(model, "", {}, 0, 0, {}, {}, 0, 0, 0.0, 0.0, skipped=reason)

    def with_seeds(
        self, seeds: Sequence[int], seed_tests: Sequence[Mapping[str, float]]
    ) -> ModelOutcome:
        """A copy whose test scores are the mean over ``seed_tests`` (one per seed run, the best
        checkpoint's first), with their spread; one run alone stands as it is."""
        tests = [dict(t) for t in seed_tests]
        changes: dict[str, Any] = {"seeds": list(seeds), "seed_tests": tests}
        if len(tests) >= 2:
            changes["test"] = {k: float(np.mean([t[k] for t in tests])) for k in tests[0]}
            changes["test_std"] = {
                k: float(np.std([t[k] for t in tests], ddof=1)) for k in tests[0]
            }
        return dataclasses.replace(self, **changes)

    def with_folds(
        self, folds: Sequence[int], fold_tests: Sequence[Mapping[str, float]]
    ) -> ModelOutcome:
        """A copy whose test scores are the mean over ``fold_tests`` (one per fold, fold 1's
        first: the best checkpoint's), with their spread across folds."""
        tests = [dict(t) for t in fold_tests]
        changes: dict[str, Any] = {"folds": list(folds), "fold_tests": tests}
        if len(tests) >= 2:
            changes["test"] = {k: float(np.mean([t[k] for t in tests])) for k in tests[0]}
            changes["test_std"] = {
                k: float(np.std([t[k] for t in tests], ddof=1)) for k in tests[0]
            }
        return dataclasses.replace(self, **changes)

    def with_runs(self, best_run_id: str | None, seed_run_ids: Sequence[str] = ()) -> ModelOutcome:
        """A copy that knows its MLflow runs."""
        return dataclasses.replace(self, best_run_id=best_run_id, seed_run_ids=list(seed_run_ids))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=float)

    @classmethod
    def from_json(cls, text: str) -> ModelOutcome:
        return cls(**json.loads(text))
