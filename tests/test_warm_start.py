"""``--warm-start``: earlier sweeps of the same split read from a real sqlite MLflow store, what
fits this sweep's spaces chosen, evaluated first and told to Optuna; another fingerprint lends
nothing."""

from __future__ import annotations

import pytest

from recsys.tuning import tracking
from recsys.tuning.config import SweepConfig, model_budget, validate
from recsys.tuning.space import SearchSpace
from recsys.tuning.trainable import DEFAULTS_KEY, WARM_KEY
from recsys.tuning.warm_start import (
    Borrowed,
    EarlierRun,
    EarlierSweeps,
    Observation,
    WarmSource,
    choose,
    describe,
    fit,
    lookup,
)

FP, OTHER_FP = "f" * 40, "0" * 40
KEY = "val_ndcg_at_10"
BEST = {"dim": "128", "lr": "0.004", "l2": "1e-05", "batch_size": "1024", "sampler": "uniform"}
# bpr_mf's defaults (searchspaces/bpr_mf.yaml): dim 64, lr 0.001, l2 1e-4, batch_size 2048.
TRIALS = [
    ({"dim": "32", "lr": "0.002", "l2": "1e-06", "batch_size": "2048"}, 0.21, "completed"),
    ({"dim": "128", "lr": "0.004", "l2": "1e-05", "batch_size": "1024"}, 0.30, "stopped_early"),
    ({"dim": "256", "lr": "0.004", "l2": "1e-05", "batch_size": "1024"}, 0.40, "completed"),
    ({"dim": "64", "lr": "0.003", "l2": "1e-05", "batch_size": "1024"}, 0.10, "error"),
]


def _spaces(models=("popularity", "bpr_mf"), **overrides):
    cfg = SweepConfig(models=models, **overrides)
    spaces = validate(cfg)
    return cfg, spaces, {m: model_budget(s, cfg) for m, s in spaces.items()}


def _sweep(uri: str, fingerprint: str, trials=TRIALS, best=BEST, best_value=0.31) -> str:
    parent = tracking.start_parent_run(
        uri,
        "recsys-tune-synthetic",
        "earlier",
        tags={"dataset": "synthetic", "dataset_fingerprint": fingerprint},
        params={"metric": "ndcg@10"},
    )
    c = tracking.client(uri)
    for i, (params, value, status) in enumerate(trials):
        run = tracking.child_run(c, parent, "trial", "bpr_mf", f"t{i}")
        c.log_batch(run, params=tracking.param_batch({**params, "sampler": "uniform", "seed": i}))
        c.log_batch(run, metrics=tracking.metric_batch({"val_ndcg_at_10": value}, 10))
        c.set_tag(run, tracking.TAG_STATUS, status)
    run = tracking.child_run(c, parent, "best", "bpr_mf", "t1")
    served = {"device": "auto", "max_users": 1000}  # registry.py logs them on a best run
    c.log_batch(run, params=tracking.param_batch({**best, **served, "seed": 1}))
    c.log_batch(run, metrics=tracking.metric_batch({"val_ndcg_at_10": best_value}, 0))
    return parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with two sweeps of the same split and one of another split of the same data."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('warm')}/mlflow.db"
    tracking.open_store(uri)
    same = [_sweep(uri, FP), _sweep(uri, FP, trials=TRIALS[:1], best_value=0.5)]
    other = _sweep(uri, OTHER_FP, best={**BEST, "dim": "32"}, best_value=0.9)
    return uri, same, other


def test_earlier_sweeps_of_the_same_fingerprint_are_read_and_others_only_counted(store):
    uri, same, other = store
    earlier = lookup(uri, FP, "synthetic")
    assert set(earlier.same) == set(same) and earlier.other == 1
    assert {r.sweep_run_id for r in earlier.runs} == set(same)
    assert sum(r.role == "best" for r in earlier.runs) == 2
    # This sweep's own parent run never lends.
    assert set(lookup(uri, FP, "synthetic", exclude=same[0]).same) == {same[1]}


def test_the_earlier_best_is_evaluated_first_after_the_defaults_and_told_to_optuna(store):
    from recsys.tuning.search import searcher

    uri, same, _ = store
    cfg, spaces, budgets = _spaces(search="optuna")
    borrowed = choose(lookup(uri, FP, "synthetic"), spaces, budgets, "ndcg@10", "optuna")
    (point,) = borrowed.points["bpr_mf"]  # both sweeps' best is the same config: it runs once
    assert point.config == {"dim": 128, "lr": 0.004, "l2": 1e-5, "batch_size": 1024}
    assert point.value == 0.5  # the better of its two runs
    # In-space trials that did not fail, from both sweeps; dim 256 is outside the space.
    seen = sorted(o.value for o in borrowed.observations["bpr_mf"])
    assert seen == [0.21, 0.21, 0.30]
    assert "popularity" not in borrowed.points  # nothing to search

    models = searcher(cfg, spaces, budgets, borrowed)
    configs = [models.suggest(f"t{i}") for i in range(4)]
    bpr = [c for c in configs if c["model"] == "bpr_mf"]
    assert bpr[0][DEFAULTS_KEY] and WARM_KEY not in bpr[0]
    assert bpr[1][WARM_KEY] == point.run_id and {k: bpr[1][k] for k in point.config} == {
        "dim": 128,
        "lr": 0.004,
        "l2": 1e-5,
        "batch_size": 1024,
    }
    assert WARM_KEY not in bpr[2] and DEFAULTS_KEY not in bpr[2]
    study = models._searchers["bpr_mf"]._ot_study
    told = sorted(t.value for t in study.trials if t.state.name == "COMPLETE")
    assert told == [0.21, 0.21, 0.30]


