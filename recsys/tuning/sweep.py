"""A sweep: every model's search (Ray Tune + ASHA), MLflow tracking, then the test evaluation.

One Tuner per model (each search-space file has its own budget), one after the other, all under
one MLflow parent run. The driver holds the full split; trials get ``data.without_test()``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.errors import RecsysError
from recsys.io import write_text_atomic
from recsys.tuning import report, tracking
from recsys.tuning.resources import ClusterShape, TrialResources, resolve_resources
from recsys.tuning.space import Budget, SearchSpace, load_space, to_tune
from recsys.tuning.trainable import (
    TrialSettings,
    parse_metric,
    plain_config,
    result_key,
    train_trial,
    trial_seed,
)

if TYPE_CHECKING:
    import pandas as pd

    from recsys.data import PrepConfig
    from recsys.data.dataset import SplitData

MAIN_MODELS = ("lightgcn", "lightgcn_hardneg", "hybrid_vae")
DEFAULT_MODELS = (
    *MAIN_MODELS,
    "lightgcn_text",
    "popularity",
    "itemknn",
    "ease",
    "bpr_mf",
    "mult_vae",
)
SEARCHES = ("random", "optuna")
SCHEDULERS = ("asha", "fifo")
REPORT_KS = (10, 20)
STATE_DIR = ".sweep"  # inside the results directory: what --resume needs


class SweepInterrupted(RecsysError):
    """The sweep stopped before every trial finished; ``--resume`` continues it."""


@dataclass
class SweepConfig:
    """Everything a sweep needs; ``launch/sweep.py`` builds it from the command line.

    ``None`` means: the search-space file's value (budgets) or a default chosen at run time.
    """

    dataset: str = "ml-100k"
    data_dir: str | None = None
    dataset_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    prep: dict[str, Any] = dataclasses.field(default_factory=dict)
    models: tuple[str, ...] = DEFAULT_MODELS
    num_samples: int | None = None
    max_epochs: int | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    metric: str = "ndcg@10"
    search: str = "random"
    scheduler: str = "asha"
    seed: int = 0
    tracking_uri: str | None = None
    experiment: str | None = None
    address: str | None = None
    storage_path: str | None = None
    name: str | None = None
    resume: bool = False
    results_dir: str | None = None
    smoke: bool = False
    space_dir: str | None = None
    max_concurrent_trials: int | None = None
    max_failures: int = 0
    reuse_actors: bool = True
    verbose: int = 1
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SweepConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        cfg = cls(**{k: v for k, v in raw.items() if k in known})
        cfg.models = tuple(cfg.models)
        return cfg


@dataclass
class SweepResult:
    """What :func:`run_sweep` hands back."""

    name: str
    results_dir: Path
    leaderboard: pd.DataFrame
    outcomes: list[report.ModelOutcome]
    tracking_uri: str
    experiment: str
    parent_run_id: str
    storage_path: str
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- validation (nothing written)


def check_search(search: str) -> None:
    if search not in SEARCHES:
        raise RecsysError(f"unknown --search {search!r}; choose one of {', '.join(SEARCHES)}")
    if search == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise RecsysError(
                "--search optuna needs the optuna package: pip install 'recsys-tune[optuna]', "
                "or use --search random"
            ) from None


def model_budget(space: SearchSpace, cfg: SweepConfig, trainable: bool) -> Budget:
    """The space's budget with the command-line overrides; one epoch for closed-form models."""
    budget = space.budget
    if cfg.smoke:
        budget = budget.override(max_epochs=min(2, budget.max_epochs), num_samples=2)
        budget = dataclasses.replace(budget, grace_period=1, eval_every=1)
    budget = budget.override(max_epochs=cfg.max_epochs, num_samples=cfg.num_samples)
    if not trainable:
        budget = Budget(1, 1, budget.reduction_factor, 1, budget.num_samples)
    if not space.searched():
        budget = dataclasses.replace(budget, num_samples=1)  # every trial would be the same
    return budget


