"""``--search bohb``: BOHB's model as each model's searcher, learning at its ASHA's rungs; no Ray
started."""

from __future__ import annotations

import pickle

import pytest
from ray import tune
from ray.tune.search import Searcher

pytest.importorskip("hpbandster")

from recsys.tuning.bohb import BOHBSearcher, rungs  # noqa: E402
from recsys.tuning.config import SweepConfig, model_budget, validate  # noqa: E402
from recsys.tuning.search import searcher  # noqa: E402

KEY = "val/ndcg@10"


def _one(seed=0, points=(), budgets=(2, 4, 8)):
    domains = {
        "x": tune.uniform(0.0, 1.0),
        "q": tune.quniform(0.1, 0.5, 0.05),
        "k": tune.choice([16, 32, 64]),
    }
    return BOHBSearcher(domains, KEY, "max", budgets, seed, points)


def _score(config):
    return 1.0 - abs(config["x"] - 0.8)  # best at x = 0.8


def test_the_rungs_are_ashas_and_the_full_budget():
    assert rungs(30, 3, 300) == (30, 90, 270, 300)  # searchspaces/lightgcn.yaml
    assert rungs(40, 3, 200) == (40, 120, 200)
    assert rungs(1, 2, 1) == (1,)  # closed form: one epoch


def test_seeded_plain_values_on_their_grid_and_the_defaults_first():
    first = [_one().suggest(f"t{i}") for i in range(1)]
    a = _one(points=[{"x": 0.3, "q": 0.25, "k": 32}])
    draws = [a.suggest(f"t{i}") for i in range(6)]
    assert draws[0] == {"x": 0.3, "q": 0.25, "k": 32}  # the point to evaluate comes first
    b = _one(points=[{"x": 0.3, "q": 0.25, "k": 32}])
    assert [b.suggest(f"t{i}") for i in range(6)] == draws  # same seed, same search
    assert [_one(seed=1).suggest("t0")] != first
    for config in draws:
        assert type(config["k"]) is int and type(config["x"]) is float
        assert round(config["q"] / 0.05, 6).is_integer() and 0.1 <= config["q"] <= 0.5


def test_each_rung_a_trial_reaches_is_one_observation_at_that_budget():
    s = _one()
    config = s.suggest("t0")
    for epoch in (1, 3, 5, 9):  # reports every 2 epochs, off the rungs 2, 4, 8
        s.on_trial_result("t0", {KEY: 0.1 * epoch, "epoch": epoch})
    generator = s._bohb.bohber
    assert sorted(generator.configs) == [2, 4, 8]
    # At a rung: the first report at or past it, as ASHA decides; BOHB minimises the loss.
    assert [generator.losses[b] for b in (2, 4, 8)] == [[-0.30000000000000004], [-0.5], [-0.9]]
    s.on_trial_result("t0", {KEY: 1.0, "epoch": 11})  # past every rung: nothing new
    assert sum(len(v) for v in generator.losses.values()) == 3
    s.on_trial_complete("t0", {KEY: 1.0, "epoch": 11})
    assert config and "t0" not in s._bohb.trial_to_params


def test_its_model_takes_over_once_a_budget_has_enough_observations_and_finds_the_optimum():
    s = _one(budgets=(1,))
    for i in range(40):
        config = s.suggest(f"t{i}")
        s.on_trial_result(f"t{i}", {KEY: _score(config), "epoch": 1})
        s.on_trial_complete(f"t{i}", {KEY: _score(config), "epoch": 1})
    # Three parameters: a model needs 2 * (3 + 1) observations at the budget.
    assert list(s._bohb.bohber.kde_models) == [1]
    late = [s.suggest(f"late{i}")["x"] for i in range(30)]
    near = sum(abs(x - 0.8) < 0.2 for x in late)
    assert near >= 15, late  # random draws land there 40% of the time


def test_its_draws_leave_numpys_global_generator_alone():
    import numpy as np

    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    s = _one()
    for i in range(12):
        c = s.suggest(f"t{i}")
        s.on_trial_result(f"t{i}", {KEY: _score(c), "epoch": 2})
    assert np.random.rand() == expected


def test_a_sweeps_searcher_gives_every_searched_model_bohb_and_survives_a_save(tmp_path):
    cfg = SweepConfig(models=("popularity", "bpr_mf", "itemknn"), search="bohb", seed=0)
    spaces = validate(cfg)
    budgets = {m: model_budget(s, cfg) for m, s in spaces.items()}
    models = searcher(cfg, spaces, budgets)
    assert {m: type(s).__name__ for m, s in models._searchers.items()} == {
        "popularity": "RandomSearcher",  # nothing to search
        "bpr_mf": "BOHBSearcher",
        "itemknn": "BOHBSearcher",
    }
    b = budgets["bpr_mf"]
    assert models._searchers["bpr_mf"]._budgets == rungs(
        b.grace_period, b.reduction_factor, b.max_epochs
    )
    draws = [models.suggest(f"t{i}") for i in range(4)]
    assert [d["model"] for d in draws] == ["popularity", "bpr_mf", "itemknn", "bpr_mf"]
    assert draws[1]["defaults_trial"] and draws[2]["defaults_trial"]  # defaults first
    path = tmp_path / "searcher.pkl"
    models.save(str(path))
    again = searcher(cfg, spaces, budgets)
    again.restore(str(path))
    assert again.suggest("t4") == models.suggest("t4")  # a resumed search goes on the same
    assert pickle.loads(path.read_bytes())  # a plain pickle, as Tune stores it
    for i in range(5, 40):
        if models.suggest(f"t{i}") == Searcher.FINISHED:
            break
    counts = {m: sum(1 for t, o in models._owner.items() if o == m) for m in spaces}
    assert counts == {m: budgets[m].num_samples for m in spaces}  # each model its budget
