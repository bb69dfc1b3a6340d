"""Each trial's peak memory and epoch time, planned from the data's shape and the trial's config
before the search: printed one line per model, handed to Ray as the trial's ``memory`` resource
(so trials that together exceed a node run one after the other), and a space whose worst config
fits no node refused in one line before any trial starts.

The arithmetic, per model family (float32 = 4 bytes; ``U``, ``I`` users and items, ``nnz``
training pairs, ``d`` the embedding width):

- embedding tables: ``rows * d * 4 * 4`` (weights, their dense gradient, Adam's two moments);
- LightGCN: the tables, the normalised adjacency (``2 nnz`` entries of 8-byte index and 4-byte
  value, twice: the matrix and its transpose for the backward) and ``2 (layers + 2)`` node
  matrices of ``(U + I) d`` floats (each layer's output kept for the backward, and its gradient);
- autoencoders: weights ``I x hidden`` in and out (with Adam's state, x4) and about six dense
  ``batch x I`` float matrices (input, dropout, logits, softmax and their gradients);
- EASE: ``20 I^2`` bytes while fitting (the float32 co-occurrence, its float64 copy and Cholesky
  factor), the float32 weights ``4 I^2`` after;
- neighbourhood models: two dense 128 MiB co-occurrence blocks while fitting, then the top-k
  lists (index and value) and their transpose;
- every trial: the process (Python, torch, Ray: :data:`BASE_BYTES`), the split's pairs and CSR
  training matrix, and one evaluation batch (``min(4096, 2^24 / I)`` users x ``I`` scores, with
  the mask and top-k temporaries: about :data:`EVAL_BYTES_PER_SCORE` bytes each).

Epoch time: the epoch's floating-point work (Adam's update of every table row per step, the
propagation or dense products) over a rate per CPU thread or per GPU; a rough figure, printed
beside the measured ``epoch_seconds`` of every trial run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from recsys.errors import RecsysError
from recsys.models import get_spec
from recsys.tuning.space import SearchSpace
from recsys.tuning.trainable import split_config

FLOAT = 4
INDEX = 8
ADAM_COPIES = 4  # a trained tensor: itself, its gradient and Adam's two moments
BASE_BYTES = 450 * 2**20  # a trial process: Python, torch, Ray's worker, the project
BASE_CUDA_BYTES = 1200 * 2**20  # the same with CUDA initialised (its host-side libraries)
CUDA_CONTEXT_BYTES = 600 * 2**20  # GPU memory a CUDA context takes outside torch's allocator
EVAL_SCORES = 1 << 24  # scores per evaluation batch (recsys.evaluate._BATCH_ELEMENTS)
EVAL_BYTES_PER_SCORE = 14  # scores, masked copy, top-k, relevance and mask bytes
BLOCK_BYTES = 2 * (1 << 25) * FLOAT  # neighbourhood models: a co-occurrence block and its top-k
EASE_FIT_BYTES_PER_CELL = 20  # G float32 (4) + G + lambda I float64 (8) + Cholesky factor (8)
CPU_FLOPS_PER_THREAD = 4e9  # the mix of small dense and sparse products a trial does
GPU_FLOPS = 2e12


@dataclass(frozen=True)
class DataShape:
    """What the estimates read of the data: its sizes."""

    n_users: int
    n_items: int
    n_train: int
    n_val: int = 0
    text_dim: int = 0  # width of the item text vectors the trials get (0: none)
    n_entity_links: int = 0

    @classmethod
    def of(cls, data: Any) -> DataShape:
        """The shape of a ``SplitData``."""
        text = data.item_embeddings
        links = data.item_entities
        return cls(
            data.n_users,
            data.n_items,
            len(data.train),
            len(data.val),
            0 if text is None else int(text.shape[1]),
            0 if links is None else len(links),
        )

    @property
    def data_bytes(self) -> int:
        """The trial's copy of the split: (user, item) int64 pairs, the CSR training matrix,
        the item text vectors."""
        pairs = (self.n_train + self.n_val) * 2 * INDEX
        csr = self.n_train * (INDEX + FLOAT) + (self.n_users + 1) * INDEX
        return pairs + csr + self.n_items * self.text_dim * FLOAT

    @property
    def eval_users(self) -> int:
        return max(1, min(4096, EVAL_SCORES // max(self.n_items, 1)))


@dataclass(frozen=True)
class Need:
    """One model's memory and work: ``resident`` bytes (weights, optimizer state, the model's
    copies of the data), ``work`` bytes on top of them at the training step's (or fit's) peak,
    ``flops`` per epoch; ``trains`` is whether the trainer keeps the pairs on the device."""

    resident: float
    work: float
    flops: float
    trains: bool = True


@dataclass(frozen=True)
class Estimate:
    """A trial's planned peak host memory (RSS), GPU memory (torch's allocations; 0 on CPU)
    and seconds per epoch."""

    host_bytes: int
    gpu_bytes: int
    epoch_seconds: float


def tables(rows: int, dim: int) -> float:
    """Bytes of trained embedding tables: ``rows * dim`` floats with gradient and Adam state."""
    return rows * dim * FLOAT * ADAM_COPIES


def _pairs_work(shape: DataShape, negatives: int, candidates: int = 1) -> float:
    """The epoch's shuffled pairs (order, users, items) and its negatives drawn at once."""
    return shape.n_train * INDEX * (3 + negatives * candidates)