def load_spaces(cfg: SweepConfig) -> dict[str, SearchSpace]:
    """Checks the model names and loads every model's search space."""
    from recsys.models import get_spec

    if not cfg.models:
        raise RecsysError("--models is empty; name at least one model")
    dupes = sorted({m for m in cfg.models if cfg.models.count(m) > 1})
    if dupes:
        raise RecsysError(f"--models names {dupes[0]!r} twice; name each model once")
    specs = {m: get_spec(m) for m in cfg.models}
    return {m: load_space(m, cfg.space_dir, specs[m].config_cls) for m in cfg.models}


def validate(cfg: SweepConfig) -> dict[str, SearchSpace]:
    """Every check that needs neither Ray nor data (RecsysError before anything is written)."""
    parse_metric(cfg.metric)
    check_search(cfg.search)
    if cfg.scheduler not in SCHEDULERS:
        raise RecsysError(f"unknown scheduler {cfg.scheduler!r}; choose one of {SCHEDULERS}")
    for flag, value in (("--num-samples", cfg.num_samples), ("--max-epochs", cfg.max_epochs)):
        if value is not None and value < 1:
            raise RecsysError(f"{flag} must be a positive integer, got {value}")
    from recsys.data.loaders import dataset_options
    from recsys.data.split import STRATEGIES, check_ratios

    prep = prep_config(cfg.prep)
    if prep.split not in STRATEGIES:
        raise RecsysError(f"unknown --split {prep.split!r}; choose one of {', '.join(STRATEGIES)}")
    if prep.ratios is not None:
        check_ratios(prep.ratios)
    unknown = cfg.dataset_options and sorted(
        set(cfg.dataset_options) - set(dataset_options(cfg.dataset))
    )
    if unknown:
        raise RecsysError(
            f"dataset {cfg.dataset!r} has no option {', '.join(unknown)}; its options are "
            f"{dataset_options(cfg.dataset)}"
        )
    return load_spaces(cfg)


# ---------------------------------------------------------------- helpers


def _hash_seed(*parts: Any) -> int:
    digest = hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1)


def _git_commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("recsys-tune", "torch", "ray", "mlflow", "numpy", "pandas", "optuna"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _needs_text(space: SearchSpace) -> bool:
    """Whether a model's trials need Sentence-BERT item embeddings (attached once by the driver).

    A model's spec may say so (``needs_item_embeddings``); otherwise a config with a
    ``text_model`` field, or whose ``item_init`` may be ``"text"``, needs them.
    """
    from recsys.models import get_spec

    spec = get_spec(space.model)
    flag = getattr(spec, "needs_item_embeddings", None)
    if flag is not None:
        return bool(flag)
    fields = {f.name: f for f in dataclasses.fields(spec.config_cls)}
    if "text_model" in fields:
        return True
    if "item_init" not in fields:
        return False
    param = space.params.get("item_init")
    if param is None:
        values = [fields["item_init"].default]
    else:
        values = [param.value] if param.fixed else list(param.args[0])
    return "text" in values


def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(include_dashboard=False)


def _resolve_names(cfg: SweepConfig) -> tuple[str, Path]:
    """The sweep's name and results directory."""
    name = cfg.name
    if name is None and cfg.results_dir is not None:
        name = Path(cfg.results_dir).name
    if name is None:
        name = f"{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    results_dir = Path(cfg.results_dir) if cfg.results_dir else Path("results") / name
    return name, results_dir.resolve()


def _state_path(results_dir: Path) -> Path:
    return results_dir / STATE_DIR / "sweep.json"


def find_resumable(cfg: SweepConfig) -> Path:
    """The results directory of the sweep ``--resume`` continues."""
    if cfg.results_dir or cfg.name:
        _, results_dir = _resolve_names(cfg)
        if not _state_path(results_dir).is_file():
            raise RecsysError(
                f"--resume: {results_dir} holds no interrupted sweep ({STATE_DIR}/sweep.json "
                f"missing); check --name / --results-dir"
            )
        return results_dir
    candidates = sorted(Path("results").glob(f"*/{STATE_DIR}/sweep.json"), key=os.path.getmtime)
    if not candidates:
        raise RecsysError("--resume: no sweep under results/; pass --results-dir or --name")
    return candidates[-1].parents[1].resolve()


def _load_data(cfg: SweepConfig) -> SplitData:
    from recsys.data import load_split

    return load_split(
        cfg.dataset, data_dir=cfg.data_dir, config=prep_config(cfg.prep), **cfg.dataset_options
    )


def prep_config(prep: dict[str, Any]) -> PrepConfig:
    """The split parameters of a sweep: ``PrepConfig`` defaults overridden by ``prep``."""
    from recsys.data import PrepConfig

    known = {f.name for f in dataclasses.fields(PrepConfig)}
    unknown = sorted(set(prep) - known)
    if unknown:
        raise RecsysError(f"unknown split parameter(s) {unknown}; known: {sorted(known)}")
    values = dict(prep)
    if values.get("ratios") is not None:
        values["ratios"] = tuple(values["ratios"])
    return PrepConfig(**values)


class _State:
    """The sweep's resumable state, kept in ``<results>/.sweep/``."""

    def __init__(self, results_dir: Path, raw: dict[str, Any]) -> None:
        self.results_dir = results_dir
        self.raw = raw

    @property
    def path(self) -> Path:
        return _state_path(self.results_dir)

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.raw, indent=1, default=str))

    def outcome_path(self, model: str) -> Path:
        return self.results_dir / STATE_DIR / f"{model}.json"

    def outcome(self, model: str) -> report.ModelOutcome | None:
        path = self.outcome_path(model)
        return report.ModelOutcome.from_json(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------- one model's search


def _searcher(cfg: SweepConfig, model: str) -> Any:
    seed = _hash_seed(cfg.seed, model, "search")
    if cfg.search == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed))
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # A SearchGenerator ignores TuneConfig.max_concurrent_trials; this one limits it itself.
    return BasicVariantGenerator(random_state=seed, max_concurrent=cfg.max_concurrent_trials or 0)


