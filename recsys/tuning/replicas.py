"""``--seeds N`` / ``--folds K``: each model's best config trained again with other seeds, or
on the other folds, to show its spread.

``Replicas.start(choices, n, ..., folds)`` submits the runs of every model at once;
``collect(model)`` waits for one model's :class:`SeedRun` s; the driver scores them
(:func:`recsys.tuning.scoring.add_seed_runs`, :func:`~recsys.tuning.scoring.add_fold_runs`).

A fold run is a seed run with another fold's data: the best checkpoint's seed and epochs, on
fold f's trials' copy (``recsys.tuning.folds``: its own object-store reference, without its
test pairs). The best checkpoint is fold 1's; a closed-form model needs no task, the driver
fits it on each fold when it scores it (its fit is its build).

The best checkpoint is seed 1 of N; seeds 2..N train the same config from scratch, for the best
checkpoint's number of epochs, as Ray tasks with a trial's resources (so they run where trials
run, all models' at once). A task trains on the trials' copy of the split, without its test
pairs, and hands back the model's weights; the driver scores them on validation and test.
Closed-form models (Popularity, ItemKNN, EASE) fit the same model whatever the seed: their
seeds 2..N repeat seed 1's scores without a task.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recsys.seeds import derive_seed
from recsys.tuning.best import Choice, one_line

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.tuning.resources import TrialResources


@dataclass(frozen=True)
class SeedRun:
    """One seed (or fold) run that trained: its seed, its model's weights (``torch.save``
    bytes) and the fold it trained on (1: the search's split)."""

    seed: int
    weights: bytes
    fold: int = 1


def replica_seeds(best_seed: int, n: int) -> list[int]:
    """The seeds of a model's ``n`` runs: the best checkpoint's, then ``n - 1`` derived ones."""
    return [best_seed] + [derive_seed(best_seed, "replica", i) for i in range(1, n)]


def train_weights(
    model: str,
    config: Mapping[str, Any],
    data: SplitData,
    seed: int,
    epochs: int,
    device: str,
    threads: int,
) -> bytes:
    """Trains ``model`` with ``config`` from scratch for ``epochs``; returns its weights
    (``torch.save`` of the model's state dict)."""
    import torch

    from recsys.train import Trainer

    if data.test is not None:
        raise RuntimeError("a seed or fold run was handed the test split; pass data.without_test()")
    torch.set_num_threads(max(1, threads))
    trainer = Trainer(model, config, data, device=device, seed=seed)
    for _ in trainer.run(epochs, eval_every=epochs):
        pass
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in trainer.model.state_dict().items()}, buffer)
    return buffer.getvalue()


@dataclass
class Replicas:
    """The seed and fold runs under way, per model: ``(seed, fold, object ref of its
    weights)``."""

    pending: dict[str, list[tuple[int, int, Any]]]

    @classmethod
    def start(
        cls,
        choices: Mapping[str, Choice],
        n: int,
        trial_data: Any,
        resources: TrialResources,
        folds: Sequence[Any] = (),
    ) -> Replicas:
        """Submits seeds 2..``n`` of every trainable model's best config (``choices``: model ->
        its best checkpoint) on ``trial_data``, and its seed on folds 2..K (``folds``: every
        ``recsys.tuning.scoring.Fold``, fold 1 first), for the checkpoint's epochs, as Ray
        tasks; returns at once."""
        from recsys.models import get_spec

        pending: dict[str, list[tuple[int, int, Any]]] = {}
        if n <= 1 and len(folds) <= 1:
            return cls(pending)
        import ray

        task = ray.remote(train_weights).options(
            num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=2
        )
        for model, choice in choices.items():
            if not get_spec(model).trainable:
                continue
            runs = [(s, 1, trial_data) for s in replica_seeds(choice.seed, n)[1:]]
            runs += [(choice.seed, f.number, f.trial_data) for f in folds[1:]]
            pending[model] = [
                (seed, fold, task.remote(model, dict(choice.config), data, seed, choice.epoch,
                                         resources.device, resources.threads))
                for seed, fold, data in runs
            ]  # fmt: skip
        return cls(pending)

    def collect(self, model: str) -> tuple[list[SeedRun], list[str]]:
        """``model``'s seed runs 2..N that trained (waits for them), and a line for each one
        that failed (after Ray's retries: e.g. training diverged with that seed)."""
        import ray

        done, failed = [], []
        for seed, fold, ref in self.pending.get(model, []):
            try:
                done.append(SeedRun(seed, ray.get(ref), fold))
            except ray.exceptions.RayError as error:
                what = f"fold {fold}" if fold > 1 else f"seed {seed}"
                failed.append(f"{what} of {model!r} failed: {one_line(error)}")
        return done, failed

    def cancel(self) -> None:
        import ray

        for runs in self.pending.values():
            for _, _, ref in runs:
                ray.cancel(ref, force=True)


def load_weights(trainer: Any, blob: bytes) -> None:
    """Puts the weights a seed run trained into ``trainer``'s model."""
    import torch

    state = torch.load(io.BytesIO(blob), map_location=trainer.device, weights_only=True)
    trainer.model.load_state_dict(state)