def _adam_flops(shape: DataShape, batch_size: int, params: float) -> float:
    """Adam touches every parameter at every step: ~12 flops each."""
    return math.ceil(shape.n_train / batch_size) * params * 12


def _pairwise(cfg: Any, shape: DataShape) -> Need:
    """BPR-MF and the pair-trained models' tables."""
    rows = shape.n_users + shape.n_items
    per_pair = getattr(cfg, "n_candidates", 1) if getattr(cfg, "sampler", "") == "dns" else 1
    flops = _adam_flops(shape, cfg.batch_size, rows * cfg.dim) + shape.n_train * 2 * cfg.dim * 6
    return Need(tables(rows, cfg.dim), _pairs_work(shape, 1, per_pair), flops)


def _lightgcn(cfg: Any, shape: DataShape) -> Need:
    nodes = shape.n_users + shape.n_items + (shape.n_entity_links and shape.n_items)
    edges = 2 * (shape.n_train + shape.n_entity_links)
    graph = 2 * edges * (INDEX + FLOAT) + edges * INDEX
    activations = 2 * (cfg.layers + 2) * nodes * cfg.dim * FLOAT
    steps = math.ceil(shape.n_train / cfg.batch_size)
    per_pass = cfg.layers * edges * cfg.dim * 2 * 2  # forward and backward sparse products
    flops = steps * (per_pass + nodes * cfg.dim * 12)
    per_pair = cfg.n_candidates if cfg.sampler == "dns" else 1
    work = activations + _pairs_work(shape, 1, per_pair)
    return Need(tables(nodes, cfg.dim) + graph, work, flops)


def _ncf(cfg: Any, shape: DataShape) -> Need:
    rows = shape.n_users + shape.n_items
    mlp = (2 * cfg.dim * cfg.hidden + cfg.n_layers * cfg.hidden**2) * FLOAT * ADAM_COPIES
    examples = shape.n_train * (1 + cfg.num_negatives)
    flops = _adam_flops(shape, cfg.batch_size, rows * cfg.dim) + examples * cfg.hidden**2 * 6
    work = _pairs_work(shape, cfg.num_negatives) + cfg.batch_size * cfg.hidden * FLOAT * 8
    return Need(tables(rows, cfg.dim) + mlp, work, flops)


def _two_tower(cfg: Any, shape: DataShape) -> Need:
    rows = shape.n_items * cfg.item_id + shape.n_users * cfg.user_id
    width = cfg.dim + (shape.text_dim if cfg.item_text else 0)
    towers = 2 * (width * cfg.hidden + cfg.n_layers * cfg.hidden**2) * FLOAT * ADAM_COPIES
    history = shape.n_train * (INDEX + FLOAT)
    work = _pairs_work(shape, 0) + 3 * cfg.batch_size**2 * FLOAT
    flops = _adam_flops(shape, cfg.batch_size, rows * cfg.dim) + shape.n_train * cfg.dim**2 * 12
    return Need(tables(rows, cfg.dim) + towers + history, work, flops)


