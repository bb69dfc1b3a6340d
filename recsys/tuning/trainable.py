"""The one function trainable: any registered model, trained by ``Trainer.run`` inside a trial.

Checkpoint layout (one file, written at every evaluation): ``trainer.pt``, the Trainer's own
checkpoint (model, optimizer, RNG states and the epoch: the epoch is stored there only). Every
evaluation has one, so a restarted or resumed trial loses at most ``eval_every`` epochs.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.metrics import metric_key, report_ks
from recsys.seeds import derive_seed

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.train import Evaluation, Trainer

STATE_FILE = "trainer.pt"
MODEL_KEY = "model"  # the key of a trial's config that names its model
DEFAULTS_KEY = "defaults_trial"  # present (True) in the config of a model's defaults trial
# Present in the config of a trial that re-runs an earlier sweep's best config (--warm-start):
# that best run's MLflow id.
WARM_KEY = "warm_start_run"


def split_config(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A trial's config as its model and its hyperparameters (the model's config fields), with
    numpy scalars turned into Python ones."""
    params = plain_config(config)
    params.pop(DEFAULTS_KEY, None)
    params.pop(WARM_KEY, None)
    return str(params.pop(MODEL_KEY)), params


def is_defaults_trial(config: Mapping[str, Any]) -> bool:
    """Whether a trial's config is its model's defaults, the first trial of its search."""
    return bool(config.get(DEFAULTS_KEY, False))


def warm_source(config: Mapping[str, Any]) -> str | None:
    """The earlier best run whose config a trial re-runs (``--warm-start``), or None."""
    run = config.get(WARM_KEY)
    return str(run) if run else None


def plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with numpy scalars turned into Python ones (Tune samples numpy values)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in config.items()}


def trial_seed(root_seed: int, model: str, config: Mapping[str, Any]) -> int:
    """A trial's seed, derived from the root seed, the model and the trial's config.

    The same config under the same root seed gets the same seed, so the best run can be
    reproduced from ``best_configs.yaml`` alone; different configs get unrelated seeds.
    """
    return derive_seed(int(root_seed), model, plain_config(config))


def save_checkpoint(trainer: Trainer, folder: str | Path) -> None:
    trainer.save(Path(folder) / STATE_FILE)


def load_checkpoint(trainer: Trainer, folder: str | Path) -> None:
    trainer.load(Path(folder) / STATE_FILE)


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one model shares (its config holds the model and hyperparameters).

    Attributes:
        model: registry name of the model.
        metric: the validation target, e.g. ``"ndcg@10"``.
        ks: cut-offs evaluated and reported each evaluation.
        max_epochs: epochs of an unstopped trial (closed-form models: one).
        eval_every: epochs between validations (and reports to Tune).
        root_seed: the sweep's root seed; each trial's seed is derived from it.
        device: ``"cuda"`` when the trial holds a GPU share, else ``"cpu"``.
        threads: torch intra-op threads (the trial's CPU share).
        memory: the sweep's ``recsys.tuning.memory.MemoryPlan`` (None: not planned); each trial
            reports its estimate beside what it used.
    """

    model: str
    metric: str = "ndcg@10"
    ks: tuple[int, ...] = (10, 20)
    max_epochs: int = 10
    eval_every: int = 1
    root_seed: int = 0
    device: str = "cpu"
    threads: int = 1
    memory: Any = None


def train_trial(
    config: dict[str, Any], data: SplitData, settings: Mapping[str, TrialSettings]
) -> None:
    """Trains one trial and reports validation metrics and a checkpoint to Tune per evaluation.

    Args:
        config: the trial's model (under :data:`MODEL_KEY`) and hyperparameters (fields of the
            model's config dataclass).
        data: training and validation pairs only (``data.test is None``), passed once through
            ``tune.with_parameters``.
        settings: per model, what its trials share.
    """
    started = time.time()
    if data.test is not None:
        raise RuntimeError("a tuning trial was handed the test split; pass data.without_test()")
    import ray
    import torch
    from ray import tune

    from recsys.train import Trainer
    from recsys.tuning.accounting import TrialUsage

    # Ray logs a line per persisted checkpoint, i.e. per evaluation here: too loud for the console.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    model, config = split_config(config)
    settings = settings[model]
    usage = TrialUsage(settings.device)
    torch.set_num_threads(max(1, settings.threads))
    seed = trial_seed(settings.root_seed, model, config)
    trainer = Trainer(model, config, data, device=settings.device, seed=seed)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # it exists: recsys.tuning.snapshot repairs what Tune names
        with checkpoint.as_directory() as folder:
            load_checkpoint(trainer, folder)
    # Start-up cost of the trial (actor, data, model build), reported once.
    once = {
        "setup_seconds": time.time() - started,
        "first_epoch_started_at": time.time(),
        "resumed_from_epoch": trainer.epoch,
        "node_id": ray.get_runtime_context().get_node_id(),  # where it ran (or ran again)
        **_planned(settings, model, config),
    }
    ks = report_ks(settings.metric, settings.ks)
    for evaluation in trainer.run(settings.max_epochs, settings.eval_every, ks):
        metrics = {**_result(evaluation, settings.model, seed), **usage.report(), **once}
        once = {}
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(trainer, folder)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _planned(settings: TrialSettings, model: str, config: dict[str, Any]) -> dict[str, float]:
    """The plan's estimate of this trial, reported once beside what it measures."""
    if settings.memory is None:
        return {}
    planned = settings.memory.estimate_of(model, config)
    return {
        "mem_estimate_bytes": float(planned.host_bytes),
        "gpu_estimate_bytes": float(planned.gpu_bytes),
        "epoch_seconds_estimate": float(planned.epoch_seconds),
    }


def _result(evaluation: Evaluation, model: str, seed: int) -> dict[str, Any]:
    """What one evaluation reports to Tune (and, through the trial callback, to MLflow)."""
    metrics: dict[str, Any] = {
        metric_key("val", name): float(v) for name, v in evaluation.metrics.items()
    }
    metrics.update({f"train_{name}": float(v) for name, v in evaluation.losses.items()})
    metrics.update(
        epoch=evaluation.epoch,
        seed=seed,
        model=model,
        epoch_seconds=evaluation.seconds_per_epoch,
    )
    return metrics
