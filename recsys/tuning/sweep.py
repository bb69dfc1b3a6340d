"""A sweep, step by step (each step is a module of ``recsys.tuning``)::

    SweepConfig -> state (results dir claimed), {model: SearchSpace}, {model: Budget}, cluster, data
    run_search -> ResultGrid --records_of--> {model: [TrialRecord]}   (Tune's shapes end here)
    best.choose([TrialRecord]) -> Choice --scoring.score(EvalProtocol)--> Scored (ModelOutcome)
    replicas.start(choices, folds) ... collect(model) -> [SeedRun] --add_seed/fold_runs--> Scored
    finalize: results files, best MLflow run, logged model -> state.save_outcome(outcome)
    [ModelOutcome] + per-user metrics --Leaderboard.build--> Leaderboard
    Leaderboard -> leaderboard files, breakdowns (buckets, --compare), MLflow statistics,
        registry.publish (the champion)

One Tuner runs every model's trials at once (each model keeps its own searcher, ASHA and budget),
all under one MLflow parent run. The driver holds the full split; trials get
``data.without_test()``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recsys.errors import SweepInterrupted
from recsys.seeds import derive_seed
from recsys.tuning import breakdown, console, endings, finalize, registry, results, tracking
from recsys.tuning.config import SweepConfig, model_budget, validate
from recsys.tuning.endings import SweepResult
from recsys.tuning.finalize import tracked_step
from recsys.tuning.folds import load_folds
from recsys.tuning.inputs import check_entities, for_trials, load_data
from recsys.tuning.interrupts import sigterm_interrupts
from recsys.tuning.leaderboard import Leaderboard
from recsys.tuning.outcome import ModelOutcome
from recsys.tuning.records import TrialRecord, records_of
from recsys.tuning.replicas import Replicas
from recsys.tuning.resources import ClusterShape, check_shared, connect, resolve_resources
from recsys.tuning.scoring import EvalProtocol
from recsys.tuning.search import run_search
from recsys.tuning.state import SweepState
from recsys.tuning.trial_runs import MlflowTrialCallback
from recsys.tuning.warm_start import source as warm_source

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.tuning.resources import TrialResources
    from recsys.tuning.space import Budget, SearchSpace

__all__ = ["SweepInterrupted", "SweepResult", "run_sweep"]


@dataclass
class _Run:
    """One run of a sweep, as its steps share it."""

    state: SweepState
    spaces: dict[str, SearchSpace]
    budgets: dict[str, Budget]
    resources: TrialResources
    data: SplitData
    callbacks: Sequence[Any] = ()
    search_seconds: float = 0.0


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
    console.configure(cfg.verbose)
    run, notes = _prepare(cfg, data, callbacks)
    try:
        _open_tracking(run)
        return _finish(run, started, notes)
    finally:
        run.state.release()


def _finish(run: _Run, started: float, notes: list[str]) -> SweepResult:
    """The sweep's steps, and how it ended recorded whatever the ending."""
    try:
        with sigterm_interrupts():
            board, outcomes = _run(run)
    except BaseException as error:  # recorded in the state and MLflow, then raised
        ending = endings.ended(run.state, error)
        if ending is error:
            raise
        raise ending from None
    seconds = time.time() - started
    result = SweepResult(run.state, board, outcomes, seconds, run.search_seconds, notes)
    endings.record(run.state, result.ending)
    return result


def _prepare(
    cfg: SweepConfig, data: SplitData | None, callbacks: Sequence[Any]
) -> tuple[_Run, list[str]]:
    """The results directory claimed, every check, the cluster and the data; nothing else is
    written yet (a refused sweep lets the claim go and removes it)."""
    state = SweepState.resume(cfg) if cfg.resume else SweepState.create(cfg)
    try:
        return _checked(state, data, callbacks)
    except BaseException:
        state.release(undo=True)
        raise