def _autoencoder(cfg: Any, shape: DataShape) -> Need:
    """Mult-VAE, Mult-DAE, the hybrid VAE: dense ``I x hidden`` layers in and out."""
    items = shape.n_items
    weights = (2 * items * cfg.hidden + 3 * cfg.hidden * cfg.latent) * FLOAT * ADAM_COPIES
    text = items * shape.text_dim * FLOAT if hasattr(cfg, "logit_scale") else 0
    work = 6 * cfg.batch_size * items * FLOAT
    flops = shape.n_users * items * cfg.hidden * 2 * 2 * 3
    return Need(weights + text, work, flops)


def _ials(cfg: Any, shape: DataShape) -> Need:
    rows = shape.n_users + shape.n_items
    factors = rows * cfg.factors * FLOAT * 2  # implicit's arrays and the model's torch copies
    csr = 2 * shape.n_train * (4 + FLOAT)  # user-item and item-user confidence matrices
    flops = shape.n_train * cfg.factors**2 * 2 + rows * cfg.factors**3
    return Need(factors + csr, rows * cfg.factors * FLOAT, flops, trains=False)


def ease_bytes(n_items: int) -> tuple[float, float]:
    """EASE's (resident, work) bytes: float32 weights ``4 I^2``, and ``20 I^2`` in all while
    fitting (see :func:`recsys.models.ease.ease_weights`)."""
    weights = n_items**2 * FLOAT
    return weights, n_items**2 * EASE_FIT_BYTES_PER_CELL - weights


def _ease(cfg: Any, shape: DataShape) -> Need:
    resident, work = ease_bytes(shape.n_items)
    gram = shape.n_train**2 / max(shape.n_users, 1) * 2
    return Need(resident, work, gram + shape.n_items**3, trains=False)


def _neighbours(k: int, rows: int, shape: DataShape, by_item: bool) -> Need:
    """ItemKNN, RP3beta (``rows`` items) or UserKNN (users): blocks, then top-k lists."""
    lists = 2 * rows * k * (INDEX + FLOAT)
    other = shape.n_users if by_item else shape.n_items
    flops = shape.n_train**2 / max(other, 1) * 2
    return Need(lists + shape.n_train * (INDEX + FLOAT), BLOCK_BYTES, flops, trains=False)


def _gfcf(cfg: Any, shape: DataShape) -> Need:
    k = min(cfg.num_factors, shape.n_users, shape.n_items)
    scipy_copies = 3 * shape.n_train * (INDEX + 8)  # R~, its transpose, the Lanczos products
    basis = (shape.n_users + shape.n_items) * 2 * k * 8
    dense = shape.n_users * shape.n_items * 8 * 3 if k >= min(shape.n_users, shape.n_items) else 0
    resident = shape.n_items * k * FLOAT + 2 * shape.n_train * (INDEX + FLOAT)
    flops = shape.n_train * k * 2 * 30
    return Need(resident, scipy_copies + basis + dense, flops, trains=False)


def _semantic(cfg: Any, shape: DataShape) -> Need:
    return Need(2 * shape.n_items * shape.text_dim * FLOAT, 0, 0, trains=False)


def _popularity(cfg: Any, shape: DataShape) -> Need:
    return Need(shape.n_items * INDEX, 0, shape.n_train, trains=False)


def _families() -> dict[type, Callable[[Any, DataShape], Need]]:
    from recsys.models import (
        ease,
        gfcf,
        ials,
        itemknn,
        lightgcn,
        ncf_mlp,
        popularity,
        rp3beta,
        semantic,
        two_tower,
        userknn,
        vae,
    )

    return {
        lightgcn.LightGCNConfig: _lightgcn,
        lightgcn.PairwiseConfig: _pairwise,
        ncf_mlp.NCFMLPConfig: _ncf,
        two_tower.TwoTowerConfig: _two_tower,
        vae.AutoencoderConfig: _autoencoder,
        ials.IALSConfig: _ials,
        ease.EASEConfig: _ease,
        gfcf.GFCFConfig: _gfcf,
        itemknn.ItemKNNConfig: lambda c, s: _neighbours(c.k, s.n_items, s, True),
        rp3beta.RP3betaConfig: lambda c, s: _neighbours(c.topk, s.n_items, s, True),
        userknn.UserKNNConfig: lambda c, s: _neighbours(c.k, s.n_users, s, False),
        semantic.SemanticConfig: _semantic,
        popularity.PopularityConfig: _popularity,
    }


