"""The sweep's searchers (``--search``), its time budget (``--time-budget``) and the ending a
time budget gives a sweep; no Ray started."""

from __future__ import annotations

import importlib.util

import pytest
import sweep_fakes
from ray.tune.search import Searcher

from recsys import cli
from recsys.errors import EXIT_TIME_BUDGET, RecsysError
from recsys.tuning.config import (
    SweepConfig,
    format_duration,
    model_budget,
    parse_duration,
    validate,
)
from recsys.tuning.per_model import RandomSearcher
from recsys.tuning.search import searcher, time_cut


def _searcher(search: str, seed: int = 0, models=("popularity", "bpr_mf", "itemknn")):
    cfg = SweepConfig(models=models, search=search, seed=seed)
    spaces = validate(cfg)
    return searcher(cfg, spaces, {m: model_budget(s, cfg) for m, s in spaces.items()})


def _draws(models, n=4) -> list:
    out = []
    for i in range(n):
        config = models.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        out.append(config)
    return out


@pytest.mark.parametrize(("search", "sampler"), [("optuna", "TPESampler"), ("gp", "GPSampler")])
def test_every_searched_model_gets_the_same_kind_of_optuna_sampler_seeded(search, sampler):
    models = _searcher(search)
    kinds = {
        m: type(s._sampler).__name__ for m, s in models._searchers.items() if m != "popularity"
    }
    assert kinds == {"bpr_mf": sampler, "itemknn": sampler}
    assert isinstance(models._searchers["popularity"], RandomSearcher)  # nothing to search
    # Seeded: the same root seed draws the same trials, another root seed others.
    again, other = _draws(_searcher(search)), _draws(_searcher(search, seed=1))
    first = _draws(models)
    assert first == again and first != other
    assert [c["model"] for c in first] == ["popularity", "bpr_mf", "itemknn", "bpr_mf"]
    assert first[1]["defaults_trial"] and first[2]["defaults_trial"]  # defaults first


def test_each_model_keeps_its_budget_under_a_model_based_searcher():
    configs = _draws(_searcher("gp", models=("popularity", "bpr_mf")), n=20)
    counts = {m: sum(c["model"] == m for c in configs) for m in ("popularity", "bpr_mf")}
    assert counts == {"popularity": 1, "bpr_mf": 6}  # searchspaces/bpr_mf.yaml: 6 trials


def test_cmaes_builds_seeded_when_its_package_is_installed():
    pytest.importorskip("cmaes")
    models = _searcher("cmaes")
    assert type(models._searchers["bpr_mf"]._sampler).__name__ == "CmaEsSampler"
    assert _draws(models) == _draws(_searcher("cmaes"))


@pytest.mark.parametrize(
    ("search", "missing"), [("cmaes", "cmaes"), ("gp", "optuna"), ("bohb", "hpbandster")]
)
def test_a_searcher_without_its_package_names_its_extra_in_one_line(search, missing, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a)
    )
    with pytest.raises(RecsysError) as error:
        validate(SweepConfig(models=("bpr_mf",), search=search))
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        f"--search {search} needs the {missing} package: pip install 'recsys-tune[{search}]', "
        f"or use --search random"
    )


@pytest.mark.parametrize("search", ["gp", "bohb"])
def test_model_based_searchers_refuse_a_grid(tmp_path, search):
    (tmp_path / "bpr_mf.yaml").write_text(
        "budget: {max_epochs: 2, grace_period: 1, reduction_factor: 2, eval_every: 1, "
        "num_samples: 2}\nparams:\n  dim: {grid: [32, 64]}\n"
    )
    with pytest.raises(RecsysError, match=f"'dim' is a grid, which --search {search} cannot"):
        validate(SweepConfig(models=("bpr_mf",), space_dir=str(tmp_path), search=search))


