"""The sweep's search with Ray Tune: every model's trials in one Tuner, run at once.

Each model keeps its own searcher, ASHA and budget (see :mod:`recsys.tuning.per_model`); the
Tuner fills the cluster with the trials of all models and ``--max-concurrent-trials`` caps the
total.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recsys.metrics import metric_key, report_ks
from recsys.seeds import derive_seed
from recsys.tuning import console, snapshot
from recsys.tuning.config import SweepConfig
from recsys.tuning.interrupts import graceful_interrupts
from recsys.tuning.resources import TrialResources
from recsys.tuning.space import Budget, SearchSpace, to_tune
from recsys.tuning.trainable import TrialSettings, split_config, train_trial

EXPERIMENT = "search"  # the Tune experiment's folder in the sweep's storage


@dataclass
class Search:
    """What the search left: Tune's ResultGrid, its wall time, whether it finished (every
    trial ended, and no interruption stopped it)."""

    grid: Any
    wall_seconds: float
    finished: bool

    def results(self, model: str) -> list[Any]:
        """The results of ``model``'s trials."""
        return [r for r in self.grid if split_config(r.config)[0] == model]


def run_search(
    cfg: SweepConfig,
    spaces: Mapping[str, SearchSpace],
    budgets: Mapping[str, Budget],
    resources: TrialResources,
    trial_data: Any,
    storage: str,
    callbacks: Sequence[Any] = (),
) -> Search:
    """Runs, or continues after an interruption, the search of every model in ``spaces``.

    Args:
        cfg: the sweep's settings (search, scheduler, seed, metric, concurrency...).
        spaces: per model, its validated search space; ``budgets`` its budget.
        resources: each trial's share of the cluster.
        trial_data: object-store reference to the split without its test pairs.
        storage: the sweep's Ray storage; the experiment is ``<storage>/search``.
        callbacks: Tune callbacks (the MLflow trial callback among them).
    """
    from ray import tune

    settings = {
        model: TrialSettings(
            model=model,
            metric=cfg.metric,
            ks=report_ks(cfg.metric, cfg.report_ks),
            max_epochs=budgets[model].max_epochs,
            eval_every=budgets[model].eval_every,
            root_seed=cfg.seed,
            device=resources.device,
            threads=resources.threads,
            memory=resources.memory,
        )
        for model in spaces
    }
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=trial_data, settings=settings), resources.request
    )
    for model, budget in budgets.items():
        console.say(
            f"== {model}: {budget.num_samples} trials, up to {budget.max_epochs} epochs "
            f"({cfg.scheduler}, {cfg.search} search)"
        )
    path = f"{storage.rstrip('/')}/{EXPERIMENT}"
    started = time.time()
    # Only a resumed sweep restores: its storage folder is its own (see SweepState.sweep_id).
    if cfg.resume and tune.Tuner.can_restore(path):
        for name in snapshot.restore_damaged(path):
            console.say(f"resume: {name} was cut short by the kill; its staged copy is put back")
        for fixed in snapshot.repair(path):
            console.say(f"resume: {fixed.describe()}")
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = _tuner(cfg, spaces, budgets, trainable, storage, callbacks)
    with graceful_interrupts() as interrupted:
        grid = tuner.fit()
    total = sum(budgets[m].num_samples for m in spaces)
    ended = grid.num_terminated + grid.num_errors >= len(grid) >= total
    return Search(grid, time.time() - started, ended and not interrupted.is_set())


def _tuner(
    cfg: SweepConfig,
    spaces: Mapping[str, SearchSpace],
    budgets: Mapping[str, Budget],
    trainable: Any,
    storage: str,
    callbacks: Sequence[Any],
) -> Any:
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    key = metric_key("val", cfg.metric)
    total = sum(budgets[m].num_samples for m in spaces)
    # The limit is also how many trials Tune keeps waiting for resources (one, for a searcher
    # without it): without a cap, every trial may wait, so all that fit start together.
    limited = ConcurrencyLimiter(
        searcher(cfg, spaces, budgets), max_concurrent=cfg.max_concurrent_trials or total
    )
    return tune.Tuner(
        trainable,
        param_space={},  # every config comes from the searcher
        tune_config=tune.TuneConfig(
            metric=key,
            mode="max",
            search_alg=limited,
            scheduler=scheduler(cfg, budgets),
            num_samples=total,
            reuse_actors=cfg.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=storage,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=key, checkpoint_score_order="max"
            ),
            callbacks=[*callbacks, *progress(cfg, budgets)],
            verbose=0,  # the console gets ProgressLines instead of Tune's status tables
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        ),
    )


def searcher(
    cfg: SweepConfig, spaces: Mapping[str, SearchSpace], budgets: Mapping[str, Budget]
) -> Any:
    """Per model, random search or Optuna's TPE, seeded from the root seed, behind one searcher.

    Each model's first trial is its defaults (``points_to_evaluate``). A space with nothing to
    search (Popularity's) gets random search's single trial: Optuna refuses an empty space.
    Random search enumerates a space's ``grid`` parameters (``RandomSearcher``); ``validate``
    has refused a grid under Optuna.
    """
    from recsys.tuning.per_model import ModelSearcher, RandomSearcher

    key = metric_key("val", cfg.metric)
    searchers = {}
    for model, space in spaces.items():
        seed = derive_seed(cfg.seed, model, "search")
        domains = {n: d for n, d in to_tune(space).items() if n in space.searched()}
        first = [space.first_trial] if domains else []
        if cfg.search == "optuna" and domains:
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            searchers[model] = OptunaSearch(
                domains,
                metric=key,
                mode="max",
                points_to_evaluate=first,
                sampler=optuna.samplers.TPESampler(seed=seed),
            )
        else:
            searchers[model] = RandomSearcher(domains, seed, points_to_evaluate=first)
    return ModelSearcher(
        searchers,
        samples={m: budgets[m].num_samples for m in spaces},
        fixed={m: s.fixed_values() for m, s in spaces.items()},
        metric=key,
        mode="max",
        defaults_first=[m for m, s in spaces.items() if s.searched()],
    )


def scheduler(cfg: SweepConfig, budgets: Mapping[str, Budget]) -> Any:
    """Per model, ASHA on epochs with the model's budget (or FIFO), behind one scheduler that
    lets each model's defaults trial run its whole budget."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    from recsys.tuning.per_model import ModelScheduler

    if cfg.scheduler == "fifo":
        return FIFOScheduler()
    return ModelScheduler(
        {
            model: AsyncHyperBandScheduler(
                time_attr="epoch",
                max_t=budget.max_epochs,
                grace_period=budget.grace_period,
                reduction_factor=budget.reduction_factor,
            )
            for model, budget in budgets.items()
        }
    )


def progress(cfg: SweepConfig, budgets: Mapping[str, Budget]) -> list[Any]:
    """The console's progress: a line per model as its trials end (none with ``--quiet``), and
    one line per trial failure (always)."""
    from recsys.tuning.progress import ProgressLines, TrialFaults

    if not console.verbose():
        return [TrialFaults()]
    return [
        TrialFaults(),
        ProgressLines(
            {m: b.num_samples for m, b in budgets.items()},
            {m: b.max_epochs for m, b in budgets.items()},
            cfg.metric,
        ),
    ]