def need(model: str, config: Mapping[str, Any], shape: DataShape) -> Need | None:
    """The model family's :class:`Need` for ``config`` (None: a model with no estimate)."""
    cfg = get_spec(model).make_config(dict(config))
    families = _families()
    for klass in type(cfg).__mro__:
        if klass in families:
            return families[klass](cfg, shape)
    return None


def estimate(
    model: str, config: Mapping[str, Any], shape: DataShape, device: str = "cpu", threads: int = 1
) -> Estimate:
    """A trial's planned peak memory and epoch time (a model with no estimate: the process,
    the data and an evaluation batch)."""
    found = need(model, config, shape) or Need(0, 0, 0, trains=False)
    evaluation = shape.eval_users * shape.n_items * EVAL_BYTES_PER_SCORE
    on_device = found.resident + max(found.work, evaluation)
    on_device += shape.n_train * (2 * INDEX + INDEX + FLOAT) if found.trains else 0
    if device == "cuda":
        host = BASE_CUDA_BYTES + shape.data_bytes
        return Estimate(int(host), int(on_device), found.flops / GPU_FLOPS)
    host = BASE_BYTES + shape.data_bytes + on_device
    return Estimate(int(host), 0, found.flops / (CPU_FLOPS_PER_THREAD * max(threads, 1)))


def worst_configs(space: SearchSpace) -> list[dict[str, Any]]:
    """The configs of ``space`` that need the most: every numeric parameter at its highest
    value (memory grows with each: widths, layers, batch sizes, neighbours), then each value of
    each non-numeric choice in turn (a sampler, a pooling)."""
    high = {**space.fixed_values(), **space.first_trial}
    choices: dict[str, tuple] = {}
    for name, p in space.params.items():
        if p.fixed:
            continue
        values = tuple(p.args[0]) if p.dist in ("choice", "grid") else (p.args[1],)
        if all(isinstance(v, int | float) for v in values):
            high[name] = max(values)
        else:
            choices[name] = values
    return [high] + [{**high, name: v} for name, values in choices.items() for v in values]


def _worst(model: str, space: SearchSpace, shape: DataShape, device: str, threads: int):
    """The (estimate, config) of the space's config that needs the most host memory."""
    found = []
    for config in worst_configs(space):
        try:
            found.append((estimate(model, config, shape, device, threads), config))
        except RecsysError:  # a corner the config refuses (e.g. a sampler with its bounds)
            continue
    if not found:
        found = [(estimate(model, space.first_trial, shape, device, threads), space.first_trial)]
    return max(found, key=lambda pair: (pair[0].host_bytes, pair[0].gpu_bytes))


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


@dataclass(frozen=True)
class MemoryPlan:
    """The sweep's memory plan: the data's shape, where trials run, and per model the estimate
    of its space's worst config (printed, and checked against the nodes).

    ``shared_bytes`` (see :meth:`shared`), when set, is what every trial asks Ray for: the
    largest worst config of the sweep. Trials that ask for the same resources can run in each
    other's actors (Tune's ``reuse_actors``) in the order they were created; trials that ask
    for different amounts cannot, and Tune then hands a finished trial's actor to the next
    trial asking for the same amount, so a model whose trials ask for another amount waits
    until those run out.
    """

    shape: DataShape
    device: str
    threads: int
    worst: Mapping[str, Estimate]
    shared_bytes: int = 0

    def estimate_of(self, model: str, config: Mapping[str, Any]) -> Estimate:
        """One trial's estimate (its model and hyperparameters)."""
        return estimate(model, config, self.shape, self.device, self.threads)

    def trial_bytes(self, config: Mapping[str, Any]) -> int:
        """The host memory to ask Ray for, for a trial's config (``model`` key included)."""
        return self.shared_bytes or self.estimate_of(*split_config(config)).host_bytes

    def shared(self, per_node: int, node_memory: float) -> MemoryPlan:
        """The plan with every trial asking for the sweep's largest worst config, if
        ``per_node`` trials of that size fit a node's ``node_memory`` together (or it is
        unknown: 0); else the plan as it is, each trial asking for its own config's."""
        largest = max((e.host_bytes for e in self.worst.values()), default=0)
        if not largest or (node_memory and largest * max(per_node, 1) > node_memory):
            return self
        return replace(self, shared_bytes=largest)


