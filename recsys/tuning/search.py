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
from recsys.tuning.config import OPTUNA_SEARCHES, SweepConfig, format_duration
from recsys.tuning.interrupts import graceful_interrupts
from recsys.tuning.resources import ClusterShape, TrialResources
from recsys.tuning.space import Budget, SearchSpace, to_tune
from recsys.tuning.trainable import TrialSettings, split_config, train_trial
from recsys.tuning.warm_start import Borrowed, WarmSource

EXPERIMENT = "search"  # the Tune experiment's folder in the sweep's storage


@dataclass
class Search:
    """What the search left: Tune's ResultGrid, its wall time, whether it finished (every
    trial ended, or the time budget ended the search; no interruption stopped it) and whether
    the time budget cut it short (``cut``: trials were stopped or never started)."""

    grid: Any
    wall_seconds: float
    finished: bool
    cut: bool = False

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
    warm: WarmSource | None = None,
) -> Search:
    """Runs, or continues after an interruption, the search of every model in ``spaces``.

    Args:
        cfg: the sweep's settings (search, scheduler, seed, metric, concurrency...).
        spaces: per model, its validated search space; ``budgets`` its budget.
        resources: each trial's share of the cluster.
        trial_data: object-store reference to the split without its test pairs.
        storage: the sweep's Ray storage; the experiment is ``<storage>/search``.
        callbacks: Tune callbacks (the MLflow trial callback among them).
        warm: with ``--warm-start``, where to borrow earlier sweeps' trials from (a new search
            only: a continued one has its searchers' state).
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
    if cfg.time_budget_s is not None:
        console.say(
            f"== time budget {format_duration(cfg.time_budget_s)}: no trial starts after it; "
            f"the trials running then stop at their last checkpoint"
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
        borrowed = warm.borrow(spaces, budgets) if warm is not None else None
        slots = resources.slots(ClusterShape.from_ray())
        reuse = cfg.reuse_actors and resources.reusable  # see MemoryPlan: reuse can starve
        tuner = _tuner(cfg, spaces, budgets, trainable, storage, callbacks, borrowed, slots, reuse)
    console.hide_unreported_trials()
    with graceful_interrupts() as interrupted:
        grid = tuner.fit()
    wall = time.time() - started
    total = sum(budgets[m].num_samples for m in spaces)
    ended = grid.num_terminated + grid.num_errors >= len(grid) >= total
    cut = time_cut(cfg.time_budget_s, wall, ended, interrupted.is_set())
    return Search(grid, wall, (ended or cut) and not interrupted.is_set(), cut)


def time_cut(budget_s: float | None, wall_s: float, ended: bool, interrupted: bool) -> bool:
    """Whether the time budget ended the search: some trials never ended on their own, no
    interruption stopped it, and the budget was spent (Tune's ``time_budget_s`` then stopped
    every trial and started no other)."""
    return budget_s is not None and not ended and not interrupted and wall_s >= budget_s


def _tuner(
    cfg: SweepConfig,
    spaces: Mapping[str, SearchSpace],
    budgets: Mapping[str, Budget],
    trainable: Any,
    storage: str,
    callbacks: Sequence[Any],
    warm: Borrowed | None = None,
    slots: int = 1,
    reuse: bool = True,
) -> Any:
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    key = metric_key("val", cfg.metric)
    total = sum(budgets[m].num_samples for m in spaces)
    limited = ConcurrencyLimiter(
        searcher(cfg, spaces, budgets, warm),
        max_concurrent=concurrency_cap(cfg.search, cfg.max_concurrent_trials, total, slots),
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
            reuse_actors=reuse,
            time_budget_s=cfg.time_budget_s,
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


def concurrency_cap(search: str, asked: int | None, total: int, slots: int) -> int:
    """The trials alive at once (running or waiting to start): ``--max-concurrent-trials``, or
    every trial for random search, or the trials the cluster runs at once (``slots``) for a
    model-based searcher.

    The cap is also how many trials Tune creates ahead, each by asking the searcher for its
    config. Random search loses nothing by being asked for every trial at the start, so all
    that fit start together. A model-based searcher asked for every trial before any result
    has learnt nothing: all its configs would be its random start. Capped at the slots, it is
    asked for the next trial of a model as a slot frees, after the results of the trials
    before it.
    """
    if asked is not None:
        return asked
    return total if search == "random" else max(1, min(total, slots))


def searcher(
    cfg: SweepConfig,
    spaces: Mapping[str, SearchSpace],
    budgets: Mapping[str, Budget],
    warm: Borrowed | None = None,
) -> Any:
    """Per model, the sweep's kind of searcher (``--search``), seeded from the root seed, behind
    one searcher.

    Each model's first trial is its defaults (``points_to_evaluate``), then the earlier sweeps'
    best configs that ``warm`` borrows (the trials are marked with the run they come from); the
    Optuna searchers also take the earlier trials as observations. BOHB learns at the rungs of
    the model's ASHA (:mod:`recsys.tuning.bohb`). A space with nothing to
    search (Popularity's) gets random search's single trial: Optuna refuses an empty space.
    Random search enumerates a space's ``grid`` parameters (``RandomSearcher``); ``validate``
    has refused a grid under the model-based searchers.
    """
    from recsys.tuning.bohb import BOHBSearcher, rungs
    from recsys.tuning.per_model import ModelSearcher, RandomSearcher

    key = metric_key("val", cfg.metric)
    warm = warm or Borrowed()
    searchers = {}
    for model, space in spaces.items():
        seed = derive_seed(cfg.seed, model, "search")
        domains = {n: d for n, d in to_tune(space).items() if n in space.searched()}
        points = [o.config for o in warm.points.get(model, ())]
        first = [space.first_trial, *points] if domains else []
        if cfg.search in OPTUNA_SEARCHES and domains:
            startup = startup_trials(budgets[model].num_samples)
            searchers[model] = optuna_searcher(cfg.search, domains, key, first, seed, startup)
            for seen in warm.observations.get(model, ()):
                searchers[model].add_evaluated_point(seen.config, seen.value)
        elif cfg.search == "bohb" and domains:
            b = budgets[model]
            budget_rungs = rungs(b.grace_period, b.reduction_factor, b.max_epochs)
            searchers[model] = BOHBSearcher(domains, key, "max", budget_rungs, seed, first)
        else:
            searchers[model] = RandomSearcher(domains, seed, points_to_evaluate=first)
    return ModelSearcher(
        searchers,
        samples={m: budgets[m].num_samples for m in spaces},
        fixed={m: s.fixed_values() for m, s in spaces.items()},
        metric=key,
        mode="max",
        defaults_first=[m for m, s in spaces.items() if s.searched()],
        warm_from={m: [o.run_id for o in warm.points.get(m, ())] for m in spaces},
    )


def startup_trials(num_samples: int) -> int:
    """How many of a model's trials an Optuna sampler draws at random before its model: Optuna's
    10, or a third of the model's trials when it has fewer than 30 (at least 2, the defaults
    trial among them). With the shipped spaces' 6-8 trials, Optuna's own 10 would leave its
    model unused: the search would be random search."""
    return min(10, max(2, num_samples // 3))


def optuna_sampler(search: str, seed: int, startup: int = 10) -> Any:
    """Optuna's sampler for ``--search``: TPE (``optuna``), its Gaussian process (``gp``) or
    CMA-ES (``cmaes``), seeded, drawing its first ``startup`` trials at random (earlier trials
    borrowed by ``--warm-start`` count among them; CMA-ES starts from its first trial)."""
    import optuna

    if search == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if search == "cmaes":
        # CMA-ES samples numbers; a choice parameter is drawn by Optuna's independent sampler.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def optuna_searcher(
    search: str,
    domains: Mapping[str, Any],
    metric: str,
    points: Sequence[Mapping[str, Any]],
    seed: int,
    startup: int = 10,
) -> Any:
    """Tune's ``OptunaSearch`` over ``domains`` with the sampler of ``search``, starting with
    ``points``."""
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(
        dict(domains),
        metric=metric,
        mode="max",
        points_to_evaluate=[dict(p) for p in points],
        sampler=optuna_sampler(search, seed, startup),
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
