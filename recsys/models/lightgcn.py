"""LightGCN: linear graph propagation over the user-item graph, trained with BPR.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation",
SIGIR 2020. The hard-negative and semantic-init variants are the same class with another
negative sampler (``recsys.models.samplers``, which the training loop draws from) or item
initialiser (``recsys.models.text_init``); the knowledge-graph variant (``lightgcn_kg``) is the
same class over another graph (``graph="user_item_entity"``: the items' entities become nodes).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.data.dataset import ItemEntities, Pairs, SplitData
from recsys.errors import RecsysError, require
from recsys.models.base import PairBatch, TrainableRecommender, require_item_entities
from recsys.models.samplers import check_sampler_fields
from recsys.models.text_init import TEXT_INITS, compress_item_embeddings
from recsys.sparse import sparse_csr

ITEM_INITS = ("random", "text")
# The propagation graph: users and items, or users, items and the items' entities.
GRAPHS = ("user_item", "user_item_entity")


@dataclass(frozen=True)
class PairwiseConfig:
    """Hyperparameters of every BPR-trained embedding model (LightGCN, BPR-MF).

    Names are the ones in search spaces and MLflow.

    Attributes:
        dim: embedding size.
        lr: Adam learning rate.
        l2: weight of the L2 penalty on the batch's layer-0 embeddings.
        batch_size: (user, positive, negative) triples per step.
        sampler: negative sampler, one of ``recsys.models.samplers.SAMPLERS``.
        p_pop, pool_size: popularity-mixture sampler: share of negatives from the ``pool_size``
            most popular items.
        n_candidates: DNS sampler: candidates per pair, the highest-scored is trained on.
        init_std: standard deviation of the initial embeddings.
    """

    dim: int = 64
    lr: float = 1e-3
    l2: float = 1e-4
    batch_size: int = 2048
    sampler: str = "uniform"
    p_pop: float = 0.1
    pool_size: int = 100
    n_candidates: int = 8
    init_std: float = 0.1

    def __post_init__(self) -> None:
        require(self.dim >= 1, f"dim must be >= 1, got {self.dim}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.l2 >= 0, f"l2 must be >= 0, got {self.l2}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")
        check_sampler_fields(self)


@dataclass(frozen=True)
class LightGCNConfig(PairwiseConfig):
    """LightGCN hyperparameters: those of :class:`PairwiseConfig`, and

    Attributes:
        layers: propagation layers K (0 is BPR-MF).
        item_init: ``"random"`` (normal, std ``init_std``) or ``"text"`` (item-text embeddings).
        text_init: how text embeddings are compressed to ``dim``: ``"autoencoder"`` or ``"pca"``.
        freeze_item_epochs: item embeddings stay fixed for this many first epochs.
        graph: ``"user_item"`` (the training interactions) or ``"user_item_entity"`` (those and
            the items' links to their entities, ``data.item_entities``).
        entity_weight: ``user_item_entity``: weight of an item-entity edge in the adjacency
            before normalisation (a user-item edge weighs 1).
        min_entity_items: ``user_item_entity``: only entities linked to at least this many
            items become nodes (an entity of one item joins no two items).
        edge_dropout: share of the training graph's entries dropped at each training step (see
            :func:`drop_edges`); 0 trains on the full graph. Scoring always uses the full graph.
    """

    layers: int = 3
    item_init: str = "random"
    text_init: str = "autoencoder"
    freeze_item_epochs: int = 0
    graph: str = "user_item"
    entity_weight: float = 1.0
    min_entity_items: int = 2
    edge_dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.layers >= 0, f"layers must be >= 0, got {self.layers}")
        require(
            self.item_init in ITEM_INITS,
            f"item_init must be one of {', '.join(ITEM_INITS)}, got {self.item_init!r}",
        )
        require(
            self.text_init in TEXT_INITS,
            f"text_init must be one of {', '.join(TEXT_INITS)}, got {self.text_init!r}",
        )
        require(
            self.freeze_item_epochs >= 0,
            f"freeze_item_epochs must be >= 0, got {self.freeze_item_epochs}",
        )
        require(
            self.graph in GRAPHS, f"graph must be one of {', '.join(GRAPHS)}, got {self.graph!r}"
        )
        require(self.entity_weight > 0, f"entity_weight must be > 0, got {self.entity_weight}")
        require(
            self.min_entity_items >= 1,
            f"min_entity_items must be >= 1, got {self.min_entity_items}",
        )
        require(
            self.graph == "user_item" or self.layers >= 1,
            f"graph {self.graph!r} needs layers >= 1 (with 0 no entity reaches an item), got "
            f"{self.layers}",
        )
        require(
            0.0 <= self.edge_dropout < 1.0,
            f"edge_dropout must lie in [0, 1) (1 would drop every edge), got {self.edge_dropout}",
        )


@dataclass(frozen=True)
class LightGCNHardNegConfig(LightGCNConfig):
    """LightGCN with dynamic hard negatives (DNS) by default."""

    sampler: str = "dns"


@dataclass(frozen=True)
class LightGCNTextConfig(LightGCNConfig):
    """LightGCN whose item embeddings start from their Sentence-BERT text embeddings."""

    item_init: str = "text"


@dataclass(frozen=True)
class LightGCNKGConfig(LightGCNConfig):
    """LightGCN over the user-item-entity graph: the items' entities (a knowledge graph's
    neighbours, genres, authors...) are nodes with embeddings of their own."""

    graph: str = "user_item_entity"


def normalized_adjacency(
    train: Pairs,
    n_users: int,
    n_items: int,
    item_entities: ItemEntities | None = None,
    entity_weight: float = 1.0,
) -> torch.Tensor:
    """Symmetric-normalised adjacency ``D^-1/2 A D^-1/2`` of the training graph.

    Users are nodes ``0..n_users-1``, items ``n_users..n_users+n_items-1`` and, with
    ``item_entities``, entities ``n_users+n_items..N-1``. ``A`` holds 1 for each training pair
    (duplicates count once) and ``entity_weight`` for each item-entity link, both ways; ``D``
    is its row sums. Only ``train`` is read: validation and test pairs never enter the graph.

    Returns:
        (N, N) float32 sparse CSR tensor, symmetric; N = n_users + n_items (+ n_entities).
    """
    keys = np.unique(train.keys(n_items))
    heads = keys // n_items
    tails = keys % n_items + n_users
    weights = np.ones(keys.shape[0])
    n = n_users + n_items
    if item_entities is not None:
        heads = np.concatenate([heads, item_entities.items + n_users])
        tails = np.concatenate([tails, item_entities.entities + n])
        weights = np.concatenate([weights, np.full(len(item_entities), float(entity_weight))])
        n += item_entities.n_entities
    rows = np.concatenate([heads, tails])
    cols = np.concatenate([tails, heads])
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    edge = np.concatenate([weights, weights])[order]
    # With unit weights these are LightGCN's integer degrees and 1/sqrt(d_i d_j) exactly.
    degree = np.bincount(rows, weights=edge, minlength=n)
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros(n), where=degree > 0)
    values = (inv_sqrt[rows] * edge * inv_sqrt[cols]).astype(np.float32)
    crow = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=crow[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        # int32 indices: the CPU (MKL) sparse product converts int64 ones on every call.
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow.astype(np.int32)),
            torch.from_numpy(cols.astype(np.int32)),
            torch.from_numpy(values),
            size=(n, n),
            check_invariants=False,
        )


def transpose_index(adjacency: torch.Tensor) -> torch.Tensor:
    """For a CSR matrix whose pattern is symmetric (``normalized_adjacency``'s): the slot in
    ``values()`` of each stored entry's mirror, so that ``values()[index]`` are the values of
    the transpose in the same CSR pattern.

    Returns:
        (nnz,) int64 on ``adjacency``'s device.
    """
    crow = adjacency.crow_indices().cpu().numpy().astype(np.int64)
    cols = adjacency.col_indices().cpu().numpy().astype(np.int64)
    n = adjacency.shape[1]
    rows = np.repeat(np.arange(adjacency.shape[0]), np.diff(crow))
    # CSR order is ascending (row, col): the mirror (col, row) is found by binary search.
    index = np.searchsorted(rows * n + cols, cols * n + rows)
    return torch.from_numpy(index).to(adjacency.crow_indices().device)


def drop_edges(
    adjacency: torch.Tensor, mirror: torch.Tensor, rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw of edge dropout on the normalised adjacency, and its transpose.

    As in the LightGCN authors' code (``__dropout_x`` in gusye1234/LightGCN-PyTorch): each
    stored entry (each direction of an edge on its own) is kept with probability
    ``1 - rate`` and scaled by ``1 / (1 - rate)``, with no renormalisation, so the expected
    matrix is the full one. Dropped entries become explicit zeros of the same CSR pattern.

    Args:
        adjacency: (N, N) normalised sparse CSR adjacency (symmetric pattern).
        mirror: :func:`transpose_index` of ``adjacency``.
        rate: drop probability in (0, 1).

    Returns:
        The dropped (N, N) CSR matrix and its transpose (the backward pass's matrix).
    """
    values = adjacency.values()
    kept = torch.rand(values.shape, device=values.device) >= rate
    values = values * kept / (1.0 - rate)
    parts = (adjacency.crow_indices(), adjacency.col_indices())
    size = tuple(adjacency.shape)
    return sparse_csr(*parts, values, size), sparse_csr(*parts, values[mirror], size)


def layer_mean(adjacency: torch.Tensor, x: torch.Tensor, layers: int) -> torch.Tensor:
    """``(x + A x + ... + A^K x) / (K + 1)`` without autograd, accumulated in one buffer.

    Args:
        adjacency: (N, N) sparse CSR matrix ``A``.
        x: (N, d) dense.
        layers: K.

    Returns:
        (N, d), a new tensor (``x`` is not modified).
    """
    if not layers:
        return x.clone()
    h = torch.sparse.mm(adjacency, x)
    total = x + h  # no copy of x first: one pass less over (N, d)
    for _ in range(layers - 1):
        h = torch.sparse.mm(adjacency, h)
        total += h
    return total.div_(layers + 1)


class _Propagation(torch.autograd.Function):
    """LightGCN's layer mean as one autograd node.

    The propagation ``P x = (x + A x + ... + A^K x) / (K + 1)`` is linear in ``x``, so its
    backward is the same sum over the transpose, ``P^T g = (g + A^T g + ... + (A^T)^K g) /
    (K + 1)``: K sparse products again, and nothing saved from the forward pass. Autograd over
    K separate products would keep the K layer outputs ((N, d) each) and run 2K + 2 nodes. For
    the symmetric training graph ``A^T`` is ``A`` itself: no CSR transpose on any step.
    """

    @staticmethod
    def forward(
        ctx, adjacency: torch.Tensor, transpose: torch.Tensor, x: torch.Tensor, layers: int
    ) -> torch.Tensor:
        ctx.transpose = transpose
        ctx.layers = layers
        return layer_mean(adjacency, x, layers)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor, None]:
        return None, None, layer_mean(ctx.transpose, grad.contiguous(), ctx.layers), None