def plan(
    spaces: Mapping[str, SearchSpace],
    shape: DataShape,
    device: str = "cpu",
    threads: int = 1,
    node_memory: float = 0.0,
    gpu_memory: float = 0.0,
) -> tuple[MemoryPlan, list[str]]:
    """Every model's worst config estimated, and refused when it fits no node.

    Args:
        spaces: per model, its validated search space.
        shape: the data's shape.
        device, threads: where a trial runs, and its torch threads.
        node_memory: the largest node's memory for Ray's tasks, in bytes (0: unknown, no check).
        gpu_memory: the GPU memory a trial's share holds, in bytes (0: unknown, no check).

    Returns:
        The plan, and one line per model to print.

    Raises:
        RecsysError: a model whose worst config needs more than ``node_memory`` (or
            ``gpu_memory``), in one line with what to change.
    """
    worst, lines = {}, []
    for model, space in spaces.items():
        found, config = _worst(model, space, shape, device, threads)
        worst[model] = found
        _refuse(model, found, config, shape, node_memory, gpu_memory)
        sizing = _sizing(model, space, config, found, shape, device, threads)
        lines.append(_line(model, found, sizing, node_memory))
    return MemoryPlan(shape, device, threads, worst), lines


def _sizing(
    model: str,
    space: SearchSpace,
    config: dict,
    found: Estimate,
    shape: DataShape,
    device: str,
    threads: int,
) -> dict[str, Any]:
    """The searched parameters of the worst config that its memory depends on (those whose
    default would change the estimate)."""
    sizing = {}
    for name in space.searched():
        at_default = {**config, name: space.defaults.get(name, config[name])}
        try:
            other = estimate(model, at_default, shape, device, threads)
        except RecsysError:
            continue
        if (other.host_bytes, other.gpu_bytes) != (found.host_bytes, found.gpu_bytes):
            sizing[name] = config[name]
    return sizing


def _line(model: str, found: Estimate, sizing: dict[str, Any], node_memory: float) -> str:
    searched = ", ".join(f"{k}={v}" for k, v in sizing.items())
    worst = f" (worst config: {searched})" if searched else ""
    gpu = f" + {gib(found.gpu_bytes)} GPU" if found.gpu_bytes else ""
    fits = (
        f"; {int(node_memory // found.host_bytes)} at once on the largest node ({gib(node_memory)})"
        if node_memory
        else ""
    )
    return (
        f"memory: {model} up to {gib(found.host_bytes)}{gpu} a trial{worst}, "
        f"~{found.epoch_seconds:.2g} s/epoch{fits}"
    )


def _refuse(
    model: str,
    found: Estimate,
    config: dict,
    shape: DataShape,
    node_memory: float,
    gpu_memory: float,
) -> None:
    if node_memory and found.host_bytes > node_memory:
        what = f"{gib(found.host_bytes)} of memory"
        room = f"the largest node of the Ray cluster has {gib(node_memory)} for trials"
    elif gpu_memory and found.gpu_bytes + CUDA_CONTEXT_BYTES > gpu_memory:
        what = f"{gib(found.gpu_bytes + CUDA_CONTEXT_BYTES)} of GPU memory"
        room = f"a trial's GPU share holds {gib(gpu_memory)} (raise --gpus-per-trial)"
    else:
        return
    if issubclass(get_spec(model).config_cls, _ease_config()):
        limit = int(math.sqrt(max(node_memory or gpu_memory, 0) / EASE_FIT_BYTES_PER_CELL))
        fix = (
            f"EASE's dense {shape.n_items:,} x {shape.n_items:,} inverse fits up to about "
            f"{limit:,} items there; drop ease or filter the catalogue (--min-item-interactions)"
        )
    else:
        fix = "shrink its search space's widths and batch sizes, or run on larger nodes"
    raise RecsysError(
        f"{model}'s worst config ({', '.join(f'{k}={v}' for k, v in config.items())}) needs "
        f"about {what} a trial and {room}: no trial of it could run; {fix}"
    )


def _ease_config() -> type:
    from recsys.models.ease import EASEConfig

    return EASEConfig
