"""One model's search with Ray Tune: searcher, scheduler, progress output and the Tuner."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from recsys.metrics import metric_key
from recsys.seeds import derive_seed
from recsys.tuning.config import REPORT_KS, SweepConfig
from recsys.tuning.resources import TrialResources
from recsys.tuning.space import Budget, SearchSpace, to_tune
from recsys.tuning.trainable import TrialSettings, train_trial


@dataclass
class Search:
    """What one model's search left: Tune's ResultGrid, its wall time, whether it finished
    (every trial ended, and no interruption stopped it)."""

    grid: Any
    wall_seconds: float
    finished: bool


def run_search(
    cfg: SweepConfig,
    space: SearchSpace,
    budget: Budget,
    resources: TrialResources,
    trial_data: Any,
    storage: str,
    callbacks: Sequence[Any] = (),
) -> Search:
    """Runs, or continues after an interruption, the search of ``space.model``.

    Args:
        cfg: the sweep's settings (search, scheduler, seed, metric, concurrency...).
        space: the model's validated search space; ``budget`` its budget.
        resources: each trial's share of the cluster.
        trial_data: object-store reference to the split without its test pairs.
        storage: the sweep's Ray storage; the model's experiment is ``<storage>/<model>``.
        callbacks: Tune callbacks (the MLflow trial callback among them).
    """
    from ray import tune

    settings = TrialSettings(
        model=space.model,
        metric=cfg.metric,
        ks=REPORT_KS,
        max_epochs=budget.max_epochs,
        eval_every=budget.eval_every,
        root_seed=cfg.seed,
        device=resources.device,
        threads=resources.threads,
    )
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=trial_data, settings=settings),
        resources.as_dict(),
    )
    path = f"{storage.rstrip('/')}/{space.model}"
    started = time.time()
    # Only a resumed sweep restores: its storage folder is its own (see SweepState.sweep_id).
    if cfg.resume and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = _tuner(cfg, space, budget, trainable, storage, callbacks)
    with graceful_interrupts() as interrupted:
        grid = tuner.fit()
    ended = grid.num_terminated + grid.num_errors >= len(grid) >= budget.num_samples
    return Search(grid, time.time() - started, ended and not interrupted.is_set())


@contextlib.contextmanager
def graceful_interrupts() -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM during a search: Tune saves its state and stops, and the event says so.

    A terminal's Ctrl-C also reaches the trial processes, whose trials then end in errors; the
    event, not the trials' states, tells an interrupted search from a finished one. A second
    Ctrl-C stops at once.
    """
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted  # signals reach the main thread only
        return

    def stop(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        print("interrupted: saving the search's state (Ctrl-C again to stop at once)", flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own graceful stop

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Tune would replace the SIGINT handler with one that sets no flag of ours.
    before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield interrupted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if before is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = before


def _tuner(
    cfg: SweepConfig,
    space: SearchSpace,
    budget: Budget,
    trainable: Any,
    storage: str,
    callbacks: Sequence[Any],
) -> Any:
    from ray import tune

    key = metric_key("val", cfg.metric)
    return tune.Tuner(
        trainable,
        param_space=to_tune(space),
        tune_config=tune.TuneConfig(
            metric=key,
            mode="max",
            search_alg=searcher(cfg, space),
            scheduler=scheduler(cfg, budget),
            num_samples=budget.num_samples,
            # The variant generator limits concurrency itself (see searcher).
            max_concurrent_trials=None
            if _is_variant_generator(cfg, space)
            else cfg.max_concurrent_trials,
            reuse_actors=cfg.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=space.model,
            storage_path=storage,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=key, checkpoint_score_order="max"
            ),
            callbacks=list(callbacks),
            progress_reporter=reporter(space, cfg.metric),
            verbose=cfg.verbose,
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        ),
    )


def searcher(cfg: SweepConfig, space: SearchSpace) -> Any:
    """Random search (Tune's variant generator) or Optuna's TPE, seeded from the root seed.

    A space with nothing to search (Popularity's) gets the variant generator's single trial:
    Optuna refuses an empty space.
    """
    seed = derive_seed(cfg.seed, space.model, "search")
    if cfg.search == "optuna" and space.searched():
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed))
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # A SearchGenerator ignores TuneConfig.max_concurrent_trials; this one limits it itself.
    return BasicVariantGenerator(random_state=seed, max_concurrent=cfg.max_concurrent_trials or 0)


def _is_variant_generator(cfg: SweepConfig, space: SearchSpace) -> bool:
    return cfg.search == "random" or not space.searched()


def scheduler(cfg: SweepConfig, budget: Budget) -> Any:
    """ASHA on epochs with the model's budget (metric and mode come from the TuneConfig)."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    if cfg.scheduler == "fifo":
        return FIFOScheduler()
    return AsyncHyperBandScheduler(
        time_attr="epoch",
        max_t=budget.max_epochs,
        grace_period=budget.grace_period,
        reduction_factor=budget.reduction_factor,
    )


def reporter(space: SearchSpace, metric: str) -> Any:
    """The console's progress table: the target and up to four searched parameters."""
    from ray.tune import CLIReporter

    return CLIReporter(
        metric_columns={
            "model": "model",
            "epoch": "epoch",
            metric_key("val", metric): f"val {metric}",
        },
        parameter_columns=space.searched()[:4],
        max_progress_rows=12,
        max_report_frequency=30,
        sort_by_metric=True,  # by the TuneConfig's metric
    )
