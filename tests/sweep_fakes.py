"""Test-only models for the sweep tests, registered in the driver and in every Ray worker.

``curve``: a trainable model whose validation NDCG@10 is a known function of its config and
epoch: it ranks each user's validation item at position ``max(1, 12 - quality * epoch)``, so
NDCG@10 is 0 until that rank reaches 10, then ``1 / log2(rank + 1)``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from recsys.data.dataset import SplitData
from recsys.models.base import ModelSpec, TrainableRecommender, UserBatch

START_RANK = 12


def curve_rank(quality: float, epoch: int) -> int:
    return max(1, math.ceil(START_RANK - quality * epoch))


def curve_ndcg10(quality: float, epoch: int) -> float:
    rank = curve_rank(quality, epoch)
    return 1.0 / math.log2(rank + 1) if rank <= 10 else 0.0


@dataclass(frozen=True)
class CurveConfig:
    """quality: rank gained per epoch; crash_file/crash_at: raise once at that epoch;
    diverge_at: raise the Trainer's divergence error at that epoch, every time; sleep: seconds
    an epoch takes."""

    quality: float = 1.0
    lr: float = 0.01
    batch_size: int = 100_000
    crash_file: str = ""
    crash_at: int = 0
    diverge_at: int = 0
    sleep: float = 0.0


class Curve(TrainableRecommender):
    """Puts each user's validation item at a rank that improves by ``quality`` per epoch."""

    batch_kind = "users"

    def __init__(self, data: SplitData, cfg: CurveConfig) -> None:
        super().__init__()
        self.n_users, self.n_items = data.n_users, data.n_items
        self.cfg = cfg
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("epochs", torch.zeros((), dtype=torch.int64))
        val = torch.full((data.n_users,), -1, dtype=torch.int64)
        val[torch.from_numpy(data.val.users)] = torch.from_numpy(data.val.items)
        self.register_buffer("val_item", val)
        self.register_buffer("train_dense", data.train_csr().to_dense().bool())

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def loss(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        # One batch per epoch (batch_size exceeds the number of users): count epochs here.
        with torch.no_grad():
            self.epochs += 1
        epoch = int(self.epochs)
        time.sleep(self.cfg.sleep)
        crash = Path(self.cfg.crash_file) if self.cfg.crash_file else None
        if crash is not None and epoch == self.cfg.crash_at and crash.exists():
            crash.unlink()
            raise RuntimeError("planned crash")
        if epoch == self.cfg.diverge_at:
            return {"loss": self.weight.sum() * float("nan")}
        return {"loss": (self.weight**2).sum() + 1.0 / epoch}

    def score(self, users: torch.Tensor) -> torch.Tensor:
        rank = curve_rank(self.cfg.quality, int(self.epochs))
        val = self.val_item[users]
        onehot = torch.zeros(users.shape[0], self.n_items, dtype=torch.bool)
        has_val = val >= 0
        onehot[torch.nonzero(has_val).flatten(), val[has_val]] = True
        avail = ~self.train_dense[users] & ~onehot
        position = torch.cumsum(avail.float(), dim=1)  # 1-based rank among the other items
        scores = -position
        scores[onehot] = -(rank - 0.5)
        return scores


def build(cfg: CurveConfig, data: SplitData, device: torch.device) -> Curve:
    return Curve(data, cfg).to(device)


SPECS = [ModelSpec(name, CurveConfig, build, trainable=True) for name in ("curve", "curve_b")]


def register() -> None:
    """Adds ``curve`` and its twin ``curve_b`` to the registry (the setup hook of every Ray
    worker in the tests)."""
    from recsys import models

    for spec in SPECS:
        models.MODELS.setdefault(spec.name, spec)


CURVE_SPACE = """
budget:
  max_epochs: 8
  grace_period: 1
  reduction_factor: 2
  eval_every: 1
  num_samples: 3
params:
  quality: {choice: [0.5, 1.0, 1.5, 3.0]}
"""


def setup_worker() -> None:
    """Ray's ``worker_process_setup_hook`` in the tests."""
    register()


class FolderCheckpoint:
    """A checkpoint folder, as Tune's ``Checkpoint`` hands it to the steps after the search."""

    def __init__(self, folder) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def as_directory(self):
        yield str(self.folder)


def summary_state(config, time_cut: bool = False):
    """A finished sweep's state as the console summary reads it (no files, no MLflow)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        name="s",
        config=config,
        results_dir="results/s",
        tracked=True,
        time_cut=time_cut,
        experiment="e",
        parent_run_id="p",
        tracking_uri="sqlite:///mlflow.db",
        resume_command=lambda: "python launch/sweep.py --resume",
    )
