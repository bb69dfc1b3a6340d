"""BPR-MF: matrix factorisation trained with the BPR loss.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009. It is
LightGCN with zero propagation layers, so it is that class (with a loss that skips what zero
layers make redundant) rather than a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recsys.data.dataset import SplitData
from recsys.models.base import PairBatch
from recsys.models.lightgcn import LightGCN, PairwiseConfig


@dataclass(frozen=True)
class BPRMFConfig(PairwiseConfig):
    """BPR-MF hyperparameters; those of :class:`PairwiseConfig`.

    ``init_std`` is smaller than LightGCN's 0.1, near the Xavier-normal scale of reference MF
    implementations: without propagation to average it out, the initial random dot products
    are noise MF must unlearn, and on ML-100K the 0.1 start ends about 0.016 lower in
    validation NDCG@10 (0.172-0.175 against 0.187-0.189 with 0.03, seeds 0, 1, 42).
    """

    init_std: float = 0.03


class BPRMF(LightGCN):
    """A zero-layer :class:`LightGCN` whose loss gathers the batch's embeddings once.

    The same loss as LightGCN's, ``softplus(e_u . (e_j - e_i))`` averaged, plus ``l2`` times
    ``(|e_u|^2 + |e_i|^2 + |e_j|^2) / 2 / B``, and the same gradients to float rounding. Without
    propagation the final embeddings are the layer-0 ones, so the rows gathered for the BPR term
    serve the penalty too: LightGCN's loss gathers them twice, from a fresh concatenation of
    both tables, which was most of BPR-MF's step. The penalty (logged as ``"l2"``) gets no
    gradient when its weight is 0.
    """

    def loss(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        self._cache = None  # an optimizer step follows (see LightGCN.loss)
        u = self.user_weight.index_select(0, batch.users)
        i, j = self.item_weight.index_select(0, torch.cat([batch.pos, batch.neg])).chunk(2)
        bpr = F.softplus((u * (j - i)).sum(dim=1)).mean()
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.l2 > 0):
            reg = (u.square().sum() + i.square().sum() + j.square().sum()) / (2 * u.shape[0])
        loss = bpr + self.l2 * reg if self.l2 > 0 else bpr
        return {"loss": loss, "bpr": bpr, "l2": reg}


def build(cfg: BPRMFConfig, data: SplitData, device: torch.device) -> BPRMF:
    """A zero-layer LightGCN, i.e. user and item embeddings scored by their dot product; the
    same initial draws as ``lightgcn.build`` with ``layers=0``."""
    model = BPRMF(data.n_users, data.n_items, cfg.dim, 0, None, l2=cfg.l2, init_std=cfg.init_std)
    return model.to(device)
