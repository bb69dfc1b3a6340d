"""After the search, one model at a time: its best checkpoint scored on validation and test,
its seed (or fold) runs scored, its results files, its best MLflow run (a run per seed or fold
under it), its logged model, and its outcome saved in the sweep's state (a resumed sweep does
not redo it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from recsys.io import redact
from recsys.models import get_spec
from recsys.tuning import console, registry, results, tracking
from recsys.tuning.best import Choice, ModelFailed, choose, search_cost
from recsys.tuning.config import (
    CANNOT_SCORE_COLD,
    SweepConfig,
    cold_space,
    is_cold,
    scores_cold_items,
)
from recsys.tuning.outcome import ModelOutcome
from recsys.tuning.records import TrialRecord
from recsys.tuning.replicas import Replicas
from recsys.tuning.scoring import EvalProtocol, Fold, Scored, add_fold_runs, add_seed_runs, score
from recsys.tuning.space import load_space
from recsys.tuning.state import SweepState

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData

T = TypeVar("T")


def choices(state: SweepState, records: dict[str, list[TrialRecord]]) -> dict[str, Choice]:
    """The best checkpoint of each model still to evaluate (:func:`model_outcome` reports a
    model without one)."""
    out = {}
    for model, trials in records.items():
        if state.outcome(model) is not None:
            continue
        try:
            out[model] = choose(trials, state.config.metric)
        except ModelFailed:
            continue
    return out


def outcomes(
    state: SweepState,
    data: SplitData,
    records: dict[str, list[TrialRecord]],
    chosen: dict[str, Choice],
    replicas: Replicas,
    protocol: EvalProtocol,
    folds: Sequence[Fold] = (),
) -> list[ModelOutcome]:
    """:func:`model_outcome` of every model of the sweep, in its order."""
    return [
        model_outcome(state, data, m, records.get(m), chosen.get(m), replicas, protocol, folds)
        for m in state.config.models
    ]


def model_outcome(
    state: SweepState,
    data: SplitData,
    model: str,
    records: list[TrialRecord] | None,
    chosen: Choice | None,
    replicas: Replicas,
    protocol: EvalProtocol,
    folds: Sequence[Fold] = (),
) -> ModelOutcome:
    """One model after the search: its best checkpoint (``chosen``, from :func:`choices`; None
    when it has none) and seed runs scored on test (by the sweep's ``protocol``), or its fold
    runs on each fold's test (``folds``, fold 1 first), its files, its best run (a run per seed
    or fold under it) and logged model, then its outcome saved.

    A model whose outcome an earlier run of the sweep reached is not evaluated again; one the
    sweep did not search (a cold-item split's model that cannot score cold items) gets its
    row's status and a run that says so.
    """
    cfg = state.config
    if (skipped := cold_skipped(cfg, model)) is not None:
        uri, parent = state.tracking_uri, state.parent_run_id
        tracked_step(state, lambda: tracking.log_skipped_run(uri, parent, skipped))
        return skipped
    done = state.outcome(model)
    if done is not None or records is None:
        return done
    if chosen is None and not records and state.time_cut:
        why = f"the time budget ran out before any trial of {model!r} reported"
        return ModelOutcome.failed(model, why, search_cost(records))
    if chosen is None:  # not final: --resume retries the failed trials
        try:
            choose(records, cfg.metric)  # raises, with the reason in one line
        except ModelFailed as error:
            return ModelOutcome.failed(model, str(error), search_cost(records))
    scored = score(chosen, records, data, cfg.metric, protocol)
    runs, failed = replicas.collect(model)
    for line in failed:  # the model's mean is over the seeds (folds) that trained
        console.warn(f"SEED:     {line}")
    scored = add_seed_runs(scored, runs, cfg.seeds, data, cfg.metric, protocol)
    scored = add_fold_runs(scored, runs, folds)
    outcome = _log(state, scored, data)
    state.save_outcome(outcome)
    return outcome


def cold_skipped(cfg: SweepConfig, model: str) -> ModelOutcome | None:
    """On a cold-item split, the outcome of a model that cannot score cold items (it is not
    searched: ``config.cold_searched``); None for every other model and split."""
    if not is_cold(cfg):
        return None
    spec = get_spec(model)
    space = load_space(model, cfg.space_dir, spec.config_cls)
    if scores_cold_items(cold_space(space)[0]):
        return None
    return ModelOutcome.not_searched(model, CANNOT_SCORE_COLD)


def _log(state: SweepState, scored: Scored, data: SplitData) -> ModelOutcome:
    """A scored model's files, its best and seed runs and its logged model; returns its
    outcome with its runs."""
    cfg = state.config
    files = results.write_model_outputs(
        state.results_dir,
        scored.outcome,
        scored.trainer.model,
        data,
        cfg.metric,
        scored.per_user,
        results.per_user_names(cfg.metric, cfg.report_ks, cfg.sampled_negatives, is_cold(cfg)),
    )
    artifacts = {
        "recommendations": files["recommendations"],
        "plots": files["curve"],
        "per_user": files["per_user"],
    }

    def log_runs() -> ModelOutcome:
        best_run = tracking.log_best_run(state.tracking_uri, state.parent_run_id, scored, artifacts)
        outcome = scored.outcome.with_runs(best_run)
        seed_runs = tracking.log_seed_runs(state.tracking_uri, outcome)
        outcome = outcome.with_runs(best_run, seed_runs)
        registry.log_model(state.tracking_uri, best_run, scored, data)
        return outcome

    return tracked_step(state, log_runs) or scored.outcome


def tracked_step(state: SweepState, step: Callable[[], T]) -> T | None:
    """``step()``, an MLflow step, unless the sweep's tracking store broke; a step that finds
    it broken (``tracking.store_problem``) records that in the state, says so once, and the
    sweep goes on without MLflow (None). Any other error is raised."""
    if not state.tracked:
        return None
    try:
        return step()
    except Exception:
        problem = tracking.store_problem(state.tracking_uri)
        if problem is None:
            raise
        state.lose_tracking(problem)
        console.warn(
            f"MLflow store {redact(state.tracking_uri)} is broken: {problem}; the rest of the "
            "sweep is not logged there, its results directory will be complete"
        )
        return None
