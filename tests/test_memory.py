"""The memory plan: the arithmetic of each family on hand-computed sizes, the worst config of a
space, the one-line refusal of a space that fits no node, and the trial's Ray request."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.errors import RecsysError
from recsys.tuning import memory
from recsys.tuning.memory import DataShape, ease_bytes, estimate, need, plan, worst_configs
from recsys.tuning.resources import ClusterShape, TrialResources
from recsys.tuning.space import Budget, Param, SearchSpace, load_space

SHAPE = DataShape(n_users=1000, n_items=500, n_train=20_000, n_val=2_500)
BUDGET = Budget(max_epochs=1, grace_period=1, reduction_factor=2, eval_every=1, num_samples=1)


def test_ease_needs_twenty_bytes_an_item_pair_while_fitting():
    # float32 G (4) + float64 G + lambda I (8) + its Cholesky factor (8); float32 B (4) kept
    resident, work = ease_bytes(1000)
    assert resident == 1000**2 * 4
    assert resident + work == 1000**2 * 8 * 2.5
    found = need("ease", {}, SHAPE)
    assert found.resident + found.work == 500**2 * 20


def test_embeddings_are_counted_with_gradient_and_adams_two_moments():
    found = need("bpr_mf", {"dim": 8}, SHAPE)
    assert found.resident == (1000 + 500) * 8 * 4 * (1 + 1 + 2)


def test_lightgcn_counts_its_graph_and_every_layers_activations():
    found = need("lightgcn", {"dim": 8, "layers": 2, "batch_size": 1000}, SHAPE)
    nodes, edges = 1500, 2 * 20_000
    graph = 2 * edges * (8 + 4) + edges * 8  # the matrix and its transpose, the mirror index
    assert found.resident == nodes * 8 * 4 * 4 + graph
    activations = 2 * (2 + 2) * nodes * 8 * 4
    assert found.work == activations + 20_000 * 8 * (3 + 1)  # shuffled pairs, one negative
    deeper = need("lightgcn", {"dim": 8, "layers": 3, "batch_size": 1000}, SHAPE)
    assert deeper.work - found.work == 2 * nodes * 8 * 4


def test_estimate_adds_the_process_the_data_and_an_evaluation_batch():
    small = estimate("popularity", {}, SHAPE)
    scores = 4096 * 500 * memory.EVAL_BYTES_PER_SCORE  # 4096 users a batch at 500 items
    data = (20_000 + 2_500) * 16 + 20_000 * 12 + 1001 * 8
    assert small.host_bytes == memory.BASE_BYTES + data + 500 * 8 + scores
    assert small.gpu_bytes == 0
    on_gpu = estimate("popularity", {}, SHAPE, device="cuda")
    assert on_gpu.gpu_bytes == 500 * 8 + scores
    assert on_gpu.host_bytes == memory.BASE_CUDA_BYTES + data


def test_the_worst_config_takes_every_numeric_maximum_and_each_choice():
    space = SearchSpace(
        "lightgcn",
        Path("lightgcn.yaml"),
        {
            "dim": Param("dim", "choice", ((64, 128),)),
            "layers": Param("layers", "randint", (1, 4)),
            "sampler": Param("sampler", "choice", (("uniform", "popularity"),)),
            "lr": Param("lr", "loguniform", (1e-3, 1e-2)),
        },
        BUDGET,
        {"dim": 64, "layers": 3, "sampler": "uniform", "lr": 1e-3},
    )
    configs = worst_configs(space)
    assert configs[0] == {"dim": 128, "layers": 4, "sampler": "uniform", "lr": 1e-2}
    assert [c["sampler"] for c in configs[1:]] == ["uniform", "popularity"]


def test_a_space_that_fits_is_printed_one_line_per_model():
    spaces = {m: load_space(m) for m in ("ease", "lightgcn")}
    graph = DataShape(n_users=50_000, n_items=2_000, n_train=1_000_000)
    planned, lines = plan(spaces, graph, node_memory=8 * 2**30)
    assert [line.split()[1] for line in lines] == ["ease", "lightgcn"]
    assert "worst config: dim=128, layers=4" in lines[1]
    assert "lr=" not in lines[1]  # the learning rate does not change memory
    assert planned.worst["lightgcn"].host_bytes > estimate("lightgcn", {}, graph).host_bytes


def test_a_space_whose_worst_config_fits_no_node_is_refused_in_one_line():
    catalogue = DataShape(n_users=50_000, n_items=30_000, n_train=2_000_000)
    with pytest.raises(RecsysError) as refused:
        plan({"ease": load_space("ease")}, catalogue, node_memory=4 * 2**30)
    message = str(refused.value)
    assert "\n" not in message and "ease" in message and "30,000 x 30,000" in message
    assert "up to about 14,654 items" in message  # sqrt(4 GiB / 20 bytes)
    with pytest.raises(RecsysError, match="lightgcn's worst config"):
        plan({"lightgcn": load_space("lightgcn")}, catalogue, node_memory=2**30)
    plan({"ease": load_space("ease")}, catalogue)  # node memory unknown: nothing refused


def test_a_trial_asks_ray_for_its_configs_memory():
    planned, _ = plan({"bpr_mf": load_space("bpr_mf")}, SHAPE)
    resources = TrialResources(cpus=1.0, gpus=0.0, memory=planned)
    config = {"model": "bpr_mf", "dim": 32, "defaults_trial": True}
    bundle = resources.bundle(config)
    assert bundle == {
        "cpu": 1.0,
        "gpu": 0.0,
        "memory": estimate("bpr_mf", {"dim": 32}, SHAPE).host_bytes,
    }
    assert resources.bundle({"model": "bpr_mf", "dim": 128})["memory"] > bundle["memory"]
    assert TrialResources(1.0, 0.0).bundle(config) == {"cpu": 1.0, "gpu": 0.0}  # not planned


def test_every_trial_asks_for_the_largest_when_a_nodes_trials_of_it_fit_together():
    # Trials asking Ray for different amounts cannot run in each other's actors: Tune hands a
    # finished trial's actor to the next trial asking for as much, and the others wait.
    spaces = {"bpr_mf": load_space("bpr_mf"), "ease": load_space("ease")}
    planned, _ = plan(spaces, SHAPE)
    largest = max(e.host_bytes for e in planned.worst.values())
    assert len({e.host_bytes for e in planned.worst.values()}) == 2  # they differ
    shared = planned.shared(per_node=4, node_memory=4 * largest)
    assert shared.shared_bytes == largest
    for config in ({"model": "bpr_mf", "dim": 32}, {"model": "ease", "l2": 100.0}):
        assert shared.trial_bytes(config) == largest
    assert planned.shared(per_node=4, node_memory=0).shared_bytes == largest  # unknown memory
    # Four of the largest do not fit: each trial asks for its own, and actors are not reused.
    alone = planned.shared(per_node=4, node_memory=4 * largest - 1)
    assert alone.shared_bytes == 0
    assert alone.trial_bytes({"model": "bpr_mf", "dim": 32}) < largest
    assert TrialResources(1.0, 0.0, shared).reusable
    assert not TrialResources(1.0, 0.0, alone).reusable
    assert TrialResources(1.0, 0.0).reusable  # not planned: every trial asks for the same


def test_a_trial_share_per_node_counts_the_largest_nodes_cpus_and_gpus():
    cluster = ClusterShape(max_node_cpus=8, max_node_gpus=2, total_cpus=16, total_gpus=4)
    assert TrialResources(2.0, 0.0).per_node(cluster) == 4
    assert TrialResources(2.0, 0.0).slots(cluster) == 8
    assert TrialResources(1.0, 0.25).per_node(cluster) == 8  # CPUs bound before the GPUs' 8
    assert TrialResources(1.0, 1.0).per_node(cluster) == 2
