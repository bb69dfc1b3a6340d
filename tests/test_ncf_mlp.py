"""NCF-MLP: the pointwise log loss and catalogue scores against per-pair references."""

from __future__ import annotations

import pytest
import torch

from recsys.errors import RecsysError
from recsys.models import get_spec, ncf_mlp
from recsys.models.base import PairBatch
from recsys.models.ncf_mlp import NCFMLP, NCFMLPConfig
from recsys.train import Trainer
from recsys.tuning.space import load_space, to_tune

SMALL = {"dim": 4, "hidden": 8, "n_layers": 2}


def small_model(n_users: int = 5, n_items: int = 7) -> NCFMLP:
    torch.manual_seed(0)
    # A larger init than the paper's 0.01, so that the pairs' logits differ visibly.
    return NCFMLP(n_users, n_items, dim=4, widths=(8, 4), init_std=1.0)


@torch.no_grad()
def concatenated_logit(model: NCFMLP, user: int, item: int) -> float:
    """The paper's formula for one pair: the tower over the concatenation [p_u; q_i]."""
    x = torch.cat([model.user_emb[user], model.item_emb[item]])
    return float(model.rest(model.first(x)).squeeze())


def test_widths_halve_from_hidden_and_bad_towers_are_refused():
    assert NCFMLPConfig(hidden=64, n_layers=3).widths == (64, 32, 16)
    assert NCFMLPConfig(hidden=10, n_layers=1).widths == (10,)
    with pytest.raises(RecsysError, match="hidden=4 halves 3 times"):
        NCFMLPConfig(hidden=4, n_layers=4)
    with pytest.raises(RecsysError, match="num_negatives"):
        NCFMLPConfig(num_negatives=0)


def test_loss_is_the_mean_binary_cross_entropy_over_positives_and_negatives():
    model = small_model().eval()
    users = torch.tensor([0, 3, 3])
    pos = torch.tensor([1, 2, 6])
    neg = torch.tensor([[0, 4], [5, 1], [0, 3]])
    loss = model.loss(PairBatch(users, pos, neg))
    terms = []
    for row, user in enumerate(users.tolist()):
        for item, label in [(pos[row].item(), 1.0)] + [(j, 0.0) for j in neg[row].tolist()]:
            p = torch.sigmoid(torch.tensor(concatenated_logit(model, user, item)))
            terms.append(-(label * torch.log(p) + (1 - label) * torch.log(1 - p)))
    expected = torch.stack(terms).mean()
    assert len(terms) == 9
    torch.testing.assert_close(loss["loss"], expected)
    torch.testing.assert_close(loss["bce"], expected)


def test_one_negative_per_pair_comes_as_a_vector_and_is_read_the_same():
    model = small_model().eval()
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])
    torch.testing.assert_close(
        model.loss(PairBatch(users, pos, neg))["loss"],
        model.loss(PairBatch(users, pos, neg.unsqueeze(1)))["loss"],
    )


@pytest.mark.parametrize("budget", [1 << 24, 50])
def test_scores_are_the_per_pair_tower_for_every_item(monkeypatch, budget):
    # budget 50 forces item chunks of one item (3 users x 8 units each): the chunked path.
    monkeypatch.setattr(ncf_mlp, "_SCORE_ELEMENTS", budget)
    model = small_model().eval()
    users = torch.tensor([4, 0, 2])
    scores = model.score(users)
    expected = torch.tensor(
        [[concatenated_logit(model, u, i) for i in range(model.n_items)] for u in users.tolist()]
    )
    assert scores.shape == (3, model.n_items)
    torch.testing.assert_close(scores, expected)
    items = torch.tensor([[6, 0], [3, 3], [1, 5]])
    torch.testing.assert_close(model.pair_scores(users, items), scores.gather(1, items))


def test_the_trainer_samples_the_configured_negatives_and_decays_weights(blocks):
    trainer = Trainer(
        "ncf_mlp", {**SMALL, "num_negatives": 3, "weight_decay": 1e-4}, blocks, device="cpu"
    )
    assert trainer.model.negatives_per_pair == 3 and trainer.sampler is not None
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 1e-4
    batches = list(trainer._pair_batches())
    assert all(b.neg.shape == (b.users.numel(), 3) for b in batches)


def test_popularity_sampler_is_the_configs(blocks):
    config = {**SMALL, "sampler": "popularity", "p_pop": 0.5, "pool_size": 3}
    trainer = Trainer("ncf_mlp", config, blocks, device="cpu")
    assert trainer.sampler.p_pop == 0.5 and trainer.sampler.pool.numel() == 3


def test_registry_entry_is_trainable_without_text():
    spec = get_spec("ncf_mlp")
    assert spec.trainable and not spec.needs_item_embeddings(spec.config_cls())


def test_the_search_space_starts_with_the_defaults():
    space = load_space("ncf_mlp")
    defaults = NCFMLPConfig()
    assert space.first_trial == {name: getattr(defaults, name) for name in space.searched()}
    # Every corner of the tower sizes is a valid config (hidden halves n_layers - 1 times).
    for hidden in space.params["hidden"].args[0]:
        NCFMLPConfig(hidden=hidden, n_layers=space.params["n_layers"].args[1])
    to_tune(space)
