"""``--seeds N``: each model's best config trained again with other seeds, to show its spread.

``Replicas.start(choices, n, ...)`` submits the runs of every model at once;
``collect(model)`` waits for one model's :class:`SeedRun` s; the driver scores them
(:func:`recsys.tuning.scoring.add_seed_runs`).

The best checkpoint is seed 1 of N; seeds 2..N train the same config from scratch, for the best
checkpoint's number of epochs, as Ray tasks with a trial's resources (so they run where trials
run, all models' at once). A task trains on the trials' copy of the split, without its test
pairs, and hands back the model's weights; the driver scores them on validation and test.
Closed-form models (Popularity, ItemKNN, EASE) fit the same model whatever the seed: their
seeds 2..N repeat seed 1's scores without a task.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recsys.seeds import derive_seed
from recsys.tuning.best import Choice, one_line

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.tuning.resources import TrialResources


@dataclass(frozen=True)
class SeedRun:
    """One seed run that trained: its seed and its model's weights (``torch.save`` bytes)."""

    seed: int
    weights: bytes


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
        raise RuntimeError("a seed run was handed the test split; pass data.without_test()")
    torch.set_num_threads(max(1, threads))
    trainer = Trainer(model, config, data, device=device, seed=seed)
    for _ in trainer.run(epochs, eval_every=epochs):
        pass
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in trainer.model.state_dict().items()}, buffer)
    return buffer.getvalue()


@dataclass
class Replicas:
    """The seed runs under way, per model: ``(seed, object ref of its weights)``."""

    pending: dict[str, list[tuple[int, Any]]]

    @classmethod
    def start(
        cls,
        choices: Mapping[str, Choice],
        n: int,
        trial_data: Any,
        resources: TrialResources,
    ) -> Replicas:
        """Submits seeds 2..``n`` of every trainable model's best config (``choices``: model ->
        its best checkpoint), for the checkpoint's epochs, as Ray tasks; returns at once."""
        from recsys.models import get_spec

        pending: dict[str, list[tuple[int, Any]]] = {}
        if n <= 1:
            return cls(pending)
        import ray

        task = ray.remote(train_weights).options(
            num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=2
        )
        for model, choice in choices.items():
            if not get_spec(model).trainable:
                continue
            pending[model] = [
                (
                    s,
                    task.remote(
                        model,
                        dict(choice.config),
                        trial_data,
                        s,
                        choice.epoch,
                        resources.device,
                        resources.threads,
                    ),
                )
                for s in replica_seeds(choice.seed, n)[1:]
            ]
        return cls(pending)

    def collect(self, model: str) -> tuple[list[SeedRun], list[str]]:
        """``model``'s seed runs 2..N that trained (waits for them), and a line for each one
        that failed (after Ray's retries: e.g. training diverged with that seed)."""
        import ray

        done, failed = [], []
        for seed, ref in self.pending.get(model, []):
            try:
                done.append(SeedRun(seed, ray.get(ref)))
            except ray.exceptions.RayError as error:
                failed.append(f"seed {seed} of {model!r} failed: {one_line(error)}")
        return done, failed

    def cancel(self) -> None:
        import ray

        for runs in self.pending.values():
            for _, ref in runs:
                ray.cancel(ref, force=True)


def load_weights(trainer: Any, blob: bytes) -> None:
    """Puts the weights a seed run trained into ``trainer``'s model."""
    import torch

    state = torch.load(io.BytesIO(blob), map_location=trainer.device, weights_only=True)
    trainer.model.load_state_dict(state)
