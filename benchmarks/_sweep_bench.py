"""Shared set-up of the sweep benchmarks: a throw-away sweep directory and a LightGCN space."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ray.tune import Callback

from recsys.tuning.config import SweepConfig

LIGHTGCN_SPACE = """
budget:
  max_epochs: {max_epochs}
  grace_period: {grace_period}
  reduction_factor: {reduction_factor}
  eval_every: 1
  num_samples: {num_samples}
params:
  dim: {{choice: [32, 64]}}
  layers: {{choice: [2, 3]}}
  l2: {{loguniform: [1.0e-5, 1.0e-3]}}
  lr: {{loguniform: [1.0e-3, 1.0e-2]}}
  batch_size: 2048
"""


def bench_config(
    workdir: Path,
    *,
    num_samples: int,
    max_epochs: int,
    grace_period: int = 5,
    reduction_factor: int = 2,
    name: str = "bench",
    space: str = LIGHTGCN_SPACE,
    **overrides,
) -> SweepConfig:
    """A sweep of a LightGCN space (the benchmark one, or ``space``: a template of the same
    fields), everything written under ``workdir``."""
    spaces = workdir / f"spaces-{name}"
    spaces.mkdir(parents=True, exist_ok=True)
    (spaces / "lightgcn.yaml").write_text(
        space.format(
            max_epochs=max_epochs,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
            num_samples=num_samples,
        )
    )
    settings = dict(
        dataset="ml-100k",
        models=("lightgcn",),
        space_dir=str(spaces),
        tracking_uri=f"sqlite:///{workdir}/mlflow.db",
        experiment="benchmarks",
        storage_path=str(workdir / "ray"),
        results_dir=str(workdir / "results" / name),
        name=name,
        verbose=0,
        command="benchmark",
    )
    settings.update(overrides)
    return SweepConfig(**settings)


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="recsys-bench-"))


class StartupTimer(Callback):
    """Per trial: seconds from the driver starting it to its first epoch starting."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.startup: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.setdefault(trial.trial_id, time.time())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        first = result.get("first_epoch_started_at")
        if first is not None and trial.trial_id not in self.startup:
            self.startup[trial.trial_id] = first - self.started[trial.trial_id]
