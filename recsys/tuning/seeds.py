"""``--seeds N``: each model's best config trained again with other seeds, to show its spread.

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

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.tuning.resources import TrialResources


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
        jobs: Mapping[str, tuple[Mapping[str, Any], int, int]],
        n: int,
        trial_data: Any,
        resources: TrialResources,
    ) -> Replicas:
        """Submits seeds 2..``n`` of every trainable model in ``jobs`` (model -> (config, best
        seed, epochs)) as Ray tasks; returns at once."""
        from recsys.models import get_spec

        pending: dict[str, list[tuple[int, Any]]] = {}
        if n <= 1:
            return cls(pending)
        import ray

        task = ray.remote(train_weights).options(
            num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=2
        )
        for model, (config, seed, epochs) in jobs.items():
            if not get_spec(model).trainable:
                continue
            pending[model] = [
                (
                    s,
                    task.remote(
                        model,
                        dict(config),
                        trial_data,
                        s,
                        epochs,
                        resources.device,
                        resources.threads,
                    ),
                )
                for s in replica_seeds(seed, n)[1:]
            ]
        return cls(pending)

    def weights(self, model: str) -> tuple[list[tuple[int, bytes]], list[str]]:
        """The trained weights of ``model``'s seeds 2..N (waits for them), and a line for each
        seed run that failed (after Ray's retries: e.g. training diverged with that seed)."""
        import ray

        from recsys.tuning.best import one_line

        done, failed = [], []
        for seed, ref in self.pending.get(model, []):
            try:
                done.append((seed, ray.get(ref)))
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