def _scheduler(cfg: SweepConfig, budget: Budget) -> Any:
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    if cfg.scheduler == "fifo":
        return FIFOScheduler()
    # metric and mode come from the TuneConfig.
    return AsyncHyperBandScheduler(
        time_attr="epoch",
        max_t=budget.max_epochs,
        grace_period=budget.grace_period,
        reduction_factor=budget.reduction_factor,
    )


def _reporter(space: SearchSpace, metric: str, key: str) -> Any:
    from ray.tune import CLIReporter

    return CLIReporter(
        metric_columns={"model": "model", "epoch": "epoch", key: f"val {metric}"},
        parameter_columns=space.searched()[:4],
        max_progress_rows=12,
        max_report_frequency=30,
        sort_by_metric=True,  # by the TuneConfig's metric
    )


def _search_model(
    cfg: SweepConfig,
    space: SearchSpace,
    budget: Budget,
    resources: TrialResources,
    trial_data: Any,
    storage: str,
    parent_run_id: str,
    tracking_uri: str,
    callbacks: Sequence[Any],
) -> tuple[Any, float]:
    """Runs (or resumes) one model's search; returns its ResultGrid and wall seconds."""
    from ray import tune

    model = space.model
    key = result_key("val", cfg.metric)
    settings = TrialSettings(
        model=model,
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
    path = f"{storage.rstrip('/')}/{model}"
    started = time.time()
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        mlflow_cb = tracking.MlflowTrialCallback(
            tracking_uri, parent_run_id, model, budget.max_epochs, cfg.seed
        )
        tuner = tune.Tuner(
            trainable,
            param_space=to_tune(space),
            tune_config=tune.TuneConfig(
                metric=key,
                mode="max",
                search_alg=_searcher(cfg, model),
                scheduler=_scheduler(cfg, budget),
                num_samples=budget.num_samples,
                max_concurrent_trials=cfg.max_concurrent_trials if cfg.search != "random" else None,
                reuse_actors=cfg.reuse_actors,
            ),
            run_config=tune.RunConfig(
                name=model,
                storage_path=storage,
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=1, checkpoint_score_attribute=key, checkpoint_score_order="max"
                ),
                callbacks=[mlflow_cb, *callbacks],
                progress_reporter=_reporter(space, cfg.metric, key),
                verbose=cfg.verbose,
                failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            ),
        )
    grid = tuner.fit()
    return grid, time.time() - started


