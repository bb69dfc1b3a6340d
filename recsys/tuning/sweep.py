"""A sweep, step by step: state, spaces, cluster, data, then per model search -> best -> results
-> tracking.

One Tuner per model (each search-space file has its own budget), one after the other, all under
one MLflow parent run. The driver holds the full split; trials get ``data.without_test()``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recsys.errors import RecsysError
from recsys.tuning import results, tracking
from recsys.tuning.best import ModelFailed, ModelOutcome, evaluate_best, search_cost
from recsys.tuning.config import SweepConfig, model_budget, validate
from recsys.tuning.inputs import for_trials, load_data
from recsys.tuning.resources import (
    ClusterShape,
    TrialResources,
    check_shared,
    connect,
    resolve_resources,
)
from recsys.tuning.search import run_search
from recsys.tuning.space import Budget, SearchSpace
from recsys.tuning.state import SweepState

if TYPE_CHECKING:
    import pandas as pd

    from recsys.data.dataset import SplitData


class SweepInterrupted(RecsysError):
    """The sweep stopped before every trial finished; ``--resume`` continues it."""


@dataclass
class SweepResult:
    """What :func:`run_sweep` hands back; ``state.status`` says how the sweep ended."""

    state: SweepState
    leaderboard: pd.DataFrame
    outcomes: list[ModelOutcome]
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failed_models(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def trials_failed(self) -> int:
        return sum(o.trials_failed for o in self.outcomes)


@dataclass
class _Run:
    """What every model's step of one sweep shares."""

    state: SweepState
    data: SplitData
    trial_data: Any  # object-store reference to data.without_test()
    resources: TrialResources
    callbacks: Sequence[Any]


def run_sweep(
    cfg: SweepConfig, data: SplitData | None = None, callbacks: Sequence[Any] = ()
) -> SweepResult:
    """Runs (or, with ``cfg.resume``, continues) a sweep and writes its results directory.

    Args:
        cfg: the sweep's settings.
        data: the full split (default: ``recsys.data.load_split`` of ``cfg``'s dataset).
        callbacks: extra Ray Tune callbacks for every model's search.

    Raises:
        RecsysError: bad input (checked before anything is written or any trial starts).
        SweepInterrupted: the search stopped before every trial finished; resume it.
    """
    started = time.time()
    state = SweepState.resume(cfg) if cfg.resume else SweepState.create(cfg)
    cfg = state.config
    spaces = validate(cfg)
    state.check_paths()
    tracking.check_store(state.tracking_uri)
    budgets = {m: model_budget(s, cfg) for m, s in spaces.items()}
    connect(cfg.address)
    cluster = ClusterShape.from_ray()
    check_shared(cluster, state.storage, state.tracking_uri)
    resources, note = resolve_resources(cluster, cfg.cpus_per_trial, cfg.gpus_per_trial)
    data = load_data(cfg, data)
    notes = [note] if note else []
    for line in notes:
        print(line, flush=True)

    # From here on, things are written.
    tracking.open_store(state.tracking_uri)
    state.parent_run_id = tracking.start_parent_run(
        state.tracking_uri,
        state.experiment,
        state.name,
        tags=tracking.provenance_tags(data, cfg.command),
        params=tracking.sweep_params(cfg, resources, budgets),
        run_id=state.parent_run_id,
    )
    state.save()
    try:
        data, trial_data = for_trials(data, spaces.values())
        run = _Run(state, data, trial_data, resources, callbacks)
        outcomes = [_model(run, spaces[m], budgets[m]) for m in spaces]
    except (SweepInterrupted, KeyboardInterrupt):
        _end(state, "interrupted")
        raise
    except BaseException:
        _end(state, "failed")
        raise
    board = results.write_results(state.results_dir, data, outcomes, cfg.metric)
    result = SweepResult(state, board, outcomes, time.time() - started, notes)
    if result.failed_models:
        _end(state, "failed")
    else:
        _end(state, "trials_lost" if result.trials_failed else "finished")
    return result


def _end(state: SweepState, status: str) -> None:
    """Records how the sweep ended: in its state, on its MLflow runs (open ones closed)."""
    state.status = status
    state.save()
    tracking.end_sweep(state.tracking_uri, state.parent_run_id, status)


def _model(run: _Run, space: SearchSpace, budget: Budget) -> ModelOutcome:
    """One model: its search, its best checkpoint on test, its files and its best run.

    A model whose outcome an earlier run of the sweep reached is not searched again.
    """
    state, cfg, model = run.state, run.state.config, space.model
    done = state.outcome(model)
    if done is not None:
        return done
    if cfg.verbose:
        print(
            f"== {model}: {budget.num_samples} trials, up to {budget.max_epochs} epochs "
            f"({cfg.scheduler}, {cfg.search} search)",
            flush=True,
        )
    trial_runs = tracking.MlflowTrialCallback(
        state.tracking_uri, state.parent_run_id, model, budget.max_epochs, cfg.seed
    )
    callbacks = [trial_runs, *run.callbacks]
    search = run_search(cfg, space, budget, run.resources, run.trial_data, state.storage, callbacks)
    wall = state.add_wall_seconds(model, search.wall_seconds)
    state.save()
    if not search.finished:
        raise SweepInterrupted(
            f"sweep {state.name!r} interrupted during {model!r}; nothing is lost: continue it "
            f"with {state.resume_command()}"
        )
    try:
        best = evaluate_best(
            model, search.grid, run.data, cfg.metric, cfg.seed, budget.max_epochs, wall
        )
    except ModelFailed as error:  # not final: --resume retries the failed trials
        return ModelOutcome.failed(
            model, str(error), search_cost(search.grid, budget.max_epochs), wall
        )
    files = results.write_model_outputs(
        state.results_dir, best.outcome, best.trainer.model, run.data, cfg.metric
    )
    best.outcome.best_run_id = tracking.log_best_run(
        state.tracking_uri,
        state.parent_run_id,
        best,
        {"recommendations": files["recommendations"], "plots": files["curve"]},
    )
    state.save_outcome(best.outcome)
    return best.outcome
