"""The Ray cluster a sweep runs on, and how much of it each trial gets (checked before any trial
starts)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recsys.errors import RecsysError
from recsys.io import redact
from recsys.tuning import console
from recsys.tuning.memory import DataShape, MemoryPlan, gib, plan

# Recommender trials are small: four share one GPU well without running out of its memory.
DEFAULT_GPU_SHARE = 0.25


def connect(address: str | None) -> None:
    """Joins the Ray cluster at ``address`` (else ``$RAY_ADDRESS``), or starts a local one."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The compact CLIReporter table instead of Ray's newer verbose output; no warning per
    # checkpoint about experiment snapshots (each report checkpoints, by design).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # A failed trial's traceback goes to its error file; the console gets one line per failure
    # (recsys.tuning.progress.TrialFaults).
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address)
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        secure_token()
        ray.init(include_dashboard=False)


def secure_token(path: Path | None = None) -> Path:
    """Ray's token file (``~/.ray/auth_token``), readable by its owner alone: made 0600 if it
    exists, else created 0600 with a token of Ray's own making before a local Ray starts (Ray
    would write it 0644, so that any user of the machine could join the cluster)."""
    path = path or Path.home() / ".ray" / "auth_token"
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path
    from ray._private.authentication.authentication_token_generator import (
        generate_new_authentication_token,
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another sweep made it meanwhile
        return secure_token(path)
    with os.fdopen(fd, "w") as f:
        f.write(generate_new_authentication_token())
    return path


def check_address(address: str, timeout: float = 10.0) -> None:
    """Raises unless something answers at a Ray address (``HOST:PORT`` or ``ray://HOST:PORT``):
    ``ray.init`` would otherwise wait for minutes on a wrong one."""
    import socket

    if address == "auto":
        return
    host, sep, port = address.split("://")[-1].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RecsysError(
            f"--address {address}: expected HOST:PORT of the Ray head (e.g. 10.0.0.5:6379) or "
            f"ray://HOST:PORT"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise RecsysError(
            f"--address {address}: no Ray head answers at {host}:{port} "
            f"({error.strerror or error}); start one with `ray start --head` or fix the address"
        ) from None


@dataclass(frozen=True)
class ClusterShape:
    """The largest CPU and GPU counts of any one alive node, the totals, on how many
    machines (distinct node addresses) the nodes run, and the largest node's memory for Ray's
    tasks (its ``memory`` resource, bytes; 0 when unknown)."""

    max_node_cpus: float
    max_node_gpus: float
    total_cpus: float
    total_gpus: float
    hosts: int = 1
    max_node_memory: float = 0.0

    @classmethod
    def from_ray(cls) -> ClusterShape:
        import ray

        alive = [n for n in ray.nodes() if n.get("Alive", False)]
        nodes = [n.get("Resources", {}) for n in alive]
        cpus = [float(n.get("CPU", 0.0)) for n in nodes] or [0.0]
        gpus = [float(n.get("GPU", 0.0)) for n in nodes] or [0.0]
        hosts = len({n.get("NodeManagerAddress") for n in alive}) or 1
        memory = max([float(n.get("memory", 0.0)) for n in nodes] or [0.0])
        return cls(max(cpus), max(gpus), sum(cpus), sum(gpus), hosts, memory)


def check_shared(cluster: ClusterShape, storage: str, tracking_uri: str) -> None:
    """On a cluster of several machines, Ray storage and the MLflow store must be reachable
    from all of them (trials restart on other nodes; a job's driver runs in a temporary folder).

    Raises:
        RecsysError: a node-local storage path or a file/sqlite store, with the fix.
    """
    if cluster.hosts < 2:
        return
    if "://" not in storage:
        raise RecsysError(
            f"--storage-path {storage} is a folder of this machine, and the Ray cluster spans "
            f"{cluster.hosts} machines; pass shared storage every node reaches: s3://..., "
            f"gs://..., or file:///mnt/shared/... for a folder every node mounts"
        )
    if tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri:
        raise RecsysError(
            f"--tracking-uri {redact(tracking_uri)} is a file of this machine, and the Ray "
            f"cluster spans {cluster.hosts} machines; start an MLflow server "
            f"(mlflow server --host 0.0.0.0) and pass --tracking-uri http://HOST:5000"
        )


@dataclass(frozen=True)
class TrialResources:
    """One trial's share: CPUs, a (possibly fractional) number of GPUs and, once planned,
    the memory its config needs (:mod:`recsys.tuning.memory`)."""

    cpus: float
    gpus: float
    memory: MemoryPlan | None = None

    @property
    def device(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    def as_dict(self) -> dict[str, float]:
        return {"cpu": self.cpus, "gpu": self.gpus}

    def slots(self, cluster: ClusterShape) -> int:
        """How many trials of this share the cluster runs at once, by CPUs and GPUs (at
        least 1; memory may allow fewer)."""
        return self._fits(cluster.total_cpus, cluster.total_gpus)

    def per_node(self, cluster: ClusterShape) -> int:
        """How many trials of this share the largest node runs at once, by CPUs and GPUs."""
        return self._fits(cluster.max_node_cpus, cluster.max_node_gpus)

    def _fits(self, cpus: float, gpus: float) -> int:
        fits = [cpus / self.cpus] if self.cpus > 0 else []
        if self.gpus > 0:
            fits.append(gpus / self.gpus)
        return max(1, int(min(fits, default=1) + 1e-9))

    def bundle(self, config: Mapping[str, Any]) -> dict[str, float]:
        """What a trial of ``config`` asks Ray for: its CPUs and GPUs, and its planned memory
        (bytes), so that Ray starts no more trials on a node than its memory holds."""
        bundle = self.as_dict()
        if self.memory is not None:
            bundle["memory"] = float(self.memory.trial_bytes(config))
        return bundle

    def request(self, config: Mapping[str, Any]) -> Any:
        """:meth:`bundle` as a placement group factory, for ``tune.with_resources``."""
        from ray.tune.execution.placement_groups import resource_dict_to_pg_factory

        return resource_dict_to_pg_factory(self.bundle(config))

    def with_memory(self, cluster: ClusterShape, data: Any, spaces: Mapping) -> TrialResources:
        """The share with every model's memory planned and printed, one line each.

        Raises:
            RecsysError: a model whose worst config fits no node (before any trial starts).
        """
        memory, lines = plan(
            spaces, DataShape.of(data), self.device, self.threads,
            cluster.max_node_memory, _gpu_share_bytes(self.gpus),
        )  # fmt: skip
        per_node = self.per_node(cluster)
        memory = memory.shared(per_node, cluster.max_node_memory)
        if memory.shared_bytes:
            lines.append(
                f"memory: every trial asks Ray for {gib(memory.shared_bytes)}, the largest of "
                "these, so a finished trial's actor runs the next trial of any model"
            )
        else:
            lines.append(
                f"memory: each trial asks Ray for its own config's memory ({per_node} trials of "
                "the largest would not fit a node together), so each starts an actor of its own: "
                "a reused one would run only trials that ask for as much"
            )
        console.say(*lines)
        return replace(self, memory=memory)

    @property
    def reusable(self) -> bool:
        """Whether every trial asks for the same resources, so that Tune may run a trial in a
        finished one's actor without starving the trials that ask for other amounts."""
        return self.memory is None or bool(self.memory.shared_bytes)


def _gpu_share_bytes(gpus: float) -> float:
    """The GPU memory a trial's share holds, from this machine's first GPU (0: unknown)."""
    import torch

    if gpus <= 0 or not torch.cuda.is_available():
        return 0.0
    return torch.cuda.get_device_properties(0).total_memory * min(gpus, 1.0)


def resolve_resources(
    cluster: ClusterShape, cpus_per_trial: float | None = None, gpus_per_trial: float | None = None
) -> tuple[TrialResources, str | None]:
    """Picks each trial's share and checks that one trial fits on one node.

    Args:
        cluster: the cluster's shape.
        cpus_per_trial: CPUs per trial (default 1).
        gpus_per_trial: GPUs per trial; fractions pack trials (0.25: four per GPU). Default
            :data:`DEFAULT_GPU_SHARE` when the cluster has GPUs, else 0.

    Returns:
        The share, and a note to print once (trials on CPU), or None.

    Raises:
        RecsysError: a negative share, a GPU share above 1 that is not whole, or a share larger
            than the largest node.
    """
    cpus = 1.0 if cpus_per_trial is None else float(cpus_per_trial)
    if cpus <= 0 or not math.isfinite(cpus):
        raise RecsysError(f"--cpus-per-trial must be positive, got {cpus_per_trial}")
    if cpus > cluster.max_node_cpus:
        raise RecsysError(
            f"--cpus-per-trial {cpus:g} is more than any node of the Ray cluster has "
            f"({cluster.max_node_cpus:g} CPUs); lower it"
        )
    if gpus_per_trial is None:
        gpus = DEFAULT_GPU_SHARE if cluster.max_node_gpus > 0 else 0.0
    else:
        gpus = float(gpus_per_trial)
        if gpus < 0 or not math.isfinite(gpus):
            raise RecsysError(f"--gpus-per-trial must be 0 or more, got {gpus_per_trial}")
        if gpus > 1 and not gpus.is_integer():
            raise RecsysError(
                f"--gpus-per-trial {gpus:g}: above 1 it must be a whole number; use a fraction "
                f"below 1 to pack trials on one GPU, or 1, 2, ..."
            )
        if gpus > cluster.max_node_gpus:
            have = f"{cluster.max_node_gpus:g} GPUs" if cluster.max_node_gpus else "no GPU"
            raise RecsysError(
                f"--gpus-per-trial {gpus:g} is more than any node of the Ray cluster has "
                f"({have}); lower it, or pass --gpus-per-trial 0 to train on CPU"
            )
    note = None
    if gpus == 0:
        note = (
            "no GPU in the Ray cluster: trials run on CPU"
            if cluster.total_gpus == 0
            else "--gpus-per-trial 0: trials run on CPU"
        )
    return TrialResources(cpus=cpus, gpus=gpus), note