def _finished(grid: Any, num_samples: int) -> bool:
    return len(grid) >= num_samples and grid.num_terminated + grid.num_errors >= len(grid)


def _evaluate_model(
    cfg: SweepConfig,
    space: SearchSpace,
    budget: Budget,
    grid: Any,
    wall: float,
    data: SplitData,
    results_dir: Path,
    parent_run_id: str,
    tracking_uri: str,
) -> report.ModelOutcome:
    """Loads the best checkpoint, evaluates it on validation and test, logs the best run."""
    from recsys.train import resolve_device

    model = space.model
    key = result_key("val", cfg.metric)
    ok = [r for r in grid if r.error is None]
    if not ok:
        first = next((r.error for r in grid if r.error is not None), None)
        raise RecsysError(f"every trial of {model!r} failed; first error: {first}")
    result, checkpoint, _ = report.best_checkpoint(grid, key)
    config = plain_config(result.config)
    seed = trial_seed(cfg.seed, model, config)
    curves = report.trial_curves(grid, key, budget.max_epochs)
    epochs = trials = 0
    train_seconds = 0.0
    for r in grid:
        frame = r.metrics_dataframe
        trials += 1
        if frame is None or "epoch" not in frame:
            continue
        frame = frame.drop_duplicates("epoch", keep="last")
        epochs += int(frame["epoch"].max())
        if "epoch_seconds" in frame:
            gaps = frame["epoch"].diff().fillna(frame["epoch"].iloc[0])
            train_seconds += float((frame["epoch_seconds"] * gaps).sum())
    ks = tuple(sorted({*REPORT_KS, parse_metric(cfg.metric)[1]}))
    with checkpoint.as_directory() as folder:
        trainer = report.load_trainer(model, config, data, Path(folder), seed, resolve_device())
        best_epoch = report.checkpoint_epoch(Path(folder))
        val = trainer.evaluate(split="val", ks=ks)
        test = trainer.evaluate(split="test", ks=ks)
        recs = report.recommend(trainer.model, data)
        outcome = report.ModelOutcome(
            model=model,
            trial_id=str(result.metrics.get("trial_id", "")),
            config=config,
            seed=seed,
            best_epoch=best_epoch,
            val={k: float(v) for k, v in val.items()},
            test={k: float(v) for k, v in test.items()},
            trials=trials,
            epochs=epochs,
            wall_seconds=wall,
            seconds_per_epoch=train_seconds / max(1, epochs),
            curves=curves,
        )
        paths = report.write_model_outputs(results_dir, outcome, recs, cfg.metric)
        with tempfile.TemporaryDirectory() as tmp:
            config_path = Path(tmp) / "config.yaml"
            config_path.write_text(report.best_config_yaml(outcome))
            metrics = {result_key("val", k): v for k, v in outcome.val.items()}
            metrics.update({result_key("test", k): v for k, v in outcome.test.items()})
            metrics.update(
                best_epoch=best_epoch,
                trials=trials,
                epochs=epochs,
                wall_seconds=wall,
                seconds_per_epoch=outcome.seconds_per_epoch,
            )
            # A sweep interrupted while logging this run left it behind: fill it, not a twin.
            existing = tracking.find_child_runs(tracking_uri, parent_run_id, "best", model)
            outcome.best_run_id = tracking.log_best_run(
                tracking_uri,
                parent_run_id,
                model,
                existing_run_id=next((r.info.run_id for r in existing.values()), None),
                trial_id=outcome.trial_id,
                params={**config, "seed": seed},
                metrics=metrics,
                artifacts={
                    "": config_path,
                    "checkpoint": Path(folder),
                    "recommendations": paths["recommendations"],
                    "plots": paths["curve"],
                },
            )
    return outcome


