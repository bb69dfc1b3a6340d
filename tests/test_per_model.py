"""Every model's search inside one Tuner: the searcher that takes turns, the scheduler that
routes, and the trial's fallback to the checkpoint left beside a deleted one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from recsys.tuning.per_model import ModelScheduler, ModelSearcher, RandomSearcher
from recsys.tuning.trainable import DEFAULTS_KEY, MODEL_KEY, split_config


def _searcher(samples=None) -> ModelSearcher:
    return ModelSearcher(
        {
            "a": RandomSearcher({"lr": tune.loguniform(1e-4, 1e-1)}, seed=1),
            "b": RandomSearcher({"dim": tune.choice([8, 16, 32])}, seed=2),
            "c": RandomSearcher({}, seed=3),  # nothing searched
        },
        samples=samples or {"a": 3, "b": 2, "c": 1},
        fixed={"a": {"dim": 4}, "c": {"k": 7}},
        metric="val_ndcg_at_10",
        mode="max",
    )


def _suggest_all(searcher: ModelSearcher, start: int = 0) -> list:
    out = []
    for i in range(start, start + 20):
        config = searcher.suggest(f"t{i}")
        out.append(config)
        if config == Searcher.FINISHED:
            break
    return out


def test_models_take_turns_until_each_has_its_trials():
    configs = _suggest_all(_searcher())
    assert configs[-1] == Searcher.FINISHED
    models = [c[MODEL_KEY] for c in configs[:-1]]
    assert models == ["a", "b", "c", "a", "b", "a"]
    a = [c for c in configs[:-1] if c[MODEL_KEY] == "a"]
    assert all(c["dim"] == 4 and 1e-4 <= c["lr"] <= 1e-1 for c in a)  # fixed merged
    assert len({c["lr"] for c in a}) == 3
    assert {c["dim"] for c in configs[:-1] if c[MODEL_KEY] == "b"} <= {8, 16, 32}
    assert [c for c in configs[:-1] if c[MODEL_KEY] == "c"] == [{MODEL_KEY: "c", "k": 7}]
    assert split_config(a[0]) == ("a", {"dim": 4, "lr": a[0]["lr"]})


def test_same_seeds_same_suggestions_and_a_restored_searcher_goes_on(tmp_path):
    assert _suggest_all(_searcher()) == _suggest_all(_searcher())
    whole = _suggest_all(_searcher())
    first = _searcher()
    head = [first.suggest(f"t{i}") for i in range(3)]
    first.save(str(tmp_path / "searcher.pkl"))
    restored = _searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert head + _suggest_all(restored, start=3) == whole


class _Waits(Searcher):
    """A searcher with nothing to suggest until a result arrives (as Optuna can be)."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list = []

    def suggest(self, trial_id):
        return {"x": 1} if self.results else None

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.results.append((trial_id, result))


def test_a_waiting_searcher_lets_the_others_go_first_and_gets_its_own_results():
    waits = _Waits()
    searcher = ModelSearcher(
        {"w": waits, "r": RandomSearcher({}, seed=0)},
        samples={"w": 1, "r": 1},
        fixed={},
        metric="m",
        mode="max",
    )
    assert searcher.suggest("t0") == {MODEL_KEY: "r"}
    assert searcher.suggest("t1") is None  # "w" waits; not finished
    searcher.on_trial_complete("t0", {"m": 1.0})
    assert waits.results == []  # "r"'s result is not "w"'s
    waits.results.append(("elsewhere", None))
    assert searcher.suggest("t2") == {MODEL_KEY: "w", "x": 1}
    searcher.on_trial_complete("t2", {"m": 0.5})
    assert waits.results[-1] == ("t2", {"m": 0.5})
    assert searcher.suggest("t3") == Searcher.FINISHED


class _Recorder(FIFOScheduler):
    def __init__(self, decision: str) -> None:
        super().__init__()
        self.decision, self.seen = decision, []

    def on_trial_add(self, tune_controller, trial):
        self.seen.append(("add", trial.trial_id))

    def on_trial_result(self, tune_controller, trial, result):
        self.seen.append(("result", trial.trial_id))
        return self.decision

    def on_trial_complete(self, tune_controller, trial, result):
        self.seen.append(("complete", trial.trial_id))


def test_each_trial_reaches_its_models_scheduler_only():
    a, b = _Recorder(TrialScheduler.CONTINUE), _Recorder(TrialScheduler.STOP)
    scheduler = ModelScheduler({"a": a, "b": b})
    assert scheduler.set_search_properties("val_ndcg_at_10", "max")
    assert a.metric == b.metric == scheduler.metric == "val_ndcg_at_10"
    ta = SimpleNamespace(trial_id="ta", config={MODEL_KEY: "a", "lr": 0.1})
    tb = SimpleNamespace(trial_id="tb", config={MODEL_KEY: "b"})
    for trial in (ta, tb):
        scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, ta, {}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, tb, {}) == TrialScheduler.STOP
    scheduler.on_trial_complete(None, tb, {})
    assert a.seen == [("add", "ta"), ("result", "ta")]
    assert b.seen == [("add", "tb"), ("result", "tb"), ("complete", "tb")]


