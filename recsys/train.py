"""The one training loop: seeding, device, epochs, evaluation, checkpoints.

``Trainer.run`` is the epoch loop: a tuning trial (``recsys.tuning.trainable``) and the
benchmarks iterate over it and decide what to do after each evaluation (report to Ray Tune,
checkpoint, stop early).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError
from recsys.evaluate import UserMetrics, evaluate_users
from recsys.io import atomic_path
from recsys.models import get_spec
from recsys.models.base import PairBatch, UserBatch
from recsys.models.samplers import NegativeSampler, sampler_for
from recsys.seeds import set_seed
from recsys.sparse import dense_rows


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: CUDA when present unless ``device`` says otherwise.

    Args:
        device: None or ``"auto"`` to choose, else anything ``torch.device`` accepts.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise RecsysError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RecsysError(f"device {device!r} asked for but CUDA is not available; use 'cpu'")
    return resolved


@dataclass(frozen=True)
class Evaluation:
    """What :meth:`Trainer.run` yields after each validation.

    Attributes:
        epoch: epochs trained so far (a closed-form model's fit counts as its one epoch).
        losses: the last epoch's mean loss terms (empty for closed-form models).
        metrics: validation metrics (``"ndcg@10"``, ...; see ``recsys.evaluate``).
        seconds_per_epoch: mean training time of the epochs since the previous evaluation
            (closed-form models: the fit), evaluation excluded.
    """

    epoch: int
    losses: dict[str, float]
    metrics: dict[str, float]
    seconds_per_epoch: float


class Trainer:
    """Builds a model from the registry and trains it epoch by epoch.

    Args:
        model_name: a key of ``recsys.models.MODELS``.
        config: hyperparameters; unknown keys raise :class:`RecsysError`.
        data: the split; only ``data.train`` is trained on.
        device: see :func:`resolve_device`.
        seed: seeds every RNG before the model is built.
    """

    def __init__(
        self,
        model_name: str,
        config: Mapping[str, Any],
        data: SplitData,
        *,
        device: str | torch.device | None = None,
        seed: int = 0,
    ) -> None:
        self.spec = get_spec(model_name)
        self.cfg = self.spec.make_config(config)
        self.data = data
        self.device = resolve_device(device)
        self.seed = seed
        self.epoch = 0
        set_seed(seed)
        started = time.perf_counter()
        self.model = self.spec.build(self.cfg, data, self.device)
        self.build_seconds = time.perf_counter() - started  # a closed-form model's fit
        self.optimizer: torch.optim.Optimizer | None = None
        self.sampler: NegativeSampler | None = None
        if self.spec.trainable and self.model.batch_kind != "self":
            self.optimizer = torch.optim.Adam(
                self.model.parameters(),
                lr=self.cfg.lr,
                weight_decay=getattr(self.cfg, "weight_decay", 0.0),
                # One kernel per parameter instead of a dozen: on the CPU the autoencoders'
                # Adam step took a quarter of their epoch, LightGCN's 5x its fused time. The
                # same update, to float rounding; a model may opt out (``fused_optimizer``).
                fused=(self.model.fused_optimizer and self.device.type in ("cpu", "cuda")) or None,
            )
            self._grad_clip = getattr(self.cfg, "grad_clip", None)
            self._train_users, self._train_items = data.train.tensors(self.device)
            csr = data.train_csr().to(self.device)
            self._crow, self._col = csr.crow_indices(), csr.col_indices()
            if self.model.batch_kind == "pairs" and self.model.negatives_per_pair > 0:
                self.sampler = sampler_for(self.cfg, data, self.device)

    def run(
        self, max_epochs: int, eval_every: int = 1, ks: tuple[int, ...] = (10, 20)
    ) -> Iterator[Evaluation]:
        """The epoch loop: trains from the current epoch up to ``max_epochs``, validating every
        ``eval_every`` epochs and after the last.

        The trainer's state is the evaluated one while the caller handles a yielded
        :class:`Evaluation` (the moment to checkpoint). A closed-form model, fitted when built,
        yields one evaluation at epoch 1, unless it was restored at epoch 1 already.
        """
        if eval_every < 1:
            raise RecsysError(f"eval_every must be >= 1, got {eval_every}")
        if not self.spec.trainable:
            if self.epoch == 0:
                self.epoch = 1
                yield Evaluation(1, {}, self.evaluate("val", ks), self.build_seconds)
            return
        seconds, epochs = 0.0, 0
        while self.epoch < max_epochs:
            started = time.perf_counter()
            losses = self.train_epoch()
            seconds += time.perf_counter() - started
            epochs += 1
            if self.epoch % eval_every and self.epoch < max_epochs:
                continue
            yield Evaluation(self.epoch, losses, self.evaluate("val", ks), seconds / epochs)
            seconds, epochs = 0.0, 0

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training data; returns each loss term's mean over the examples.

        Closed-form models return ``{}`` and do nothing.
        """
        if not self.spec.trainable:
            return {}
        self.model.train()
        self.model.on_epoch_start(self.epoch)
        if self.model.batch_kind == "self":
            return self._fit_epoch()
        if self.model.batch_kind == "pairs":
            batches = self._pair_batches()
        elif self.model.batch_kind == "users":
            batches = self._user_batches()
        else:
            raise ValueError(f"unknown batch_kind {self.model.batch_kind!r}")
        totals: dict[str, torch.Tensor] = {}
        examples = 0
        for batch in batches:
            size = batch.users.shape[0]
            for key, value in self._step(batch).items():
                # Accumulate on the device: a .item() here would sync every step.
                totals[key] = totals.get(key, 0.0) + value.detach() * size
            examples += size
        self.epoch += 1
        return self._checked(
            {key: float(total) / max(examples, 1) for key, total in totals.items()}
        )

    def _fit_epoch(self) -> dict[str, float]:
        losses = {key: float(value) for key, value in self.model.fit_epoch().items()}
        self.epoch += 1
        return self._checked(losses)

    def _checked(self, means: dict[str, float]) -> dict[str, float]:
        if not math.isfinite(means.get("loss", 0.0)):
            raise RecsysError(
                f"training of {self.spec.name!r} diverged (loss {means['loss']}) in epoch "
                f"{self.epoch}; lower lr or raise the regularisation"
            )
        return means

    def _step(self, batch: PairBatch | UserBatch) -> dict[str, torch.Tensor]:
        losses = self.model.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if self._grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self._grad_clip)
        self.optimizer.step()
        return losses

    def _pair_batches(self) -> Iterator[PairBatch]:
        order = torch.randperm(self._train_users.numel(), device=self.device)
        users = self._train_users[order]
        pos = self._train_items[order]
        size = self.cfg.batch_size
        negatives = self.model.negatives_per_pair
        if negatives == 0:
            none = users.new_empty((0,))
            for start in range(0, users.numel(), size):
                batch_users = users[start : start + size]
                yield PairBatch(
                    batch_users, pos[start : start + size], none.expand(len(batch_users), 0)
                )
            return
        sampler = self.sampler
        # The whole epoch's negatives (or DNS candidates) in one vectorised draw.
        per_pair = sampler.candidates_per_pair
        candidates = sampler.draw(users.repeat_interleave(negatives), per_pair)
        candidates = candidates.view(users.numel(), negatives * per_pair)
        for start in range(0, users.numel(), size):
            batch_users = users[start : start + size]
            neg = self._pick(batch_users, candidates[start : start + size], negatives, per_pair)
            yield PairBatch(batch_users, pos[start : start + size], neg)

    def _pick(
        self, users: torch.Tensor, candidates: torch.Tensor, negatives: int, per_pair: int
    ) -> torch.Tensor:
        """The batch's negatives: (B,) for one per pair, else (B, negatives)."""
        if negatives == 1:
            return self.sampler.pick(users, candidates, self.model.pair_scores)
        grouped = candidates.view(-1, per_pair)
        picked = self.sampler.pick(
            users.repeat_interleave(negatives), grouped, self.model.pair_scores
        )
        return picked.view(users.numel(), negatives)

    def _user_batches(self) -> Iterator[UserBatch]:
        active = torch.nonzero(self._crow[1:] > self._crow[:-1]).squeeze(1)
        active = active[torch.randperm(active.numel(), device=self.device)]
        size = self.cfg.batch_size
        for start in range(0, active.numel(), size):
            users = active[start : start + size]
            yield UserBatch(users, dense_rows(self._crow, self._col, users, self.data.n_items))

    def evaluate(self, split: str = "val", ks: tuple[int, ...] = (10, 20, 50)) -> dict[str, float]:
        """Full-ranking metrics of the current model on ``split`` (see ``recsys.evaluate``)."""
        return self.evaluate_users(split, ks).means()

    def evaluate_users(self, split: str = "val", ks: tuple[int, ...] = (10, 20, 50)) -> UserMetrics:
        """Like :meth:`evaluate`, with every evaluated user's metrics."""
        with torch.no_grad():
            return evaluate_users(self.model, self.data, split=split, ks=ks)

    def state_dict(self) -> dict[str, Any]:
        """A checkpoint: model and optimizer state, epoch and every RNG's state."""
        return {
            "model_name": self.spec.name,
            "config": dataclasses.asdict(self.cfg),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "rng": _rng_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a checkpoint from :meth:`state_dict` of a trainer of the same model."""
        if state.get("model_name") != self.spec.name:
            raise RecsysError(
                f"checkpoint is of model {state.get('model_name')!r}, not {self.spec.name!r}"
            )
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        _set_rng_state(state["rng"])

    def save(self, path: str | Path) -> Path:
        """Writes the checkpoint atomically with ``torch.save``."""
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return path

    def load(self, path: str | Path) -> None:
        """Restores a checkpoint written by :meth:`save` (loaded with ``weights_only=True``)."""
        path = Path(path)
        if not path.is_file():
            raise RecsysError(f"checkpoint {path} does not exist; check the path")
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        # weights_only loading accepts tensors, not NumPy arrays.
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