def propagate(
    adjacency: torch.Tensor,
    x: torch.Tensor,
    layers: int,
    transpose: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of ``x, A x, ..., A^K x`` (LightGCN's layer combination with alpha_k = 1/(K+1)).

    Differentiable in ``x`` (see :class:`_Propagation`); ``A`` is a constant.

    Args:
        adjacency: (N, N) normalised sparse CSR adjacency.
        x: (N, d) layer-0 embeddings.
        layers: K.
        transpose: ``A^T`` as a CSR matrix; None when ``A`` is symmetric.

    Returns:
        (N, d) final embeddings.
    """
    if not layers:
        return x
    transpose = adjacency if transpose is None else transpose
    return _Propagation.apply(adjacency, transpose, x, layers)


class LightGCN(TrainableRecommender):
    """LightGCN (He et al., SIGIR 2020); with ``layers=0`` it is BPR-MF (Rendle et al., UAI 2009).

    Final embeddings ``E = (E0 + A E0 + ... + A^K E0) / (K + 1)`` over the normalised graph
    ``A``; score ``s(u, i) = e_u . e_i``; loss BPR on (user, positive, negative) triples plus
    L2 on their layer-0 embeddings. With entities (``n_entities > 0``) the graph also holds the
    items' entities, each with a layer-0 embedding of its own that is learnt through the
    propagation only (scores and the BPR loss stay user-item): an item with few or no
    interactions still receives, through its entities, the embeddings of the items and users
    around them (as in KGAT's collaborative knowledge graph, Wang et al., KDD 2019, without
    relation types or attention).

    Training is exact: the propagation is recomputed at every optimisation step, with edge
    dropout over a fresh draw of the graph each step when ``edge_dropout > 0`` (one draw for all
    K layers, as in the authors' code). Scoring, and the DNS sampler's scores, propagate over the
    full graph once and reuse the result until the parameters change.

    Args:
        n_users: number of users.
        n_items: number of items.
        dim: embedding size.
        layers: propagation layers K.
        adjacency: (N, N) normalised training adjacency, N = n_users + n_items + n_entities
            (see :func:`normalized_adjacency`); may be None when ``layers == 0``.
        l2: weight of ``(|e_u|^2 + |e_i|^2 + |e_j|^2) / 2 / B`` on layer-0 embeddings.
        init_std: std of the normal initialisation.
        item_init: optional (n_items, dim) initial item embeddings (e.g. from item text).
        freeze_item_epochs: item embeddings receive no update in the first epochs.
        n_entities: entity nodes after the items in ``adjacency`` (0: the user-item graph).
        edge_dropout: drop probability of each graph entry in a training step (see
            :func:`drop_edges`); 0 (or ``layers == 0``) trains on the full graph.
        frozen_items: (n_items,) bool: items whose layer-0 embedding is never updated. With a
            text init, the items without training interactions (cold items): they have no edge,
            so their final embedding is their layer-0 one, and left free it would only learn,
            as a sampled negative, to move away from every user; kept, it stays the item's
            text vector, which is what scores a new item.
    """

    batch_kind = "pairs"
    # Fused Adam (the Trainer's default) does not bump version counters: ``loss`` drops the
    # cache of final embeddings before every optimizer step instead.

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        layers: int,
        adjacency: torch.Tensor | None,
        *,
        l2: float = 1e-4,
        init_std: float = 0.1,
        item_init: torch.Tensor | None = None,
        freeze_item_epochs: int = 0,
        n_entities: int = 0,
        edge_dropout: float = 0.0,
        frozen_items: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if layers > 0 and adjacency is None:
            raise ValueError("LightGCN with layers > 0 needs the normalised adjacency")
        nodes = n_users + n_items + n_entities
        if adjacency is not None and tuple(adjacency.shape) != (nodes, nodes):
            raise ValueError(f"adjacency must be ({nodes}, {nodes}), got {tuple(adjacency.shape)}")
        self.n_users = n_users
        self.n_items = n_items
        self.layers = layers
        self.l2 = l2
        self.freeze_item_epochs = freeze_item_epochs
        self.user_weight = nn.Parameter(torch.randn(n_users, dim) * init_std)
        if item_init is None:
            item_init = torch.randn(n_items, dim) * init_std
        elif tuple(item_init.shape) != (n_items, dim):
            raise ValueError(f"item_init must be ({n_items}, {dim}), got {tuple(item_init.shape)}")
        self.item_weight = nn.Parameter(item_init.detach().clone().float())
        self.n_entities = n_entities
        # Drawn after the users' and items' (and only when there are entities), so that a
        # model without entities is LightGCN's to the bit for the same seed.
        self.entity_embedding = (
            nn.Parameter(torch.randn(n_entities, dim) * init_std) if n_entities else None
        )
        # Derived from the training data at build time, so not part of a checkpoint.
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.edge_dropout = edge_dropout if layers else 0.0
        mirror = transpose_index(adjacency) if self.edge_dropout else None
        self.register_buffer("mirror", mirror, persistent=False)
        self._cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        if frozen_items is not None and not frozen_items.any():
            frozen_items = None
        self.register_buffer("frozen_items", frozen_items, persistent=False)

    def on_epoch_start(self, epoch: int) -> None:
        self.item_weight.requires_grad_(epoch >= self.freeze_item_epochs)

    def propagate(self, dropped: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user (n_users, dim) and item (n_items, dim) embeddings, with autograd.

        Args:
            dropped: over a fresh edge-dropout draw of the graph (a training step's), not the
                full graph; the same as the full graph when ``edge_dropout`` is 0.
        """
        x = self._propagate(self._layer0(), dropped)
        return x[: self.n_users], x[self.n_users : self.n_users + self.n_items]

    def _embeddings(self) -> list[nn.Parameter]:
        """Layer-0 embeddings of the graph's nodes, in node order."""
        if self.entity_embedding is None:
            return [self.user_weight, self.item_weight]
        return [self.user_weight, self.item_weight, self.entity_embedding]

    def _layer0(self) -> torch.Tensor:
        parts = self._embeddings()
        if self.frozen_items is not None:
            items = parts[1]
            parts[1] = torch.where(self.frozen_items.unsqueeze(1), items.detach(), items)
        return torch.cat(parts)

    def _propagate(self, x: torch.Tensor, dropped: bool = False) -> torch.Tensor:
        if not self.layers:
            return x
        if dropped and self.edge_dropout:
            adjacency, transpose = drop_edges(self.adjacency, self.mirror, self.edge_dropout)
            return propagate(adjacency, x, self.layers, transpose)
        return propagate(self.adjacency, x, self.layers)

    def loss(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        # An optimizer step follows. Version counters (see final_embeddings) would catch it too,
        # except with fused optimizers, which update in place without bumping them.
        self._cache = None
        x0 = self._layer0()
        # One gather of users, positives and negatives (node ids) for the final and the
        # layer-0 embeddings: fewer kernels and one index_add each in the backward pass.
        nodes = torch.cat([batch.users, batch.pos + self.n_users, batch.neg + self.n_users])
        u, i, j = self._propagate(x0, dropped=self.training).index_select(0, nodes).chunk(3)
        bpr = F.softplus((u * (j - i)).sum(dim=1)).mean()
        # sum_b |x0[node_b]|^2 as (times each node is in the batch) . |x0[node]|^2: dense over
        # the N nodes, no (3B, d) gather nor its scatter in the backward (at 32k pairs per
        # batch 3B is 3x N on the 1M set).
        times = torch.bincount(nodes, minlength=x0.shape[0]).to(x0.dtype)
        reg = (times @ x0.square().sum(dim=1)) / (2 * batch.users.shape[0])
        return {"loss": bpr + self.l2 * reg, "bpr": bpr, "l2": reg}

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings without autograd, recomputed only after the parameters changed."""
        # Version counters move on in-place updates (load_state_dict, a non-fused optimizer
        # step, a manual edit); ``loss`` covers the steps of fused optimizers.
        key = tuple((p.data_ptr(), p._version, p.device) for p in self._embeddings())
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                users, items = self.propagate()
            self._cache = (key, users, items)
        return self._cache[1], self._cache[2]

    def score(self, users: torch.Tensor) -> torch.Tensor:
        user_emb, item_emb = self.final_embeddings()
        return user_emb[users] @ item_emb.T

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of given items: users (B,), items (B, n) -> (B, n), without autograd."""
        user_emb, item_emb = self.final_embeddings()
        return torch.einsum("bd,bnd->bn", user_emb[users], item_emb[items])


def uses_item_text(cfg: LightGCNConfig) -> bool:
    """Whether the items start from their text embeddings (the registry's
    ``needs_item_embeddings``)."""
    return cfg.item_init == "text"


def uses_item_entities(cfg: LightGCNConfig) -> bool:
    """Whether the graph holds the items' entities (the registry's ``needs_item_entities``)."""
    return cfg.graph == "user_item_entity"


def graph_entities(cfg: LightGCNConfig, data: SplitData) -> ItemEntities | None:
    """The entities that become nodes: ``data.item_entities`` linked to at least
    ``cfg.min_entity_items`` items; None for the user-item graph, or when none is left (the
    model is then plain LightGCN, with a warning).

    Raises:
        RecsysError: the graph needs entities and the data has none at all.
    """
    if not uses_item_entities(cfg):
        return None
    shared = require_item_entities(data, f"graph={cfg.graph!r}").shared(cfg.min_entity_items)
    if not len(shared):
        warnings.warn(
            f"dataset {data.name!r}: no entity is linked to {cfg.min_entity_items} or more items, "
            "so the graph has no entity edge and the model is plain LightGCN; lower "
            "min_entity_items or give the items shared entities",
            stacklevel=2,
        )
        return None
    return shared


def build(cfg: LightGCNConfig, data: SplitData, device: torch.device) -> LightGCN:
    """A LightGCN on ``device`` whose graph sees only ``data.train`` (and, for the
    ``user_item_entity`` graph, ``data.item_entities``).

    The registry's builder for ``lightgcn``, ``lightgcn_hardneg``, ``lightgcn_text``,
    ``lightgcn_kg`` and, with zero layers, ``bpr_mf``. The negative sampler named by
    ``cfg.sampler`` is the training loop's (``recsys.train.Trainer``).
    """
    item_init, frozen = None, None
    if uses_item_text(cfg):
        if data.item_embeddings is None:
            raise RecsysError(
                "item_init='text' needs item embeddings and the data has none; attach them "
                "first with recsys.text.with_item_embeddings(data) (the sweep does this once)"
            )
        item_init = compress_item_embeddings(
            data.item_embeddings, cfg.dim, cfg.text_init, cfg.init_std
        )
        frozen = torch.from_numpy(np.bincount(data.train.items, minlength=data.n_items) == 0)
    entities = graph_entities(cfg, data)
    adjacency = None
    if cfg.layers:
        adjacency = normalized_adjacency(
            data.train, data.n_users, data.n_items, entities, cfg.entity_weight
        )
    model = LightGCN(
        data.n_users,
        data.n_items,
        cfg.dim,
        cfg.layers,
        adjacency,
        l2=cfg.l2,
        init_std=cfg.init_std,
        item_init=item_init,
        freeze_item_epochs=cfg.freeze_item_epochs,
        n_entities=entities.n_entities if entities is not None else 0,
        edge_dropout=cfg.edge_dropout,
        frozen_items=frozen,
    )
    return model.to(device)
