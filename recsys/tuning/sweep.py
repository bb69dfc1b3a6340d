"""A sweep, step by step: state, spaces, cluster, data, the search, the seed runs (``--seeds``),
then per model best -> results -> tracking, and the leaderboard with its statistics.

One Tuner runs every model's trials at once (each model keeps its own searcher, ASHA and budget),
all under one MLflow parent run. The driver holds the full split; trials get
``data.without_test()``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recsys.errors import RecsysError
from recsys.seeds import derive_seed
from recsys.tuning import registry, results, tracking
from recsys.tuning.best import (
    ModelFailed,
    ModelOutcome,
    add_seed_runs,
    choose,
    evaluate_best,
    search_cost,
)
from recsys.tuning.config import SweepConfig, model_budget, validate
from recsys.tuning.inputs import for_trials, load_data
from recsys.tuning.resources import (
    ClusterShape,
    TrialResources,
    check_shared,
    connect,
    resolve_resources,
)
from recsys.tuning.search import Search, run_search
from recsys.tuning.seeds import Replicas
from recsys.tuning.space import Budget, SearchSpace
from recsys.tuning.state import SweepState
from recsys.tuning.trial_runs import MlflowTrialCallback, unreachable

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
    wall_seconds: float = 0.0  # this run of the sweep (a resumed one: since the resume)
    search_seconds: float = 0.0  # the part of it in the search
    notes: list[str] = field(default_factory=list)

    @property
    def failed_models(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def trials_failed(self) -> int:
        return sum(o.trials_failed for o in self.outcomes)


def run_sweep(
    cfg: SweepConfig, data: SplitData | None = None, callbacks: Sequence[Any] = ()
) -> SweepResult:
    """Runs (or, with ``cfg.resume``, continues) a sweep and writes its results directory.

    Args:
        cfg: the sweep's settings.
        data: the full split (default: ``recsys.data.load_split`` of ``cfg``'s dataset).
        callbacks: extra Ray Tune callbacks for the search.

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
    registry.describe(state.tracking_uri, state.parent_run_id, cfg, data)
    state.save()
    try:
        with sigterm_interrupts():
            board, outcomes, search = _run(state, spaces, budgets, resources, data, callbacks)
    except SweepInterrupted:
        _end(state, "interrupted")
        raise
    except KeyboardInterrupt:  # after the search (the search saves its own state and says so)
        _end(state, "interrupted")
        raise SweepInterrupted(
            f"sweep {state.name!r} interrupted; nothing is lost: continue it with "
            f"{state.resume_command()}"
        ) from None
    except BaseException:
        _end(state, "failed")
        raise
    searched = search.wall_seconds if search is not None else 0.0
    result = SweepResult(state, board, outcomes, time.time() - started, searched, notes)
    if result.failed_models:
        _end(state, "failed")
    else:
        _end(state, "trials_lost" if result.trials_failed else "finished")
    return result


def _run(
    state: SweepState,
    spaces: dict[str, SearchSpace],
    budgets: dict[str, Budget],
    resources: TrialResources,
    data: SplitData,
    callbacks: Sequence[Any],
) -> tuple[pd.DataFrame, list[ModelOutcome], Search | None]:
    """The search, the seed runs, each model's outcome and the leaderboard."""
    cfg = state.config
    data, trial_data = for_trials(data, spaces.values())
    search = _search(state, spaces, budgets, resources, trial_data, callbacks)
    replicas = _seed_runs(state, search, list(spaces), trial_data, resources)
    try:
        outcomes = [_model(state, search, data, m, budgets[m], replicas) for m in spaces]
    finally:
        replicas.cancel()
    board = results.write_results(
        state.results_dir, data, outcomes, cfg.metric, derive_seed(cfg.seed, "bootstrap")
    )
    tracking.log_statistics(state.tracking_uri, board)
    registry.publish(state.tracking_uri, state.parent_run_id, cfg.dataset, board, outcomes)
    return board, outcomes, search


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the sweep as Ctrl-C does (``KeyboardInterrupt``), so that the sweep records
    that it was interrupted (the search replaces this with its own graceful stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _end(state: SweepState, status: str) -> None:
    """Records how the sweep ended: in its state, on its MLflow runs (open ones closed).

    A tracking store that does not answer leaves the runs open and says so; the state, the
    sweep's own record, is written first.
    """
    state.status = status
    state.save()
    try:
        tracking.end_sweep(state.tracking_uri, state.parent_run_id, status)
    except Exception as error:
        if not unreachable(error):
            raise
        print(
            f"MLflow at {state.tracking_uri} does not answer: the sweep's runs stay RUNNING "
            f"there; it ended {status!r} (see {state.results_dir}/.sweep/sweep.json)",
            flush=True,
        )


def _search(
    state: SweepState,
    spaces: dict[str, SearchSpace],
    budgets: dict[str, Budget],
    resources: TrialResources,
    trial_data: Any,
    callbacks: Sequence[Any],
) -> Search | None:
    """Every model's trials, at once. None when an earlier run of the sweep reached every
    model's outcome (only the results were left to write)."""
    cfg = state.config
    if all(state.outcome(m) is not None for m in spaces):
        return None
    if cfg.verbose:
        for model, budget in budgets.items():
            print(
                f"== {model}: {budget.num_samples} trials, up to {budget.max_epochs} epochs "
                f"({cfg.scheduler}, {cfg.search} search)",
                flush=True,
            )
    trial_runs = MlflowTrialCallback(
        state.tracking_uri,
        state.parent_run_id,
        {m: b.max_epochs for m, b in budgets.items()},
        cfg.seed,
    )
    search = run_search(
        cfg, spaces, budgets, resources, trial_data, state.storage, [trial_runs, *callbacks]
    )
    state.search_seconds += search.wall_seconds
    state.save()
    trial_runs.outbox.drain()  # updates that waited for the tracking server, or TrackingLost
    if not search.finished:
        raise SweepInterrupted(
            f"sweep {state.name!r} interrupted; nothing is lost: continue it with "
            f"{state.resume_command()}"
        )
    return search


def _seed_runs(
    state: SweepState,
    search: Search | None,
    models: list[str],
    trial_data: Any,
    resources: TrialResources,
) -> Replicas:
    """Starts seeds 2..N of every model still to evaluate, all at once (``--seeds N``)."""
    cfg = state.config
    jobs = {}
    for model in models:
        if search is None or state.outcome(model) is not None:
            continue
        try:
            chosen = choose(model, search.results(model), cfg.metric, cfg.seed)
        except ModelFailed:
            continue  # reported by _model
        jobs[model] = (chosen.config, chosen.seed, chosen.epoch)
    return Replicas.start(jobs, cfg.seeds, trial_data, resources)


def _model(
    state: SweepState,
    search: Search | None,
    data: SplitData,
    model: str,
    budget: Budget,
    replicas: Replicas,
) -> ModelOutcome:
    """One model after the search: its best checkpoint and seed runs on test, its files and its
    best run (with a run per seed under it).

    A model whose outcome an earlier run of the sweep reached is not evaluated again.
    """
    cfg = state.config
    done = state.outcome(model)
    if done is not None or search is None:
        return done
    trials = search.results(model)
    try:
        best = evaluate_best(model, trials, data, cfg.metric, cfg.seed, budget.max_epochs)
    except ModelFailed as error:  # not final: --resume retries the failed trials
        return ModelOutcome.failed(model, str(error), search_cost(trials, budget.max_epochs))
    runs, failed = replicas.weights(model)
    for line in failed:  # the model's mean is over the seeds that trained
        print(f"SEED:     {line}", flush=True)
    add_seed_runs(best, runs, cfg.seeds, data, cfg.metric)
    files = results.write_model_outputs(
        state.results_dir, best.outcome, best.trainer.model, data, cfg.metric, best.per_user
    )
    best.outcome.best_run_id = tracking.log_best_run(
        state.tracking_uri,
        state.parent_run_id,
        best,
        {
            "recommendations": files["recommendations"],
            "plots": files["curve"],
            "per_user": files["per_user"],
        },
    )
    best.outcome.seed_run_ids = tracking.log_seed_runs(state.tracking_uri, best.outcome)
    registry.log_model(state.tracking_uri, best.outcome.best_run_id, best, data)
    state.save_outcome(best.outcome)
    return best.outcome
