"""The one training loop: seeding, device, epochs, evaluation, checkpoints, early stopping."""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError
from recsys.evaluate import evaluate as evaluate_model
from recsys.io import atomic_path
from recsys.models import get_spec
from recsys.models.base import ModelSpec, PairBatch, UserBatch
from recsys.sparse import dense_rows


def set_seed(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's (CPU and every CUDA device) global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


def make_config(spec: ModelSpec, config: Mapping[str, Any]) -> Any:
    """``spec.config_cls(**config)`` with an error naming any unknown key.

    NumPy scalars become Python ones and numbers are cast to the field's declared int/float type
    (search spaces may hand ``64.0`` for an int or ``1`` for a float).
    """
    fields = {f.name: f for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise RecsysError(
            f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for model {spec.name!r}; "
            f"valid: {', '.join(fields) or '(none)'}"
        )
    values = {key: _cast(spec.name, key, fields[key].type, value) for key, value in config.items()}
    return spec.config_cls(**values)


def _cast(model: str, key: str, declared: Any, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    kind = declared if isinstance(declared, str) else getattr(declared, "__name__", "")
    try:
        if kind == "float" and not isinstance(value, bool):
            return float(value)
        if kind == "int" and not isinstance(value, bool):
            as_float = float(value)
            if as_float != int(as_float):
                raise ValueError
            return int(as_float)
    except (TypeError, ValueError):
        raise RecsysError(
            f"hyperparameter {key!r} of model {model!r} must be {kind}, got {value!r}"
        ) from None
    return value


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
        self.cfg = make_config(self.spec, config)
        self.data = data
        self.device = resolve_device(device)
        self.seed = seed
        self.epoch = 0
        set_seed(seed)
        self.model = self.spec.build(self.cfg, data, self.device)
        self.optimizer: torch.optim.Optimizer | None = None
        if self.spec.trainable:
            self.optimizer = torch.optim.Adam(
                self.model.parameters(),
                lr=self.cfg.lr,
                weight_decay=getattr(self.cfg, "weight_decay", 0.0),
            )
            self._grad_clip = getattr(self.cfg, "grad_clip", None)
            self._train_users, self._train_items = data.train.tensors(self.device)
            csr = data.train_csr().to(self.device)
            self._crow, self._col = csr.crow_indices(), csr.col_indices()

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training data; returns each loss term's mean over the examples.

        Closed-form models return ``{}`` and do nothing.
        """
        if self.optimizer is None:
            return {}
        self.model.train()
        self.model.on_epoch_start(self.epoch)
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
        means = {key: float(total) / max(examples, 1) for key, total in totals.items()}
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
        sampler = self.model.sampler
        # The whole epoch's negatives (or DNS candidates) in one vectorised draw.
        candidates = sampler.draw(users, sampler.candidates_per_pair)
        size = self.cfg.batch_size
        for start in range(0, users.numel(), size):
            batch_users = users[start : start + size]
            neg = sampler.pick(
                batch_users, candidates[start : start + size], self.model.pair_scores
            )
            yield PairBatch(batch_users, pos[start : start + size], neg)

    def _user_batches(self) -> Iterator[UserBatch]:
        active = torch.nonzero(self._crow[1:] > self._crow[:-1]).squeeze(1)
        active = active[torch.randperm(active.numel(), device=self.device)]
        size = self.cfg.batch_size
        for start in range(0, active.numel(), size):
            users = active[start : start + size]
            yield UserBatch(users, dense_rows(self._crow, self._col, users, self.data.n_items))

    def evaluate(self, split: str = "val", ks: tuple[int, ...] = (10, 20, 50)) -> dict[str, float]:
        """Full-ranking metrics of the current model on ``split`` (see ``recsys.evaluate``)."""
        with torch.no_grad():
            return evaluate_model(self.model, self.data, split=split, ks=ks)

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


@dataclass
class FitResult:
    """Outcome of :func:`fit`; the trainer holds the best state afterwards.

    Attributes:
        best_epoch: epoch (number of epochs trained) of the best validation score.
        best_score: the best value of the watched metric.
        best_metrics: every validation metric at ``best_epoch``.
        epochs: epochs trained before stopping.
        stopped_early: whether patience ran out before ``max_epochs``.
        history: one record per evaluation: ``epoch``, the epoch's mean losses, val metrics.
        best_state: the trainer's checkpoint (``Trainer.state_dict``) at ``best_epoch``.
    """

    best_epoch: int
    best_score: float
    best_metrics: dict[str, float]
    epochs: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, Any] = field(default_factory=dict, repr=False)


def fit(
    trainer: Trainer,
    max_epochs: int,
    eval_every: int = 1,
    patience: int | None = None,
    metric: str = "ndcg@10",
    *,
    min_epochs: int = 0,
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Trains with early stopping on a validation metric and restores the best state.

    Args:
        trainer: the trainer (possibly resumed: its epoch count goes on).
        max_epochs: epochs to train at most in this call.
        eval_every: evaluate on validation every this many epochs (and after the last).
        patience: stop after this many evaluations without improvement; None: never.
        metric: validation metric to maximise, a key of ``Trainer.evaluate``'s result.
        min_epochs: no early stop before this many epochs, so that an early plateau (LightGCN
            ranks almost by popularity for its first epochs) is not taken for convergence.
        on_eval: called with each evaluation's record (e.g. to report to Ray Tune).

    Returns:
        :class:`FitResult`; ``trainer`` is left at the best evaluated state.
    """
    if eval_every < 1:
        raise RecsysError(f"eval_every must be >= 1, got {eval_every}")
    if not trainer.spec.trainable or max_epochs < 1:
        metrics = trainer.evaluate("val")
        record = {"epoch": trainer.epoch, **metrics}
        if on_eval is not None:
            on_eval(record)
        return FitResult(
            trainer.epoch,
            _watched(metrics, metric),
            metrics,
            0,
            False,
            [record],
            copy.deepcopy(trainer.state_dict()),
        )
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, float], dict[str, Any]] | None = None
    since_best = 0
    stopped_early = False
    last_epoch = trainer.epoch + max_epochs
    while trainer.epoch < last_epoch:
        losses = trainer.train_epoch()
        if trainer.epoch % eval_every and trainer.epoch != last_epoch:
            continue
        metrics = trainer.evaluate("val")
        record = {"epoch": trainer.epoch, **losses, **metrics}
        history.append(record)
        if on_eval is not None:
            on_eval(record)
        score = _watched(metrics, metric)
        if best is None or score > best[0] or math.isnan(best[0]):
            best = (score, trainer.epoch, metrics, copy.deepcopy(trainer.state_dict()))
            since_best = 0
        else:
            since_best += 1
        if patience is not None and since_best >= patience and trainer.epoch >= min_epochs:
            stopped_early = trainer.epoch < last_epoch
            break
    epochs = trainer.epoch - (last_epoch - max_epochs)
    score, best_epoch, best_metrics, state = best
    trainer.load_state_dict(state)
    return FitResult(best_epoch, score, best_metrics, epochs, stopped_early, history, state)


def _watched(metrics: Mapping[str, float], metric: str) -> float:
    if metric not in metrics:
        raise RecsysError(
            f"unknown metric {metric!r} to early-stop on; choose one of: {', '.join(metrics)}"
        )
    return float(metrics[metric])
