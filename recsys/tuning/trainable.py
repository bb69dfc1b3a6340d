"""The one function trainable: any registered model, trained epoch by epoch inside a Tune trial."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.errors import RecsysError

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData

METRIC_NAMES = ("recall", "ndcg", "precision", "hit", "mrr", "map", "coverage")
STATE_FILE = "trainer.pt"
PROGRESS_FILE = "progress.json"


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; a RecsysError for anything the evaluator lacks."""
    name, _, k = metric.partition("@")
    if name not in METRIC_NAMES or not k.isdigit() or int(k) < 1:
        raise RecsysError(
            f"bad metric {metric!r}; use <name>@<k> with name one of {', '.join(METRIC_NAMES)} "
            f"and k a positive integer, e.g. ndcg@10"
        )
    return name, int(k)


def result_key(split: str, metric: str) -> str:
    """The key of ``metric`` on ``split`` in Tune results and MLflow: ``val_ndcg_at_10``.

    MLflow forbids ``@`` in metric names, so the evaluator's ``ndcg@10`` becomes ``ndcg_at_10``.
    """
    return f"{split}_{metric.replace('@', '_at_')}"


def trial_seed(root_seed: int, model: str, config: Mapping[str, Any]) -> int:
    """A trial's seed: a hash of the root seed, the model and the trial's config.

    The same config under the same root seed gets the same seed, so the best run can be
    reproduced from ``best_configs.yaml`` alone; different configs get unrelated seeds.
    """
    payload = json.dumps([int(root_seed), model, plain_config(config)], sort_keys=True, default=str)
    return int.from_bytes(hashlib.blake2b(payload.encode(), digest_size=8).digest(), "big") % (
        2**31 - 1
    )


def plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with numpy scalars turned into Python ones (Tune samples numpy values)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in config.items()}


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one model's search shares (the config holds only hyperparameters).

    Attributes:
        model: registry name of the model.
        metric: the validation target, e.g. ``"ndcg@10"``.
        ks: cut-offs evaluated and reported each evaluation.
        max_epochs: epochs of an unstopped trial (closed-form models: one).
        eval_every: epochs between validations (and reports to Tune).
        root_seed: the sweep's root seed; each trial's seed is derived from it.
        device: ``"cuda"`` when the trial holds a GPU share, else ``"cpu"``.
        threads: torch intra-op threads (the trial's CPU share).
    """

    model: str
    metric: str = "ndcg@10"
    ks: tuple[int, ...] = (10, 20)
    max_epochs: int = 10
    eval_every: int = 1
    root_seed: int = 0
    device: str = "cpu"
    threads: int = 1


def train_trial(config: dict[str, Any], data: SplitData, settings: TrialSettings) -> None:
    """Trains one trial and reports validation metrics and a checkpoint to Tune.

    Args:
        config: the trial's hyperparameters (fields of the model's config dataclass).
        data: training and validation pairs only (``data.test is None``), passed once through
            ``tune.with_parameters``.
        settings: the search's shared settings.
    """
    started = time.time()
    if data.test is not None:
        raise RuntimeError("a tuning trial was handed the test split; pass data.without_test()")
    import torch
    from ray import tune

    from recsys.train import Trainer

    torch.set_num_threads(max(1, settings.threads))
    # Ray logs a line per persisted checkpoint, i.e. per evaluation here: too loud for the console.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    config = plain_config(config)
    seed = trial_seed(settings.root_seed, settings.model, config)
    built = time.time()
    trainer = Trainer(settings.model, config, data, device=settings.device, seed=seed)
    build_seconds = time.time() - built  # a closed-form model is fitted here: its one "epoch"
    epoch = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load(Path(folder) / STATE_FILE)
            epoch = json.loads((Path(folder) / PROGRESS_FILE).read_text())["epoch"]
    resumed_from = epoch
    trainable = trainer.spec.trainable
    max_epochs = settings.max_epochs if trainable else 1
    _, k = parse_metric(settings.metric)
    ks = tuple(sorted({*settings.ks, k}))
    train_seconds, epochs_since_report, losses = 0.0, 0, {}
    extra: dict[str, float] = {}
    while epoch < max_epochs:
        epoch_start = time.time()
        if epoch == resumed_from:
            # Start-up cost of the trial (actor, data, model build), reported once.
            extra = {
                "setup_seconds": epoch_start - started,
                "first_epoch_started_at": epoch_start,
                "resumed_from_epoch": resumed_from,
            }
        losses = trainer.train_epoch() if trainable else {}
        epoch += 1
        train_seconds += time.time() - epoch_start if trainable else build_seconds
        epochs_since_report += 1
        if epoch % settings.eval_every and epoch < max_epochs:
            continue
        val = trainer.evaluate(split="val", ks=ks)
        metrics = {result_key("val", name): float(v) for name, v in val.items()}
        metrics.update({f"train_{name}": float(v) for name, v in losses.items()})
        metrics.update(
            epoch=epoch,
            seed=seed,
            model=settings.model,
            epoch_seconds=train_seconds / epochs_since_report,
            **extra,
        )
        train_seconds, epochs_since_report, extra = 0.0, 0, {}
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(Path(folder) / STATE_FILE)
            (Path(folder) / PROGRESS_FILE).write_text(json.dumps({"epoch": epoch}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