def _checked(
    state: SweepState, data: SplitData | None, callbacks: Sequence[Any]
) -> tuple[_Run, list[str]]:
    cfg = state.config
    spaces = validate(cfg)
    state.check_paths()
    tracking.check_store(state.tracking_uri)
    budgets = {m: model_budget(s, cfg) for m, s in spaces.items()}
    connect(cfg.address)
    cluster = ClusterShape.from_ray()
    check_shared(cluster, state.storage, state.tracking_uri)
    resources, note = resolve_resources(cluster, cfg.cpus_per_trial, cfg.gpus_per_trial)
    notes = [note] if note else []
    console.say(*notes)
    data = check_entities(load_data(cfg, data), spaces.values())
    resources = resources.with_memory(cluster, data, spaces)  # refuses what fits no node
    return _Run(state, spaces, budgets, resources, data, callbacks), notes


def _open_tracking(run: _Run) -> None:
    """From here on, things are written: the store, the sweep's parent run, its state."""
    state, cfg = run.state, run.state.config
    tracking.open_store(state.tracking_uri)
    state.parent_run_id = tracking.start_parent_run(
        state.tracking_uri,
        state.experiment,
        state.name,
        tags=tracking.provenance_tags(run.data, cfg.command),
        params=tracking.sweep_params(cfg, run.resources, run.budgets),
        run_id=state.parent_run_id,
    )
    registry.describe(state.tracking_uri, state.parent_run_id, cfg, run.data)
    state.keep_spaces(run.spaces)
    state.save()


def _run(run: _Run) -> tuple[Leaderboard, list[ModelOutcome]]:
    """The search, the seed runs, each model's outcome and the leaderboard."""
    state, cfg = run.state, run.state.config
    data, trial_data = for_trials(run.data, run.spaces.values())
    records = _search(run, trial_data)
    chosen = finalize.choices(state, records)  # each model's best checkpoint, chosen once
    folds = load_folds(cfg, data, trial_data)  # --folds: every fold, fold 1 the search's
    replicas = Replicas.start(chosen, cfg.seeds, trial_data, run.resources, folds)
    try:
        protocol = EvalProtocol.of(cfg, data)  # the sampled candidates, once for every model
        outcomes = finalize.outcomes(state, data, records, chosen, replicas, protocol, folds)
    finally:
        replicas.cancel()
    bootstrap = derive_seed(cfg.seed, "bootstrap")
    reported = {"seed": bootstrap, "ks": cfg.report_ks, "negatives": cfg.sampled_negatives}
    board = results.write_results(state.results_dir, data, outcomes, cfg.metric, **reported)
    breakdown.report(state, data, board, bootstrap)  # by bucket, and the pairs compared
    uri, parent = state.tracking_uri, state.parent_run_id
    tracked_step(state, lambda: tracking.log_statistics(uri, board))
    tracked_step(state, lambda: registry.publish(uri, parent, cfg.dataset, board))
    return board, outcomes


def _search(run: _Run, trial_data: Any) -> dict[str, list[TrialRecord]]:
    """Every model's trials, at once, as records; none when an earlier run of the sweep
    reached every model's outcome (only the results were left to write)."""
    state, cfg = run.state, run.state.config
    if all(state.outcome(m) is not None for m in run.spaces):
        return {}
    max_epochs = {m: b.max_epochs for m, b in run.budgets.items()}
    of_sweep = (state.parent_run_id, max_epochs, cfg.seed, state.sweep_id)
    trial_runs = MlflowTrialCallback(state.tracking_uri, *of_sweep)
    callbacks = [trial_runs, *run.callbacks]
    warm = warm_source(state, run.data) if cfg.warm_start else None
    search = run_search(
        cfg, run.spaces, run.budgets, run.resources, trial_data, state.storage, callbacks, warm
    )
    run.search_seconds = search.wall_seconds
    state.record_search(search.wall_seconds, search.cut)
    trial_runs.outbox.drain()  # updates that waited for the tracking server, or TrackingLost
    if not search.finished:
        raise endings.interrupted(state)
    records = records_of(search.grid, max_epochs, cfg.seed)
    if (problem := trial_runs.complete(records)) is not None:
        state.lose_tracking(problem)
    return records
