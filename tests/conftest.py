"""Shared test fixtures: small synthetic data with a known right answer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.data.dataset import Pairs, SplitData

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def block_split(
    n_groups: int = 2,
    users_per_group: int = 20,
    items_per_group: int = 10,
    seed: int = 0,
) -> SplitData:
    """Checkerboard data: users of group g interact only with items of group g.

    Each user has every item of its group except two: one held out for validation and one for
    test. A model that learns the block structure ranks the held-out items of the user's group
    above every item of the other groups, so Recall@``items_per_group`` is 1.
    """
    rng = np.random.default_rng(seed)
    n_users = n_groups * users_per_group
    n_items = n_groups * items_per_group
    train_u, train_i, val_u, val_i, test_u, test_i = [], [], [], [], [], []
    for u in range(n_users):
        g = u // users_per_group
        items = rng.permutation(np.arange(g * items_per_group, (g + 1) * items_per_group))
        val_u.append(u)
        val_i.append(items[0])
        test_u.append(u)
        test_i.append(items[1])
        train_u.extend([u] * (items_per_group - 2))
        train_i.extend(items[2:])
    return SplitData(
        name="blocks",
        fingerprint="blocks",
        user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        item_text=[f"group {i // items_per_group} item {i}" for i in range(n_items)],
        train=Pairs(np.array(train_u), np.array(train_i)),
        val=Pairs(np.array(val_u), np.array(val_i)),
        test=Pairs(np.array(test_u), np.array(test_i)),
        summary={"users": n_users, "items": n_items},
    )


@pytest.fixture
def blocks() -> SplitData:
    """Two groups of 20 users and 10 items (see :func:`block_split`)."""
    return block_split()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests use tiny tensors on a shared machine: with two intra-op threads a descheduled
    sibling thread stalls every parallel region (the LightGCN tests ran 25x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ray_session():
    """The one local Ray instance of the test session, for every in-process sweep; its workers
    know the test-only models (``sweep_fakes``)."""
    import ray
    import sweep_fakes

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    sweep_fakes.setup_worker()
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={
                "env_vars": {"PYTHONPATH": f"{REPO}{os.pathsep}{TESTS}"},
                "worker_process_setup_hook": "sweep_fakes.setup_worker",
            },
        )
    yield ray
    if started:
        ray.shutdown()
