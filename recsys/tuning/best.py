"""After the search, for one model: its best checkpoint, scored on validation and test.

Pure: reads the search's results and checkpoints, writes no file and no MLflow run (that is
``results`` and ``tracking``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.errors import RecsysError
from recsys.metrics import metric_key, parse_metric
from recsys.tuning.config import REPORT_KS
from recsys.tuning.trainable import load_checkpoint, split_config, trial_seed

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.evaluate import UserMetrics
    from recsys.train import Trainer


@dataclass
class ModelOutcome:
    """What the search and the final evaluation found for one model.

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
        best_run_id: the model's "best" MLflow run, once logged.
        error: why the model has no result (every trial failed), in one line; None if it has.
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=float)

    @classmethod
    def from_json(cls, text: str) -> ModelOutcome:
        return cls(**json.loads(text))


class ModelFailed(RecsysError):
    """Every trial of a model failed: it has no best checkpoint."""


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


@dataclass
class Best:
    """A model's outcome, with the trainer restored from its best checkpoint and every seed
    run's per-user test metrics (the best checkpoint's first)."""

    outcome: ModelOutcome
    trainer: Trainer
    checkpoint: Any  # ray.tune.Checkpoint
    per_user: list[tuple[int, UserMetrics]] = field(default_factory=list)


@dataclass(frozen=True)
class Choice:
    """A model's best checkpoint among its trials, and what trained it.

    Attributes:
        result: the trial's Tune ``Result``; ``checkpoint`` the chosen one of its checkpoints.
        config: the trial's hyperparameters; ``seed`` its seed; ``epoch`` the checkpoint's.
    """

    result: Any
    checkpoint: Any
    config: dict[str, Any]
    seed: int
    epoch: int


def choose(model: str, grid: Sequence[Any], metric: str, root_seed: int) -> Choice:
    """The checkpoint with the best validation ``metric`` over all trials and epochs of
    ``model`` (no file read, no model built).

    Raises:
        ModelFailed: every trial failed, or none reported the metric with a checkpoint.
    """
    result, checkpoint, metrics = best_checkpoint(grid, model, metric_key("val", metric))
    _, config = split_config(result.config)
    seed = trial_seed(root_seed, model, config)
    return Choice(result, checkpoint, config, seed, int(metrics.get("epoch", 0)))


def evaluate_best(
    model: str,
    grid: Sequence[Any],
    data: SplitData,
    metric: str,
    root_seed: int,
    max_epochs: int,
) -> Best:
    """Restores the best checkpoint among ``grid`` and scores it on ``data``.

    Args:
        model: the model searched.
        grid: the results (Tune ``Result``) of the model's trials.
        data: the full split (the test pairs included: this is the one place they are read).
        metric: the validation target that chose the best checkpoint.
        root_seed: the sweep's root seed (the trial's seed is derived from it).
        max_epochs: the model's budget, to tell trials ASHA stopped from finished ones.
    """
    from recsys.train import Trainer, resolve_device

    chosen = choose(model, grid, metric, root_seed)
    trainer = Trainer(model, chosen.config, data, device=resolve_device(), seed=chosen.seed)
    with chosen.checkpoint.as_directory() as folder:
        load_checkpoint(trainer, folder)
    ks = report_ks(metric)
    test = trainer.evaluate_users("test", ks)
    cost = search_cost(grid, max_epochs)
    outcome = ModelOutcome(
        model=model,
        trial_id=str(chosen.result.metrics.get("trial_id", "")),
        config=chosen.config,
        seed=chosen.seed,
        best_epoch=trainer.epoch,
        val=_floats(trainer.evaluate(split="val", ks=ks)),
        test=_floats(test.means()),
        trials=cost.trials,
        epochs=cost.epochs,
        wall_seconds=cost.wall_seconds,
        seconds_per_epoch=cost.seconds / max(1, cost.epochs),
        curves=trial_curves(grid, metric_key("val", metric), max_epochs),
        trials_stopped=cost.stopped,
        trials_failed=cost.failed,
        seeds=[chosen.seed],
    )
    outcome.seed_tests = [dict(outcome.test)]
    return Best(outcome, trainer, chosen.checkpoint, [(chosen.seed, test)])


def report_ks(metric: str) -> tuple[int, ...]:
    """The cut-offs the final evaluation reports: the leaderboard's and the target's."""
    return tuple(sorted({*REPORT_KS, parse_metric(metric)[1]}))