# ---------------------------------------------------------------- the sweep


def run_sweep(
    cfg: SweepConfig, data: SplitData | None = None, callbacks: Sequence[Any] = ()
) -> SweepResult:
    """Runs (or, with ``cfg.resume``, continues) a sweep and writes its results directory.

    Args:
        cfg: the sweep's settings.
        data: the full split (default: ``recsys.data.load_split(cfg.dataset, cfg.data_dir)``).
        callbacks: extra Ray Tune callbacks for every model's search.

    Returns:
        The leaderboard, per-model outcomes, and where everything went.

    Raises:
        RecsysError: bad input (checked before anything is written or any trial starts).
        SweepInterrupted: the search stopped before every trial finished; resume it.
    """
    started = time.time()
    if cfg.resume:
        results_dir = find_resumable(cfg)
        raw = json.loads(_state_path(results_dir).read_text())
        saved = SweepConfig.from_dict(raw["config"])
        # Where and how to run may change on resume; what to search may not.
        for attr in ("address", "gpus_per_trial", "cpus_per_trial", "max_concurrent_trials"):
            if getattr(cfg, attr) is not None:
                setattr(saved, attr, getattr(cfg, attr))
        saved.verbose = cfg.verbose
        saved.resume = True
        cfg, name = saved, raw["name"]
    else:
        name, results_dir = _resolve_names(cfg)
        raw = None
        if _state_path(results_dir).is_file():
            raise RecsysError(
                f"{results_dir} already holds a sweep; pass --resume to continue it, or another "
                f"--name / --results-dir"
            )
    spaces = validate(cfg)
    from recsys.models import get_spec

    budgets = {m: model_budget(s, cfg, get_spec(m).trainable) for m, s in spaces.items()}
    # The compact CLIReporter table instead of Ray's newer verbose output; no warning per
    # checkpoint about experiment snapshots (each report checkpoints, by design).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    _init_ray(cfg.address)
    resources, note = resolve_resources(
        ClusterShape.from_ray(), cfg.cpus_per_trial, cfg.gpus_per_trial
    )
    if data is None:
        data = _load_data(cfg)
    if data.test is None:
        raise RecsysError("the split has no test pairs; a sweep needs train, val and test")
    if cfg.verbose:
        print(
            f"dataset {data.name}: {data.n_users} users, {data.n_items} items, "
            f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test pairs, "
            f"fingerprint {data.fingerprint}",
            flush=True,
        )
    notes = [note] if note else []
    for line in notes:
        print(line, flush=True)

    # From here on, things are written.
    tracking_uri = (
        cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_TRACKING_URI
    )
    experiment = cfg.experiment or f"recsys-tune-{cfg.dataset}"
    if raw is not None:  # resuming: the same store and experiment as before
        tracking_uri, experiment = raw["tracking_uri"], raw["experiment"]
    storage = cfg.storage_path or str(Path("ray_results").resolve())
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    storage = f"{storage.rstrip('/')}/{name}"
    if raw is None:
        raw = {"name": name, "config": cfg.to_dict(), "storage": storage}
        parent = None
    else:
        storage = raw["storage"]
        parent = raw.get("parent_run_id")
    state = _State(results_dir, raw)
    parent_run_id = tracking.start_parent_run(
        tracking_uri,
        experiment,
        name,
        tags={
            "git_commit": _git_commit(),
            "dataset": data.name,
            "dataset_fingerprint": data.fingerprint,
            "command": cfg.command or " ".join(sys.argv),
            **{f"version.{k}": v for k, v in _versions().items()},
        },
        params={
            "dataset": cfg.dataset,
            "models": ",".join(cfg.models),
            "metric": cfg.metric,
            "search": cfg.search,
            "scheduler": cfg.scheduler,
            "root_seed": cfg.seed,
            **{f"split.{k}": v for k, v in dataclasses.asdict(prep_config(cfg.prep)).items()},
            **{f"dataset.{k}": v for k, v in cfg.dataset_options.items()},
            "cpus_per_trial": resources.cpus,
            "gpus_per_trial": resources.gpus,
            **{f"budget.{m}": json.dumps(dataclasses.asdict(b)) for m, b in budgets.items()},
        },
        run_id=parent,
    )
    raw["parent_run_id"] = parent_run_id
    raw["tracking_uri"] = tracking_uri
    raw["experiment"] = experiment
    state.save()

    try:
        if any(_needs_text(s) for s in spaces.values()) and data.item_embeddings is None:
            from recsys.text import with_item_embeddings

            data = with_item_embeddings(data)
        outcomes = _run_models(
            cfg, spaces, budgets, resources, data, state, parent_run_id, tracking_uri, callbacks
        )
    except SweepInterrupted:
        tracking.finish_run(tracking_uri, parent_run_id, status="KILLED")
        raise
    except BaseException:
        tracking.finish_run(tracking_uri, parent_run_id, status="FAILED")
        raise
    board = report.write_results(results_dir, data, outcomes, cfg.metric)
    tracking.finish_run(tracking_uri, parent_run_id)
    raw["finished"] = True
    state.save()
    return SweepResult(
        name=name,
        results_dir=results_dir,
        leaderboard=board,
        outcomes=outcomes,
        tracking_uri=tracking_uri,
        experiment=experiment,
        parent_run_id=parent_run_id,
        storage_path=storage,
        wall_seconds=time.time() - started,
        notes=notes,
    )


