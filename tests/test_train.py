"""The training loop: seeding, devices, checkpoints, early stopping, both batch kinds."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from recsys.errors import RecsysError
from recsys.models import MODELS
from recsys.models.base import ModelSpec, TrainableRecommender, UserBatch
from recsys.train import FitResult, Trainer, fit, resolve_device, set_seed

FAST = {"lr": 0.05, "batch_size": 64, "dim": 8}


def all_scores(trainer: Trainer) -> torch.Tensor:
    with torch.no_grad():
        return trainer.model.score(torch.arange(trainer.data.n_users)).clone()


def test_set_seed_seeds_python_numpy_and_torch():
    import random

    import numpy as np

    set_seed(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_same_seed_same_training_other_seed_other_training(blocks):
    runs = []
    for seed in (0, 0, 1):
        trainer = Trainer("lightgcn", FAST, blocks, seed=seed)
        losses = [trainer.train_epoch() for _ in range(2)]
        runs.append((losses, all_scores(trainer)))
    assert runs[0][0] == runs[1][0]
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=0, atol=0)
    assert not torch.allclose(runs[0][1], runs[2][1])


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(RecsysError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RecsysError, match="CUDA is not available"):
            resolve_device("cuda")


def test_trainer_exposes_spec_cfg_model_optimizer(blocks):
    trainer = Trainer("bpr_mf", FAST, blocks)
    assert trainer.spec.name == "bpr_mf"
    assert trainer.cfg.dim == 8 and trainer.cfg.lr == 0.05
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert trainer.epoch == 0
    trainer.train_epoch()
    assert trainer.epoch == 1


def test_unknown_model_and_unknown_key(blocks):
    with pytest.raises(RecsysError, match="unknown model"):
        Trainer("lightgnc", {}, blocks)
    with pytest.raises(RecsysError, match="'layers'"):
        Trainer("bpr_mf", {"layers": 2}, blocks)


def test_checkpoint_round_trip_gives_identical_scores_and_continuation(blocks, tmp_path):
    trainer = Trainer("lightgcn", FAST, blocks, seed=0)
    trainer.train_epoch()
    trainer.train_epoch()
    path = trainer.save(tmp_path / "ckpt" / "model.pt")
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    saved_scores = all_scores(trainer)
    saved_metrics = trainer.evaluate()
    next_losses = trainer.train_epoch()  # RNGs are global: continue before anyone reseeds
    next_scores = all_scores(trainer)

    restored = Trainer("lightgcn", FAST, blocks, seed=123)  # other init, other RNG
    restored.load(path)
    assert restored.epoch == 2
    torch.testing.assert_close(all_scores(restored), saved_scores, rtol=0, atol=0)
    assert restored.evaluate() == saved_metrics
    # The RNG and optimizer states came along: the next epoch is the same as the original's.
    assert restored.train_epoch() == next_losses
    torch.testing.assert_close(all_scores(restored), next_scores, rtol=0, atol=0)


def test_checkpoint_of_another_model_or_missing_file(blocks, tmp_path):
    path = Trainer("bpr_mf", FAST, blocks).save(tmp_path / "bpr.pt")
    with pytest.raises(RecsysError, match="bpr_mf"):
        Trainer("lightgcn", FAST, blocks).load(path)
    with pytest.raises(RecsysError, match="does not exist"):
        Trainer("bpr_mf", FAST, blocks).load(tmp_path / "nope.pt")


def test_closed_form_model_trains_nothing(blocks):
    trainer = Trainer("popularity", {}, blocks)
    assert trainer.optimizer is None
    assert trainer.train_epoch() == {}
    result = fit(trainer, max_epochs=5)
    assert result.epochs == 0 and result.best_metrics["users"] == blocks.n_users


def scripted(trainer: Trainer, scores: dict[int, float]) -> None:
    """Replaces validation by a scripted ndcg@10 per epoch."""
    trainer.evaluate = lambda split="val", ks=(10,): {"ndcg@10": scores[trainer.epoch]}


def test_fit_keeps_the_best_state_and_stops_on_patience(blocks):
    trainer = Trainer("bpr_mf", FAST, blocks)
    scores = {1: 0.1, 2: 0.3, 3: 0.2, 4: 0.25, 5: 0.2, 6: 0.9}
    scripted(trainer, scores)
    reported = []
    result = fit(trainer, max_epochs=6, patience=2, on_eval=reported.append)
    assert isinstance(result, FitResult)
    assert (result.best_epoch, result.best_score, result.epochs) == (2, 0.3, 4)
    assert result.stopped_early
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert reported == result.history
    assert "loss" in result.history[0]
    assert trainer.epoch == 2  # the trainer holds the best state
    assert result.best_state["epoch"] == 2

    # The restored model equals a fresh run stopped after 2 epochs.
    reference = Trainer("bpr_mf", FAST, blocks)
    reference.train_epoch()
    reference.train_epoch()
    torch.testing.assert_close(all_scores(trainer), all_scores(reference), rtol=0, atol=0)


def test_fit_warm_up_is_not_fooled_by_an_early_plateau(blocks):
    """A popularity-like plateau in the first epochs, then the real climb."""
    scores = {1: 0.2, 2: 0.2, 3: 0.2, 4: 0.2, 5: 0.3, 6: 0.4, 7: 0.35, 8: 0.3, 9: 0.5, 10: 0.5}
    trainer = Trainer("bpr_mf", FAST, blocks)
    scripted(trainer, scores)
    assert fit(trainer, max_epochs=10, patience=2).best_score == 0.2

    trainer = Trainer("bpr_mf", FAST, blocks)
    scripted(trainer, scores)
    result = fit(trainer, max_epochs=10, patience=2, min_epochs=5)
    assert (result.best_epoch, result.best_score, result.epochs) == (6, 0.4, 8)


def test_fit_evaluates_every_eval_every_epochs_and_after_the_last(blocks):
    trainer = Trainer("bpr_mf", FAST, blocks)
    scripted(trainer, {e: e / 10 for e in range(1, 8)})
    result = fit(trainer, max_epochs=7, eval_every=3)
    assert [r["epoch"] for r in result.history] == [3, 6, 7]
    assert result.best_epoch == 7 and not result.stopped_early


def test_fit_with_real_evaluation_improves_on_blocks(blocks):
    trainer = Trainer("lightgcn", FAST, blocks)
    result = fit(trainer, max_epochs=6, eval_every=2, patience=3, metric="recall@10")
    assert result.best_metrics["recall@10"] >= 0.95
    with pytest.raises(RecsysError, match="unknown metric"):
        fit(trainer, max_epochs=1, metric="auc")


@dataclass(frozen=True)
class RowConfig:
    lr: float = 0.1
    batch_size: int = 7


class RowModel(TrainableRecommender):
    """A linear autoencoder over dense rows, recording the batches it saw."""

    batch_kind = "users"

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.weight = nn.Parameter(torch.zeros(n_items, n_items))
        self.seen: list[UserBatch] = []

    def loss(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        self.seen.append(batch)
        return {"loss": (batch.rows @ self.weight - batch.rows).square().mean()}

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.weight[users % self.n_items].clone()


def test_user_batches_are_dense_training_rows(blocks, monkeypatch):
    spec = ModelSpec("rows", RowConfig, lambda cfg, data, device: RowModel(data.n_users, 20))
    monkeypatch.setitem(MODELS, "rows", spec)
    trainer = Trainer("rows", {}, blocks)
    first = trainer.train_epoch()
    second = trainer.train_epoch()
    assert second["loss"] < first["loss"]
    dense = blocks.train_csr().to_dense()
    epoch = trainer.model.seen[: len(trainer.model.seen) // 2]
    assert max(b.users.numel() for b in epoch) == 7
    users = torch.cat([b.users for b in epoch])
    assert sorted(users.tolist()) == list(range(blocks.n_users))  # every user once
    for batch in epoch:
        torch.testing.assert_close(batch.rows, dense[batch.users])


def test_divergence_raises_recsys_error(blocks, monkeypatch):
    class Diverging(RowModel):
        def loss(self, batch: UserBatch) -> dict[str, torch.Tensor]:
            return {"loss": self.weight.sum() * float("nan")}

    spec = ModelSpec("nan", RowConfig, lambda cfg, data, device: Diverging(data.n_users, 20))
    monkeypatch.setitem(MODELS, "nan", spec)
    with pytest.raises(RecsysError, match="diverged"):
        Trainer("nan", {}, blocks).train_epoch()
