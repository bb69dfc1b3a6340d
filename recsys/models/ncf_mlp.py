"""NCF-MLP: user and item embeddings concatenated and passed through a ReLU tower to one logit,
trained pointwise with binary cross-entropy on sampled negatives.

He, Liao, Zhang, Nie, Hu, Chua, "Neural Collaborative Filtering", WWW 2017, Section 3.3 (the
MLP instance of NCF): ``y_ui = sigmoid(h^T a_L(... a_1(W_1 [p_u; q_i] + b_1) ...))`` with ReLU
activations ``a_l`` and a tower whose widths halve layer by layer; the log loss of Eq. 7 over
each observed pair and ``num_negatives`` sampled unobserved ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recsys.data.dataset import SplitData
from recsys.errors import require
from recsys.models.base import PairBatch, TrainableRecommender
from recsys.models.samplers import check_sampler_fields

# Largest (users x items x first-layer width) activation built at once when scoring: 2^24
# float32 values are 64 MiB, the evaluator's own score-batch size.
_SCORE_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class NCFMLPConfig:
    """NCF-MLP hyperparameters; the defaults are the paper's (embeddings N(0, 0.01), Adam at
    lr 1e-3, batch 256, 4 negatives per positive, a three-layer tower ending in 16 units).

    Attributes:
        dim: size of each of the user and item embeddings (the tower's input is ``2 * dim``).
        hidden: width of the first tower layer; each further layer halves it.
        n_layers: hidden layers of the tower (``hidden, hidden/2, ...``).
        dropout: dropout after each hidden layer's ReLU.
        num_negatives: sampled negatives per observed pair (labels 0 in the log loss).
        lr: Adam learning rate.
        weight_decay: Adam's L2 weight decay on every parameter.
        batch_size: observed pairs per step (each with ``num_negatives`` negatives).
        init_std: standard deviation of the initial embeddings.
        sampler: negative sampler, one of ``recsys.models.samplers.SAMPLERS``.
        p_pop, pool_size: popularity-mixture sampler (see ``PopularityMixtureSampler``).
        n_candidates: DNS sampler: candidates per negative, the highest-scored is trained on.
    """

    dim: int = 32
    hidden: int = 64
    n_layers: int = 3
    dropout: float = 0.0
    num_negatives: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    init_std: float = 0.01
    sampler: str = "uniform"
    p_pop: float = 0.1
    pool_size: int = 100
    n_candidates: int = 8

    def __post_init__(self) -> None:
        require(self.dim >= 1, f"dim must be >= 1, got {self.dim}")
        require(self.n_layers >= 1, f"n_layers must be >= 1, got {self.n_layers}")
        require(
            self.hidden >= 2 ** (self.n_layers - 1),
            f"hidden={self.hidden} halves {self.n_layers - 1} times to below 1 unit; raise hidden "
            f"to at least {2 ** (self.n_layers - 1)} or lower n_layers",
        )
        require(0.0 <= self.dropout < 1.0, f"dropout must lie in [0, 1), got {self.dropout}")
        require(self.num_negatives >= 1, f"num_negatives must be >= 1, got {self.num_negatives}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")
        check_sampler_fields(self)

    @property
    def widths(self) -> tuple[int, ...]:
        """Widths of the tower's hidden layers: ``hidden`` halved layer by layer."""
        return tuple(self.hidden // 2**layer for layer in range(self.n_layers))


class NCFMLP(TrainableRecommender):
    """NCF's MLP (He et al., WWW 2017): ``logit(u, i) = h^T MLP([p_u; q_i])``.

    The first layer is split as ``W_1 [p_u; q_i] = W_u p_u + W_i q_i``, so scoring a batch of
    users against the catalogue computes each side once and builds the (users, items, width)
    activation in item chunks of bounded size.

    Args:
        n_users: number of users.
        n_items: number of items.
        dim: embedding size of each side.
        widths: hidden layer widths of the tower, first layer first.
        dropout: dropout after each hidden ReLU (training only).
        init_std: std of the normal initial embeddings.
        num_negatives: negatives per observed pair that the training loop samples.
    """

    batch_kind = "pairs"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        widths: tuple[int, ...],
        *,
        dropout: float = 0.0,
        init_std: float = 0.01,
        num_negatives: int = 4,
    ) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.negatives_per_pair = num_negatives
        self.dim = dim
        self.user_emb = nn.Parameter(torch.randn(n_users, dim) * init_std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim) * init_std)
        self.first = nn.Linear(2 * dim, widths[0])
        layers: list[nn.Module] = [nn.ReLU(), nn.Dropout(dropout)]
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(width_in, width_out), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(widths[-1], 1))
        self.rest = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # The paper's initialisation: Glorot-uniform weights.
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def _halves(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first layer's weights on p_u and on q_i: two (w1, dim) matrices."""
        return self.first.weight[:, : self.dim], self.first.weight[:, self.dim :]

    def user_part(self, users: torch.Tensor) -> torch.Tensor:
        """``W_u p_u + b_1`` for (B,) users -> (B, w1)."""
        w_user, _ = self._halves()
        return self.user_emb[users] @ w_user.T + self.first.bias

    def item_part(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """``W_i q_i`` for items of any shape (..., ) -> (..., w1); every item when None."""
        _, w_item = self._halves()
        emb = self.item_emb if items is None else self.item_emb[items]
        return emb @ w_item.T

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of given items per user, with autograd: users (B,), items (B, n) -> (B, n)."""
        pre = self.user_part(users).unsqueeze(1) + self.item_part(items)
        return self.rest(pre).squeeze(-1)

    def loss(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        """Mean binary cross-entropy over the B positives (label 1) and B*m negatives (label 0)."""
        neg = batch.neg.reshape(batch.users.shape[0], -1)
        items = torch.cat([batch.pos.unsqueeze(1), neg], dim=1)
        logits = self.logits(batch.users, items)
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        bce = F.binary_cross_entropy_with_logits(logits, labels)
        return {"loss": bce, "bce": bce}

    @torch.no_grad()
    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.logits(users, items)

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        user_part = self.user_part(users)  # (B, w1)
        item_part = self.item_part()  # (n_items, w1)
        out = torch.empty(users.shape[0], self.n_items, device=user_part.device)
        chunk = max(1, _SCORE_ELEMENTS // max(1, users.shape[0] * user_part.shape[1]))
        for lo in range(0, self.n_items, chunk):
            pre = user_part.unsqueeze(1) + item_part[lo : lo + chunk].unsqueeze(0)
            out[:, lo : lo + chunk] = self.rest(pre).squeeze(-1)
        return out


def build(cfg: NCFMLPConfig, data: SplitData, device: torch.device) -> NCFMLP:
    """An NCF-MLP on ``device``; its negatives come from the sampler ``cfg.sampler`` names (the
    training loop's, ``recsys.train.Trainer``)."""
    model = NCFMLP(
        data.n_users,
        data.n_items,
        cfg.dim,
        cfg.widths,
        dropout=cfg.dropout,
        init_std=cfg.init_std,
        num_negatives=cfg.num_negatives,
    )
    return model.to(device)