def _run_models(
    cfg: SweepConfig,
    spaces: dict[str, SearchSpace],
    budgets: dict[str, Budget],
    resources: TrialResources,
    data: SplitData,
    state: _State,
    parent_run_id: str,
    tracking_uri: str,
    callbacks: Sequence[Any],
) -> list[report.ModelOutcome]:
    """Each model's search and test evaluation in turn; models finished before are skipped."""
    import ray

    name, results_dir, storage = state.raw["name"], state.results_dir, state.raw["storage"]
    # Into the object store once for the whole sweep; every model's trials read the same copy.
    trial_data = ray.put(data.without_test())
    outcomes = []
    walls = state.raw.setdefault("wall_seconds", {})
    for model, space in spaces.items():
        done = state.outcome(model)
        if done is not None:
            outcomes.append(done)
            continue
        budget = budgets[model]
        if cfg.verbose:
            print(
                f"== {model}: {budget.num_samples} trials, up to {budget.max_epochs} epochs "
                f"({cfg.scheduler}, {cfg.search} search)",
                flush=True,
            )
        grid, wall = _search_model(
            cfg,
            space,
            budget,
            resources,
            trial_data,
            storage,
            parent_run_id,
            tracking_uri,
            callbacks,
        )
        walls[model] = walls.get(model, 0.0) + wall
        state.save()
        if not _finished(grid, budget.num_samples):
            raise SweepInterrupted(
                f"sweep {name!r} interrupted during {model!r}; continue it with: "
                f"python launch/sweep.py --resume --results-dir {results_dir}"
            )
        outcome = _evaluate_model(
            cfg,
            space,
            budget,
            grid,
            walls[model],
            data,
            results_dir,
            parent_run_id,
            tracking_uri,
        )
        write_text_atomic(state.outcome_path(model), outcome.to_json())
        outcomes.append(outcome)
    return outcomes


def format_summary(result: SweepResult) -> str:
    """The leaderboard and where to look next, for the end of a sweep."""
    cols = [
        "model",
        "val_ndcg@10",
        "test_ndcg@10",
        "test_recall@20",
        "trials",
        "epochs",
        "wall_seconds",
    ]
    board = result.leaderboard[[c for c in cols if c in result.leaderboard]]
    return "\n".join(
        [
            f"sweep {result.name}: {len(result.outcomes)} models in {result.wall_seconds:.0f} s",
            report.markdown_table(board).rstrip(),
            f"results:  {result.results_dir}",
            f"MLflow:   experiment {result.experiment!r}, parent run {result.parent_run_id}",
            f"          {tracking.ui_command(result.tracking_uri)}",
        ]
    )
