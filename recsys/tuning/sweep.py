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
from recsys.tuning.best import ModelOutcome, evaluate_best
from recsys.tuning.config import (
    SweepConfig,
    model_budget,
    needs_item_embeddings,
    prep_config,
    validate,
)
from recsys.tuning.resources import ClusterShape, TrialResources, connect, resolve_resources
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
    """What :func:`run_sweep` hands back."""

    state: SweepState
    leaderboard: pd.DataFrame
    outcomes: list[ModelOutcome]
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


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
    budgets = {m: model_budget(s, cfg) for m, s in spaces.items()}
    connect(cfg.address)
    resources, note = resolve_resources(
        ClusterShape.from_ray(), cfg.cpus_per_trial, cfg.gpus_per_trial
    )
    data = data if data is not None else _load_data(cfg)
    notes = [note] if note else []
    _announce(data, notes, cfg.verbose)

    # From here on, things are written.
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
        data = _with_item_embeddings(data, spaces.values())
        run = _Run(state, data, _put(data.without_test()), resources, callbacks)
        outcomes = [_model(run, spaces[m], budgets[m]) for m in spaces]
    except SweepInterrupted:
        tracking.finish_run(state.tracking_uri, state.parent_run_id, status="KILLED")
        raise
    except BaseException:
        tracking.finish_run(state.tracking_uri, state.parent_run_id, status="FAILED")
        raise
    board = results.write_results(state.results_dir, data, outcomes, cfg.metric)
    tracking.finish_run(state.tracking_uri, state.parent_run_id)
    state.finished = True
    state.save()
    return SweepResult(state, board, outcomes, time.time() - started, notes)


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
            f"sweep {state.name!r} interrupted during {model!r}; continue it with: "
            f"{state.resume_command()}"
        )
    best = evaluate_best(
        model, search.grid, run.data, cfg.metric, cfg.seed, budget.max_epochs, wall
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


def _load_data(cfg: SweepConfig) -> SplitData:
    from recsys.data import load_split

    return load_split(
        cfg.dataset, data_dir=cfg.data_dir, config=prep_config(cfg.prep), **cfg.dataset_options
    )


def _announce(data: SplitData, notes: list[str], verbose: int) -> None:
    if data.test is None:
        raise RecsysError("the split has no test pairs; a sweep needs train, val and test")
    if verbose:
        print(
            f"dataset {data.name}: {data.n_users} users, {data.n_items} items, "
            f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test pairs, "
            f"fingerprint {data.fingerprint}",
            flush=True,
        )
    for line in notes:
        print(line, flush=True)


def _with_item_embeddings(data: SplitData, spaces: Any) -> SplitData:
    """``data`` with Sentence-BERT item embeddings attached once, if any model reads them."""
    if data.item_embeddings is not None or not any(needs_item_embeddings(s) for s in spaces):
        return data
    from recsys.text import with_item_embeddings

    return with_item_embeddings(data)


def _put(trial_data: SplitData) -> Any:
    """Into the object store once for the whole sweep; every trial reads the same copy."""
    import ray

    return ray.put(trial_data)
