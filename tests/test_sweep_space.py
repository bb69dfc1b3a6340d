"""Search-space files, resources and seeds of the sweep (no Ray cluster needed)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from recsys.errors import RecsysError
from recsys.metrics import metric_key, parse_metric
from recsys.models import MODELS
from recsys.tuning.config import DEFAULT_MODELS
from recsys.tuning.resources import ClusterShape, resolve_resources
from recsys.tuning.space import default_space_dir, load_space, to_tune
from recsys.tuning.trainable import trial_seed

# Every shipped space file, in the default sweep or not; and those of the other datasets'
# folders (searchspaces/ml-1m/...), as (folder, model).
SHIPPED = sorted(path.stem for path in default_space_dir().glob("*.yaml"))
SHIPPED_ELSEWHERE = sorted(
    (path.parent.name, path.stem) for path in default_space_dir().glob("*/*.yaml")
)

BUDGET = """
budget:
  max_epochs: 10
  grace_period: 2
  reduction_factor: 2
  eval_every: 1
  num_samples: 4
"""


@dataclass(frozen=True)
class ToyConfig:
    dim: int = 8
    layers: int = 2
    lr: float = 1e-3
    l2: float = 0.2
    sampler: str = "uniform"
    residual: bool = False
    grad_clip: float | None = None


def _space(tmp_path: Path, params: str, budget: str = BUDGET, name: str = "toy"):
    (tmp_path / f"{name}.yaml").write_text(budget + "params:\n" + params)
    return load_space(name, tmp_path, ToyConfig)


def _error(tmp_path: Path, params: str, budget: str = BUDGET) -> str:
    with pytest.raises(RecsysError) as info:
        _space(tmp_path, params, budget)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "toy.yaml") in message
    return message


def test_every_default_model_has_a_space_file():
    for model in DEFAULT_MODELS:
        assert (default_space_dir() / f"{model}.yaml").is_file(), model


@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_spaces_validate_against_their_model(model):
    assert model in MODELS, f"searchspaces/{model}.yaml has no model in the registry"
    space = load_space(model)
    assert space.model == model
    assert space.budget.grace_period <= space.budget.max_epochs
    to_tune(space)


def test_the_other_datasets_spaces_validate_and_say_how_they_were_sized():
    assert ("ml-1m", "lightgcn") in SHIPPED_ELSEWHERE
    for folder, model in SHIPPED_ELSEWHERE:
        space = load_space(model, default_space_dir() / folder)
        assert space.model == model in MODELS
        assert space.budget.grace_period <= space.budget.max_epochs
        to_tune(space)
        assert (default_space_dir() / folder / "README.md").is_file(), folder


def test_valid_space_converts_to_tune_domains(tmp_path):
    from ray.tune.search.sample import Categorical, Float, Integer

    space = _space(
        tmp_path,
        "  dim: {choice: [8, 16]}\n"
        "  layers: {randint: [1, 4]}\n"
        "  lr: {loguniform: [1e-4, 1.0e-2]}\n"  # PyYAML reads 1e-4 as a string: accepted
        "  l2: {quniform: [0.0, 0.5, 0.1]}\n"
        "  sampler: dns\n",
    )
    assert space.searched() == ["dim", "layers", "lr", "l2"]
    assert space.first_trial == {"dim": 8, "layers": 2, "lr": 1e-3, "l2": 0.2}
    assert space.fixed_values() == {"sampler": "dns"}
    tune_space = to_tune(space)
    assert isinstance(tune_space["dim"], Categorical)
    assert isinstance(tune_space["layers"], Integer)
    assert isinstance(tune_space["lr"], Float)
    assert tune_space["lr"].lower == pytest.approx(1e-4)
    assert tune_space["sampler"] == "dns"
    layers = {tune_space["layers"].sample() for _ in range(300)}
    assert layers == {1, 2, 3, 4}  # both ends of randint included


def test_budget_overrides_clip_the_grace_period(tmp_path):
    budget = _space(tmp_path, "  dim: 8\n").budget.override(max_epochs=1, num_samples=7)
    assert (budget.max_epochs, budget.grace_period, budget.num_samples) == (1, 1, 7)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("  depth: 3\n", ["'depth'", "valid parameters: dim"]),
        ("  dim: {gaussian: [1, 2]}\n", ["'dim'", "unknown distribution 'gaussian'", "choice"]),
        ("  lr: {uniform: [0.1]}\n", ["'lr'", "[low, high]"]),
        ("  lr: {uniform: [0.1, 0.01]}\n", ["'lr'", "low=0.1 must be below high=0.01"]),
        ("  l2: {uniform: [0.5, 0.5]}\n", ["'l2'", "must be below"]),
        ("  lr: -0.01\n", ["'lr'", "learning rate must be positive"]),
        ("  lr: {uniform: [-0.1, 0.1]}\n", ["'lr'", "learning rate must be positive"]),
        ("  l2: {loguniform: [0.0, 0.1]}\n", ["'l2'", "loguniform needs low > 0"]),
        ("  dim: {uniform: [8, 64]}\n", ["'dim'", "is an int", "randint"]),
        ("  dim: {choice: []}\n", ["'dim'", "non-empty list"]),
        ("  dim: {choice: [8, x]}\n", ["'dim'", "'x' is not a valid int"]),
        ("  lr: {uniform: [a, b]}\n", ["'lr'", "must be numbers"]),
        ("  layers: {qrandint: [1, 4]}\n", ["'layers'", "[low, high, step]"]),
        ("  dim: {choice: [8], uniform: [1, 2]}\n", ["'dim'", "one-key mapping"]),
        ("  residual: {uniform: [0, 1]}\n", ["'residual'", "use choice"]),
        ("  dim: {grid: []}\n", ["'dim'", "grid needs a non-empty list", "{grid: [32, 64]}"]),
        ("  dim: {grid: 8}\n", ["'dim'", "grid needs a non-empty list"]),
        ("  dim: {grid: {a: 8}}\n", ["'dim'", "grid needs a non-empty list"]),
        ("  dim: {grid: [8, 16, 8]}\n", ["'dim'", "grid lists 8 twice"]),
        ("  dim: {grid: [8, x]}\n", ["'dim'", "'x' is not a valid int"]),
    ],
)
def test_bad_parameter_is_named_with_its_fix(tmp_path, params, expected):
    message = _error(tmp_path, params)
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ("", "missing 'budget' section"),
        ("budget:\n  max_epochs: 5\n", "budget is missing 'grace_period'"),
        (BUDGET.replace("grace_period: 2", "grace_period: 20"), "exceeds max_epochs=10"),
        (BUDGET.replace("num_samples: 4", "num_samples: 0"), "num_samples=0"),
        (BUDGET.replace("reduction_factor: 2", "reduction_factor: 1"), "at least 2"),
        (BUDGET + "  patience: 3\n", "unknown budget key 'patience'"),
    ],
)
def test_bad_budget_is_named(tmp_path, budget, expected):
    assert expected in _error(tmp_path, "  dim: 8\n", budget)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    (tmp_path / "toy.yaml").write_text(BUDGET + "params:\n  dim: {choice: [8, 16\n")
    with pytest.raises(RecsysError, match=r"toy\.yaml: malformed YAML at line \d+"):
        load_space("toy", tmp_path, ToyConfig)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("  dim: 8\n  dim: 16\n", r"at line 10, column 3: the key 'dim' is given twice"),
        (  # an alias bomb: each line doubles the one before
            "  a: &a [x, x]\n  b: &b [*a, *a]\n  c: [*b, *b]\n",
            r"aliases \(\*name\) are not allowed",
        ),
    ],
)
def test_space_files_refuse_duplicate_keys_and_aliases(tmp_path, params, expected):
    assert re.search(expected, _error(tmp_path, params))


def test_an_oversized_space_file_is_refused_unread(tmp_path):
    (tmp_path / "toy.yaml").write_text(BUDGET + "params:\n" + "#" * 70_000 + "\n")
    with pytest.raises(RecsysError, match=r"toy\.yaml: 70\d+ bytes, more than a search space"):
        load_space("toy", tmp_path, ToyConfig)


def test_missing_file_says_where_it_was_expected(tmp_path):
    with pytest.raises(RecsysError, match=r"toy\.yaml: no search space for model 'toy'"):
        load_space("toy", tmp_path, ToyConfig)


def test_not_a_mapping_and_unknown_section(tmp_path):
    (tmp_path / "toy.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(RecsysError, match="expected a mapping"):
        load_space("toy", tmp_path, ToyConfig)
    (tmp_path / "toy.yaml").write_text(BUDGET + "params: {}\nsearch: optuna\n")
    with pytest.raises(RecsysError, match="unknown section 'search'"):
        load_space("toy", tmp_path, ToyConfig)


def test_unknown_model_is_a_recsys_error():
    with pytest.raises(RecsysError, match="unknown model 'nope'"):
        load_space("nope")


CPU_ONLY = ClusterShape(max_node_cpus=2, max_node_gpus=0, total_cpus=2, total_gpus=0)
GPU_NODE = ClusterShape(max_node_cpus=16, max_node_gpus=1, total_cpus=16, total_gpus=1)


def test_cpu_only_cluster_runs_trials_on_cpu_and_says_so():
    res, note = resolve_resources(CPU_ONLY)
    assert (res.cpus, res.gpus, res.device) == (1.0, 0.0, "cpu")
    assert "no GPU" in note


def test_gpu_cluster_packs_several_trials_per_gpu_by_default():
    res, note = resolve_resources(GPU_NODE)
    assert 0 < res.gpus < 1 and res.device == "cuda" and note is None
    assert resolve_resources(GPU_NODE, gpus_per_trial=0.5)[0].gpus == 0.5


@pytest.mark.parametrize(
    ("cluster", "cpus", "gpus", "expected"),
    [
        (CPU_ONLY, None, 1, "--gpus-per-trial 1 is more than any node"),
        (CPU_ONLY, 4, None, "--cpus-per-trial 4 is more than any node"),
        (GPU_NODE, None, 2, "--gpus-per-trial 2 is more than any node"),
        (GPU_NODE, None, 1.5, "must be a whole number"),
        (GPU_NODE, 0, None, "must be positive"),
        (GPU_NODE, None, -1, "must be 0 or more"),
    ],
)
def test_impossible_resources_are_refused(cluster, cpus, gpus, expected):
    with pytest.raises(RecsysError, match=expected):
        resolve_resources(cluster, cpus, gpus)


def test_trial_seeds_derive_from_root_seed_and_config():
    a = trial_seed(0, "lightgcn", {"dim": 64, "lr": 0.01})
    assert a == trial_seed(0, "lightgcn", {"lr": 0.01, "dim": 64})
    assert a != trial_seed(1, "lightgcn", {"dim": 64, "lr": 0.01})
    assert a != trial_seed(0, "lightgcn", {"dim": 32, "lr": 0.01})
    assert 0 <= a < 2**31


def test_metric_names():
    assert parse_metric("recall@20") == ("recall", 20)
    assert metric_key("val", "ndcg@10") == "val_ndcg_at_10"
    for bad in ("ndcg", "ndcg@", "ndcg@0", "auc@10", "ndcg@x"):
        with pytest.raises(RecsysError, match="bad metric"):
            parse_metric(bad)


def test_a_cluster_of_several_machines_needs_shared_storage_and_a_tracking_server():
    from recsys.tuning.resources import check_shared

    one = ClusterShape(2, 0, 4, 0, hosts=1)
    many = ClusterShape(2, 0, 4, 0, hosts=2)
    check_shared(one, "/tmp/ray_results", "sqlite:///mlflow.db")  # one machine: all local
    check_shared(many, "s3://bucket/ray", "http://mlflow:5000")
    check_shared(many, "file:///mnt/shared/ray", "postgresql://db/mlflow")
    with pytest.raises(RecsysError, match="--storage-path /tmp/ray_results is a folder"):
        check_shared(many, "/tmp/ray_results", "http://mlflow:5000")
    for uri in ("sqlite:///mlflow.db", "mlruns", "file:///tmp/mlruns"):
        with pytest.raises(RecsysError, match="start an MLflow server"):
            check_shared(many, "s3://bucket/ray", uri)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("  dim: {choice: [16, 32]}\n", ["'dim'", "default 8 is outside choice [16, 32]"]),
        ("  lr: {loguniform: [2.0e-3, 1.0e-2]}\n", ["'lr'", "default 0.001", "widen"]),
        ("  layers: {randint: [3, 4]}\n", ["'layers'", "default 2"]),
        ("  l2: {quniform: [0.0, 0.5, 0.15]}\n", ["'l2'", "default 0.2"]),  # off the grid
        ("  residual: {choice: [true]}\n", ["'residual'", "default False"]),
        ("  dim: {grid: [16, 32]}\n", ["'dim'", "default 8 is outside grid [16, 32]"]),
    ],
)
def test_a_default_outside_its_distribution_is_an_error(tmp_path, params, expected):
    message = _error(tmp_path, params)
    for part in expected:
        assert part in message, message


def test_every_shipped_space_starts_with_its_models_defaults():
    import dataclasses

    from recsys.models import get_spec

    for model in SHIPPED:
        space = load_space(model)
        defaults = {f.name: f.default for f in dataclasses.fields(get_spec(model).config_cls)}
        assert space.first_trial == {n: defaults[n] for n in space.searched()}, model


def test_model_groups_expand_in_order_each_model_once():
    from recsys.tuning.config import DEFAULT_MODELS, MODEL_GROUPS, expand_models, group_members

    assert expand_models("default") == DEFAULT_MODELS
    assert expand_models("all") == tuple(MODELS)
    assert expand_models(" ease , default ")[0] == "ease"
    assert expand_models("ease,default").count("ease") == 1
    assert expand_models("baselines,seeds") == tuple(
        dict.fromkeys(MODEL_GROUPS["baselines"] + MODEL_GROUPS["seeds"])
    )
    for group in MODEL_GROUPS:
        members = group_members(group)
        assert members and set(members) <= set(MODELS), group
    with pytest.raises(RecsysError, match="names 'default' twice"):
        expand_models("default,default")


def test_an_unknown_model_name_lists_the_models_and_groups():
    from recsys.tuning.config import SweepConfig, load_spaces

    with pytest.raises(RecsysError, match="unknown model 'nope'.*or a group: default, seeds"):
        load_spaces(SweepConfig(models=("ease", "nope")))


GRID = "  dim: {grid: [4, 8, 16]}\n  sampler: {grid: [uniform, dns]}\n"


def test_a_grid_loads_and_converts_to_tune_grid_search(tmp_path):
    from ray import tune

    space = _space(tmp_path, GRID + "  lr: {loguniform: [1.0e-4, 1.0e-2]}\n")
    assert space.grid() == {"dim": (4, 8, 16), "sampler": ("uniform", "dns")}
    assert space.grid_points() == 6 and space.searched() == ["dim", "sampler", "lr"]
    assert space.first_trial == {"dim": 8, "sampler": "uniform", "lr": 1e-3}
    converted = to_tune(space)
    assert converted["dim"] == tune.grid_search([4, 8, 16])
    assert converted["sampler"] == {"grid_search": ["uniform", "dns"]}


def _budget(tmp_path, params, **cfg):
    from recsys.tuning.config import SweepConfig, model_budget

    space = _space(tmp_path, params)
    return model_budget(space, SweepConfig(models=("toy",), **cfg)).num_samples


def test_a_grid_multiplies_the_trials_unless_it_is_all_there_is(tmp_path, monkeypatch):
    from recsys.models import ModelSpec

    # model_budget asks the registry whether the model trains: the toy one does.
    monkeypatch.setattr(
        "recsys.tuning.config.get_spec", lambda name: ModelSpec("toy", ToyConfig, lambda *a: None)
    )
    drawn = GRID + "  lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
    assert _budget(tmp_path, drawn) == 6 * 4  # the file's num_samples per grid point
    assert _budget(tmp_path, drawn, num_samples=2) == 6 * 2
    assert _budget(tmp_path, drawn, smoke=True) == 6 * 2
    # Only grid parameters: a repeat would be the same trial, so the grid runs once.
    assert _budget(tmp_path, GRID) == 6
    assert _budget(tmp_path, GRID, num_samples=5) == 6
    assert _budget(tmp_path, "  lr: {loguniform: [1.0e-4, 1.0e-2]}\n") == 4  # no grid
    assert _budget(tmp_path, "  dim: 8\n") == 1  # nothing searched


def test_optuna_refuses_a_grid_in_one_line(tmp_path):
    from recsys.tuning.config import SweepConfig, validate

    (tmp_path / "lightgcn.yaml").write_text(BUDGET + "params:\n  dim: {grid: [32, 64]}\n")
    cfg = SweepConfig(models=("lightgcn",), space_dir=str(tmp_path), search="optuna")
    with pytest.raises(RecsysError, match="'dim' is a grid, which --search optuna cannot run"):
        validate(cfg)
    assert validate(SweepConfig(models=("lightgcn",), space_dir=str(tmp_path)))["lightgcn"]


def test_every_grid_value_is_checked_against_the_model(tmp_path):
    from recsys.tuning.config import SweepConfig, validate

    (tmp_path / "lightgcn.yaml").write_text(BUDGET + "params:\n  dim: {grid: [64, -5]}\n")
    with pytest.raises(RecsysError, match="lightgcn rejects dim=-5"):
        validate(SweepConfig(models=("lightgcn",), space_dir=str(tmp_path)))


# The seed projects' own configurations, which the shipped spaces must be able to draw.
SEED_CONFIGS = {
    "hybrid_vae": [{"hidden": 256, "batch_size": 64}, {"hidden": 512, "batch_size": 64}],
    "lightgcn_hardneg": [{"sampler": "popularity", "pool_size": 2000, "p_pop": 0.7}],
    "lightgcn": [{"batch_size": 4096}],
}


@pytest.mark.parametrize("model", sorted(SEED_CONFIGS))
def test_the_seed_projects_configurations_lie_in_the_shipped_spaces(model):
    space = load_space(model)
    for config in SEED_CONFIGS[model]:
        for name, value in config.items():
            assert space.params[name].contains(value), (model, name, value)
