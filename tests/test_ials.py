"""iALS through implicit: one epoch is one exact ALS iteration, the loss is the objective,
the factors are the model's state (seeding, checkpoints, resumption, serving's rebuild)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.errors import RecsysError
from recsys.models import get_spec
from recsys.models.base import VectorScorer
from recsys.models.ials import IALSConfig, build, confidence_matrix
from recsys.train import Trainer
from recsys.tuning.space import load_space

SMALL = {"factors": 3, "regularization": 0.5, "alpha": 4.0}


def dense_ials_iteration(r, x, y, alpha, lam):
    """One ALS iteration in float64 by the normal equations: users given items, then items."""
    c = 1.0 + alpha * r

    def solve(weights, targets, fixed):
        # Row by row: (F^T diag(c_row) F + lam I) v = F^T diag(c_row) p_row.
        eye = lam * np.eye(fixed.shape[1])
        rows = zip(weights, targets, strict=True)
        return np.stack(
            [
                np.linalg.solve(fixed.T @ (w[:, None] * fixed) + eye, fixed.T @ (w * p))
                for w, p in rows
            ]
        )

    x = solve(c, r, y)
    return x, solve(c.T, r.T, x)


def objective(r, x, y, alpha, lam):
    c = 1.0 + alpha * r
    return (c * (r - x @ y.T) ** 2).sum() + lam * ((x**2).sum() + (y**2).sum())


def test_confidences_are_one_plus_alpha_on_the_training_pairs(blocks):
    confidence = confidence_matrix(blocks.train_csr(), 4.0)
    dense = blocks.train_csr().to_dense().numpy()
    assert confidence.dtype == np.float32 and confidence.nnz == len(blocks.train)
    np.testing.assert_array_equal(confidence.toarray(), 5.0 * dense)


@pytest.mark.parametrize("use_cg", [False, True])
def test_an_epoch_is_one_als_iteration_and_reports_the_objective(blocks, use_cg):
    # With 3 factors implicit's 3 conjugate-gradient steps solve each 3x3 system exactly too,
    # up to float32 rounding in the recurrences (some 1e-3 relative on the items).
    torch.manual_seed(0)
    model = build(IALSConfig(**SMALL, use_cg=use_cg), blocks, torch.device("cpu"))
    x0, y0 = model.user_factors.double().numpy(), model.item_factors.double().numpy()
    assert 0 <= x0.min() and x0.max() < 0.01  # implicit's own initialisation
    r = blocks.train_csr().to_dense().double().numpy()
    loss = float(model.fit_epoch()["loss"])
    x, y = dense_ials_iteration(r, x0, y0, alpha=4.0, lam=0.5)
    tol = {"rtol": 5e-3, "atol": 1e-3} if use_cg else {"rtol": 1e-4, "atol": 1e-4}
    np.testing.assert_allclose(model.user_factors.numpy(), x, **tol)
    np.testing.assert_allclose(model.item_factors.numpy(), y, **tol)
    # implicit's loss: the objective over the total confidence of all pairs.
    xm, ym = model.user_factors.double().numpy(), model.item_factors.double().numpy()
    expected = objective(r, xm, ym, 4.0, 0.5) / (1.0 + 4.0 * r).sum()
    assert loss == pytest.approx(expected, rel=1e-4)


def test_the_loss_falls_every_epoch(blocks):
    trainer = Trainer("ials", SMALL, blocks, seed=0)
    losses = [trainer.train_epoch()["loss"] for _ in range(6)]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False))


def test_scores_are_dot_products_of_the_factors(blocks):
    trainer = Trainer("ials", SMALL, blocks, seed=0)
    trainer.train_epoch()
    model = trainer.model
    assert isinstance(model, VectorScorer) and trainer.optimizer is None
    users = torch.tensor([0, 7, 39])
    torch.testing.assert_close(
        model.score(users), model.user_vectors(users) @ model.item_vectors().T, rtol=0, atol=0
    )
    assert model.score(users) is not model.score(users)


def test_same_seed_same_factors_other_seed_other_factors(blocks):
    def factors(seed):
        trainer = Trainer("ials", SMALL, blocks, seed=seed)
        for _ in range(3):
            trainer.train_epoch()
        return trainer.model.user_factors.clone(), trainer.model.item_factors.clone()

    a, b, c = factors(0), factors(0), factors(1)
    for left, right in zip(a, b, strict=True):
        torch.testing.assert_close(left, right, rtol=0, atol=0)
    assert not torch.equal(a[0], c[0])


def test_resuming_from_a_checkpoint_continues_the_same_iterations(blocks, tmp_path):
    straight = Trainer("ials", SMALL, blocks, seed=0)
    for _ in range(4):
        straight.train_epoch()
    first = Trainer("ials", SMALL, blocks, seed=0)
    for _ in range(2):
        first.train_epoch()
    path = first.save(tmp_path / "ials.pt")
    resumed = Trainer("ials", SMALL, blocks, seed=5)
    resumed.load(path)
    for _ in range(2):
        resumed.train_epoch()
    assert resumed.epoch == 4
    for name in ("user_factors", "item_factors"):
        torch.testing.assert_close(
            getattr(resumed.model, name), getattr(straight.model, name), rtol=0, atol=0
        )


def test_serving_rebuild_and_load_state_dict_round_trips(blocks):
    """Serving builds the model from its config on the data without test, then loads the state."""
    spec = get_spec("ials")
    trainer = Trainer("ials", SMALL, blocks, seed=0)
    trainer.train_epoch()
    state = trainer.model.state_dict()
    assert set(state) == {"user_factors", "item_factors"}
    rebuilt = spec.build(spec.make_config(SMALL), blocks.without_test(), torch.device("cpu"))
    rebuilt.load_state_dict(state)
    users = torch.arange(blocks.n_users)
    torch.testing.assert_close(rebuilt.score(users), trainer.model.score(users), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"factors": 0}, "factors"),
        ({"regularization": 0.0}, "regularization"),
        ({"alpha": -1.0}, "alpha"),
        ({"use_cg": "yes"}, "use_cg"),
        ({"iterations": 3}, "unknown hyperparameter"),
    ],
)
def test_bad_config_raises_recsys_error(blocks, config, message):
    with pytest.raises(RecsysError, match=message):
        Trainer("ials", config, blocks)


def test_the_search_space_file_holds_the_defaults():
    space = load_space("ials")
    assert space.model == "ials" and space.budget.max_epochs >= space.budget.grace_period