def test_the_defaults_come_first_then_random_draws():
    searcher = RandomSearcher(
        {"lr": tune.loguniform(1e-4, 1e-1)}, seed=1, points_to_evaluate=[{"lr": 1e-3}]
    )
    plain = RandomSearcher({"lr": tune.loguniform(1e-4, 1e-1)}, seed=1)
    assert searcher.suggest("t0") == {"lr": 1e-3}
    assert [searcher.suggest(f"t{i}") for i in (1, 2)] == [plain.suggest("p0"), plain.suggest("p1")]
    models = ModelSearcher(
        {"a": RandomSearcher({"lr": tune.choice([1e-3, 1e-2])}, 1, [{"lr": 1e-3}])},
        samples={"a": 4},
        fixed={"a": {"dim": 4}},
        metric="val_ndcg_at_10",
        mode="max",
        defaults_first=["a"],
    )
    first, *rest = (models.suggest(f"t{i}") for i in range(4))
    assert first == {MODEL_KEY: "a", DEFAULTS_KEY: True, "dim": 4, "lr": 1e-3}
    assert split_config(first) == ("a", {"dim": 4, "lr": 1e-3})
    # A later draw of the same values is an ordinary trial.
    assert {MODEL_KEY: "a", "dim": 4, "lr": 1e-3} in rest
    assert all(DEFAULTS_KEY not in c for c in rest)


def test_asha_never_stops_the_defaults_trial_but_sees_its_results():
    asha = _Recorder(TrialScheduler.STOP)
    scheduler = ModelScheduler({"a": asha})
    defaults = SimpleNamespace(
        trial_id="d", config={MODEL_KEY: "a", DEFAULTS_KEY: True, "lr": 1e-3}
    )
    other = SimpleNamespace(trial_id="o", config={MODEL_KEY: "a", "lr": 1e-3})
    assert scheduler.on_trial_result(None, defaults, {}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, other, {}) == TrialScheduler.STOP
    assert asha.seen == [("result", "d"), ("result", "o")]


@pytest.mark.parametrize("bad", [{}, {"lr": 0.1}])
def test_a_config_without_its_model_is_refused(bad):
    with pytest.raises(KeyError):
        split_config(bad)


def test_a_grid_is_enumerated_round_after_round_with_the_defaults_in_their_place():
    grid = {"dim": tune.grid_search([8, 16]), "sampler": tune.grid_search(["u", "d"])}
    searcher = RandomSearcher(
        {**grid, "lr": tune.loguniform(1e-4, 1e-1)},
        seed=1,
        points_to_evaluate=[{"dim": 16, "sampler": "u", "lr": 1e-3}],
    )
    configs = [searcher.suggest(f"t{i}") for i in range(8)]
    assert configs[0] == {"dim": 16, "sampler": "u", "lr": 1e-3}  # the defaults, first
    points = [(c["dim"], c["sampler"]) for c in configs]
    # Round one: the grid in order, (16, "u") already run by the defaults; then round two.
    assert points[1:] == [(8, "u"), (8, "d"), (16, "d"), (8, "u"), (8, "d"), (16, "u"), (16, "d")]
    assert list(configs[1]) == ["dim", "sampler", "lr"]  # the space's order
    assert len({c["lr"] for c in configs}) == 8  # the other parameters are drawn
    plain = RandomSearcher({"lr": tune.loguniform(1e-4, 1e-1)}, seed=1)
    assert [c["lr"] for c in configs[1:3]] == [plain.suggest("p0")["lr"], plain.suggest("p1")["lr"]]


def test_the_sweeps_searcher_gives_each_grid_point_its_samples(tmp_path):
    from recsys.tuning.config import SweepConfig, model_budget, validate
    from recsys.tuning.search import searcher

    (tmp_path / "lightgcn.yaml").write_text(
        "budget: {max_epochs: 2, grace_period: 1, reduction_factor: 2, eval_every: 1, "
        "num_samples: 2}\nparams:\n  dim: {grid: [32, 64]}\n  layers: {grid: [1, 3]}\n"
        "  lr: {loguniform: [1.0e-3, 1.0e-2]}\n"
    )
    cfg = SweepConfig(models=("lightgcn",), space_dir=str(tmp_path))
    spaces = validate(cfg)
    budgets = {m: model_budget(s, cfg) for m, s in spaces.items()}
    assert budgets["lightgcn"].num_samples == 8  # 4 grid points x 2 samples
    configs = _suggest_all(searcher(cfg, spaces, budgets))
    assert configs[-1] == Searcher.FINISHED and len(configs) == 9
    assert configs[0][DEFAULTS_KEY] and (configs[0]["dim"], configs[0]["layers"]) == (64, 3)
    points = sorted((c["dim"], c["layers"]) for c in configs[:-1])
    assert points == sorted([(32, 1), (32, 3), (64, 1), (64, 3)] * 2)