def test_random_search_takes_the_points_but_no_observations(store):
    uri, _, _ = store
    _, spaces, budgets = _spaces()
    borrowed = choose(lookup(uri, FP, "synthetic"), spaces, budgets, "ndcg@10", "random")
    assert len(borrowed.points["bpr_mf"]) == 1 and not borrowed.observations


def test_another_fingerprint_borrows_nothing_and_says_so_in_one_line(store, capsys):
    from recsys.tuning import console

    uri, _, other = store
    console.configure(1)
    _, spaces, budgets = _spaces(search="optuna")
    new_fp = "a" * 40
    source = WarmSource(uri, new_fp, "synthetic", "ndcg@10", "optuna", parent_run_id=other)
    borrowed = source.borrow(spaces, budgets)
    assert borrowed.empty and borrowed.sweeps == ()
    out = capsys.readouterr().out.strip()
    assert "\n" not in out
    assert out == (
        "warm start: no earlier sweep on this split (fingerprint aaaaaaaaaaaa); 2 earlier sweeps "
        "of synthetic on another split or data (not fingerprint aaaaaaaaaaaa) lend nothing; "
        "the search starts from scratch"
    )
    # The sweep's run says what it borrowed.
    tags = tracking.client(uri).get_run(other).data.tags
    assert tags[tracking.TAG_WARM] == out


def _space(model="bpr_mf") -> SearchSpace:
    return _spaces((model,))[1][model]


@pytest.mark.parametrize(
    ("change", "fits"),
    [
        ({}, True),
        ({"sampler": "hard"}, False),  # another fixed value: another model
        ({"dim": "48"}, False),  # not among the choices
        ({"lr": "0.5"}, False),  # outside loguniform's bounds
        ({"lr": "fast"}, False),
        ({"init_std": "0.1"}, False),  # a field the space leaves out, not at its default 0.03
        ({"init_std": "0.03"}, True),
        ({"device": "auto", "max_users": "1000"}, True),  # a best run's serving params
    ],
)
def test_an_earlier_run_fits_only_the_same_parameters_and_values_inside_the_space(change, fits):
    params = {**BEST, "seed": "3", **change}
    config = fit(_space(), params)
    assert (config is not None) is fits
    if fits:
        assert config == {"dim": 128, "lr": 0.004, "l2": 1e-5, "batch_size": 1024}
        assert isinstance(config["dim"], int)


def test_a_best_run_with_its_serving_params_is_evaluated_first():
    _, spaces, budgets = _spaces(("bpr_mf",))
    served = {"device": "auto", "max_users": "1000", "ann_nprobe": "32"}
    run = EarlierRun("r", "s", "best", "bpr_mf", {**BEST, **served, "seed": "1"}, {KEY: 0.3})
    borrowed = choose(EarlierSweeps(("s",), 0, (run,)), spaces, budgets, "ndcg@10", "random")
    assert [o.run_id for o in borrowed.points["bpr_mf"]] == ["r"]


def test_a_run_missing_a_parameter_does_not_fit():
    params = {k: v for k, v in BEST.items() if k != "l2"}
    assert fit(_space(), params) is None


def test_points_stay_within_the_budget_and_leave_out_the_defaults():
    _, spaces, budgets = _spaces(("bpr_mf",), num_samples=3)
    defaults = {"dim": "64", "lr": "0.001", "l2": "0.0001", "batch_size": "2048"}
    runs = [
        EarlierRun(f"r{i}", "s", "best", "bpr_mf", {**p, "sampler": "uniform"}, {KEY: v})
        for i, (p, v) in enumerate(
            [(defaults, 0.9), (TRIALS[0][0], 0.5), (TRIALS[1][0], 0.6), (BEST, 0.4)]
        )
    ]
    borrowed = choose(EarlierSweeps(("s",), 0, tuple(runs)), spaces, budgets, "ndcg@10", "gp")
    # Budget 3: the defaults trial and two earlier bests, best first; the defaults' run skipped.
    assert [o.run_id for o in borrowed.points["bpr_mf"]] == ["r2", "r1"]


def test_the_line_names_what_each_model_borrowed():
    borrowed = Borrowed(
        points={"bpr_mf": (Observation({"dim": 64}, 0.3, "r"),)},
        observations={"bpr_mf": (Observation({"dim": 64}, 0.3, "t"),) * 4},
        sweeps=("s1", "s2"),
    )
    line = describe(EarlierSweeps(("s1", "s2"), 0, ()), borrowed, "ml-100k", FP)
    assert line == (
        "warm start: from 2 earlier sweep(s) on this split: bpr_mf 1 config(s) first, "
        "4 observations"
    )


def test_a_warm_started_trial_is_tagged_with_the_run_it_re_runs_and_keeps_its_seed():
    from test_records import _result

    from recsys.tuning.records import records_of
    from recsys.tuning.trainable import trial_seed
    from recsys.tuning.trial_runs import _marks

    grid = [_result("bpr_mf", [1, 2], trial_id="w", dim=128, **{WARM_KEY: "earlier"})]
    (record,) = records_of(grid, {"bpr_mf": 2}, root_seed=0)["bpr_mf"]
    assert record.warm_from == "earlier" and record.config == {"dim": 128}
    assert record.seed == trial_seed(0, "bpr_mf", {"dim": 128})  # the marker is no parameter
    assert _marks(False, record.warm_from) == {tracking.TAG_WARM: "earlier"}
    assert _marks(True, None) == {tracking.TAG_DEFAULTS: "true"}