@pytest.mark.parametrize(("num_samples", "startup"), [(2, 2), (6, 2), (8, 2), (12, 4), (60, 10)])
def test_optunas_random_start_fits_the_models_trial_budget(num_samples, startup):
    from recsys.tuning.search import startup_trials

    assert startup_trials(num_samples) == startup
    models = _searcher("optuna", models=("bpr_mf",))
    assert models._searchers["bpr_mf"]._sampler._n_startup_trials == 2  # bpr_mf: 6 trials


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("90s", 90), ("1h", 3600), ("1.5h", 5400), ("600", 600), (" 2M ", 120)],
)
def test_a_time_budget_reads_seconds_minutes_and_hours(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "0", "0s", "-5m", "10x", "ten minutes", "inf", "nanh"])
def test_a_bad_time_budget_is_one_line_before_anything_runs(text, capsys):
    with pytest.raises(RecsysError, match="--time-budget takes a positive duration"):
        parse_duration(text)
    assert cli.main([f"--time-budget={text}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --time-budget takes") and err.count("\n") == 1


def test_the_cli_passes_the_time_budget_and_the_warm_start():
    cfg = cli.parse_args(["--time-budget", "10m", "--warm-start", "--search", "gp"])
    assert (cfg.time_budget_s, cfg.warm_start, cfg.search) == (600, True, "gp")
    assert cli.parse_args([]).time_budget_s is None and not cli.parse_args([]).warm_start
    with pytest.raises(RecsysError, match="--time-budget must be at least 1 s, got 0.5 s"):
        validate(SweepConfig(models=("popularity",), time_budget_s=0.5))


def test_no_reuse_actors_gives_each_trial_an_actor_of_its_own():
    assert cli.parse_args([]).reuse_actors  # Tune's default: a finished trial's actor goes on
    assert not cli.parse_args(["--no-reuse-actors"]).reuse_actors


def test_a_duration_is_written_as_the_flag_takes_it():
    assert [format_duration(s) for s in (600, 90, 3600, 5400, 20)] == [
        "10m",
        "90s",
        "1h",
        "90m",
        "20s",
    ]


@pytest.mark.parametrize(
    ("budget", "wall", "ended", "interrupted", "cut"),
    [
        (60, 61, False, False, True),  # spent, trials left: the budget ended it
        (60, 61, True, False, False),  # every trial ended anyway
        (60, 61, False, True, False),  # an interruption, not the budget
        (60, 30, False, False, False),  # not spent: something else stopped it
        (None, 61, False, False, False),  # no budget
    ],
)
def test_only_a_spent_time_budget_cuts_a_search(budget, wall, ended, interrupted, cut):
    assert time_cut(budget, wall, ended, interrupted) is cut


def _result(time_cut: bool, outcomes):
    from recsys.tuning.endings import SweepResult
    from recsys.tuning.leaderboard import Leaderboard

    state = sweep_fakes.summary_state(SweepConfig(time_budget_s=20), time_cut=time_cut)
    board = Leaderboard.build(outcomes, "ndcg@10", seed=0)
    return SweepResult(state, board, outcomes, wall_seconds=30.0, search_seconds=21.0)


def _outcomes():
    from test_leaderboard import _outcome

    from recsys.tuning.outcome import ModelOutcome, SearchCost

    got = _outcome("bpr_mf", 0.3, 0.2)
    none = ModelOutcome.failed(
        "ease",
        "the time budget ran out before any trial of 'ease' reported",
        SearchCost(0, 0, 0, 0, 0.0, 0.0),
    )
    return [got, none]


def test_a_sweep_cut_by_its_time_budget_ends_time_budget_and_reports_every_model():
    result = _result(True, _outcomes())
    assert result.ending == "time_budget"
    assert [o.model for o in result.unreached] == ["ease"] and not result.failed_models
    assert cli.exit_status(result) == EXIT_TIME_BUDGET
    summary = cli.format_summary(result)
    (line,) = [x for x in summary.splitlines() if x.startswith("TIME:")]
    assert line.startswith(
        "TIME:     the time budget 20s ended the search after 21 s, before every trial had run "
        f"its budget: trials run bpr_mf {result.outcomes[0].trials}, ease 0; no trial of ease "
        "reported in time"
    )
    assert "FAILED" not in summary


def test_without_the_cut_a_model_without_a_result_is_a_failure():
    result = _result(False, _outcomes())
    assert result.ending == "failed" and [o.model for o in result.failed_models] == ["ease"]
    assert "TIME:" not in cli.format_summary(result)


def test_a_time_budget_ending_closes_the_mlflow_runs_as_finished_and_is_final(tmp_path):
    from recsys.tuning import tracking
    from recsys.tuning.state import AlreadyFinished, SweepState

    assert tracking._RUN_STATUS["time_budget"] == "FINISHED"
    cfg = SweepConfig(models=("popularity",), results_dir=str(tmp_path / "r"), verbose=0)
    state = SweepState.create(cfg)
    state.status = "time_budget"
    state.record_search(21.0, cut=True)
    state.release()
    assert SweepState.load(state.results_dir).time_cut
    with pytest.raises(AlreadyFinished, match="ended by its --time-budget.*--warm-start"):
        SweepState.resume(SweepConfig(results_dir=str(tmp_path / "r"), resume=True))


def test_a_trial_the_time_budget_stopped_before_it_ran_is_no_trial():
    from test_records import _result as tune_result

    from recsys.tuning.records import records_of

    grid = [tune_result("a", [1, 2], trial_id="x"), tune_result("a", [], trial_id="never")]
    (only,) = records_of(grid, {"a": 2}, root_seed=0)["a"]
    assert only.trial_id == "x"


@pytest.mark.parametrize(
    ("search", "asked", "expected"),
    [("random", None, 30), ("optuna", None, 2), ("bohb", None, 2), ("gp", 5, 5), ("random", 3, 3)],
)
def test_a_model_based_searcher_is_asked_for_trials_only_as_slots_free(search, asked, expected):
    """Tune asks the searcher ahead for as many trials as the limiter lets live: all 30 at the
    start for random search, the 2 that run at once for a model-based one."""
    from ray.tune.execution.tune_controller import _get_max_pending_trials
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    from recsys.tuning.search import concurrency_cap

    cap = concurrency_cap(search, asked, total=30, slots=2)
    assert cap == expected
    limiter = ConcurrencyLimiter(RandomSearcher({}, 0), max_concurrent=cap)
    assert _get_max_pending_trials(SearchGenerator(limiter)) == expected


def test_a_trials_slots_are_the_cluster_over_its_share():
    from recsys.tuning.resources import ClusterShape, TrialResources

    cluster = ClusterShape(max_node_cpus=8, max_node_gpus=2, total_cpus=16, total_gpus=4)
    assert TrialResources(cpus=1, gpus=0).slots(cluster) == 16
    assert TrialResources(cpus=2, gpus=0).slots(cluster) == 8
    assert TrialResources(cpus=1, gpus=0.25).slots(cluster) == 16  # 16 GPU shares, 16 CPUs
    assert TrialResources(cpus=1, gpus=1).slots(cluster) == 4
    assert TrialResources(cpus=3, gpus=0).slots(cluster) == 5
    assert TrialResources(cpus=32, gpus=0).slots(cluster) == 1