def add_seed_runs(
    best: Best, runs: Sequence[tuple[int, bytes]], n: int, data: SplitData, metric: str
) -> None:
    """Scores the seed runs of ``best``'s config on test and makes ``best.outcome.test`` their
    mean over the seeds (the best checkpoint's included).

    Args:
        runs: ``(seed, weights)`` of the seed runs that trained
            (:class:`recsys.tuning.seeds.Replicas`); none for a closed-form model, whose every
            seed fits the same model: it counts ``n`` seeds with the same scores.
        n: the number of seeds asked for.
    """
    from recsys.models import get_spec
    from recsys.train import Trainer
    from recsys.tuning.seeds import load_weights, replica_seeds

    outcome = best.outcome
    if n <= 1:
        return
    ks = report_ks(metric)
    seeds = []
    for seed, blob in runs:
        trainer = Trainer(
            outcome.model, outcome.config, data, device=best.trainer.device, seed=seed
        )
        load_weights(trainer, blob)
        scores = trainer.evaluate_users("test", ks)
        best.per_user.append((seed, scores))
        seeds.append(seed)
        outcome.seed_tests.append(_floats(scores.means()))
    if get_spec(outcome.model).trainable:
        outcome.seeds = [outcome.seed, *seeds]
    else:  # the same model for every seed
        outcome.seeds = replica_seeds(outcome.seed, n)
        outcome.seed_tests = [dict(outcome.seed_tests[0]) for _ in range(n)]
    if len(outcome.seed_tests) < 2:
        return  # every other seed failed: the best checkpoint's scores stand alone
    tests = outcome.seed_tests
    outcome.test = {k: float(np.mean([t[k] for t in tests])) for k in tests[0]}
    outcome.test_std = {k: float(np.std([t[k] for t in tests], ddof=1)) for k in tests[0]}


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def best_checkpoint(grid: Sequence[Any], model: str, key: str) -> tuple[Any, Any, dict]:
    """The trial result, checkpoint and the checkpoint's reported metrics with the highest
    ``key`` over all trials and epochs.

    Raises:
        ModelFailed: every trial of ``model`` failed, or none reported ``key`` with a
            checkpoint.
    """
    if all(result.error is not None for result in grid):
        first = next((r.error for r in grid if r.error is not None), None)
        raise ModelFailed(f"every trial of {model!r} failed; first error: {one_line(first)}")
    best = None
    for result in grid:
        for checkpoint, metrics in result.best_checkpoints or []:
            value = metrics.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if best is None or value > best[2]:
                best = (result, checkpoint, value, metrics)
    if best is None:
        raise ModelFailed(f"no trial of {model!r} reported {key} with a checkpoint")
    return best[0], best[1], best[3]


def one_line(error: Any) -> str:
    """The last line of an error (a trial's error is a whole remote traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def search_cost(grid: Sequence[Any], max_epochs: int) -> SearchCost:
    """What a model's search spent, from the epochs, per-epoch seconds and report times its
    trials reported. Its wall time includes the time a sweep stood interrupted."""
    failed = sum(result.error is not None for result in grid)
    stopped = epochs = 0
    seconds = 0.0
    starts, ends = [], []
    for result in grid:
        frame = result.metrics_dataframe
        if frame is None or "epoch" not in frame:
            continue
        if "timestamp" in frame and "time_total_s" in frame:
            starts.append(float((frame["timestamp"] - frame["time_total_s"]).min()))
            ends.append(float(frame["timestamp"].max()))
        frame = frame.drop_duplicates("epoch", keep="last")
        last = int(frame["epoch"].max())
        epochs += last
        stopped += result.error is None and last < max_epochs
        if "epoch_seconds" in frame:
            gaps = frame["epoch"].diff().fillna(frame["epoch"].iloc[0])
            seconds += float((frame["epoch_seconds"] * gaps).sum())
    wall = max(ends) - min(starts) if starts else 0.0
    return SearchCost(len(grid), stopped, failed, epochs, seconds, wall)


def trial_curves(grid: Sequence[Any], key: str, max_epochs: int) -> list[dict[str, Any]]:
    """Every reported ``(trial, epoch, value)`` of a search, and whether the trial stopped early."""
    rows = []
    for result in grid:
        frame = result.metrics_dataframe
        if frame is None or key not in frame or "epoch" not in frame:
            continue
        frame = frame.dropna(subset=[key]).drop_duplicates("epoch", keep="last")
        last = int(frame["epoch"].max()) if len(frame) else 0
        trial_id = str((result.metrics or {}).get("trial_id", result.path))
        stopped = bool(last < max_epochs and result.error is None)
        for epoch, value in zip(frame["epoch"], frame[key], strict=True):
            rows.append(
                {
                    "trial_id": trial_id,
                    "epoch": int(epoch),
                    "value": float(value),
                    "stopped_early": stopped,
                }
            )
    return rows
