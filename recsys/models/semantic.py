"""Semantic retrieval: a user is the mean text vector of their training items; items are ranked by
cosine similarity to it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recsys.data.dataset import SplitData
from recsys.errors import RecsysError, require
from recsys.models.base import Recommender
from recsys.models.history import History
from recsys.sparse import row_gather

WEIGHTINGS = ("uniform", "idf")


@dataclass(frozen=True)
class SemanticConfig:
    """Semantic retrieval's hyperparameters.

    Attributes:
        weighting: how a user's training items are weighted in their profile. ``"uniform"``:
            all alike. ``"idf"``: by inverse user frequency, 1 + ln((1 + n_users) / (1 + n_i)),
            so that a rarely seen item says more about a user's taste than one everybody has.
            There is no rating weighting: the prepared training pairs carry no ratings (a
            positive is a rating >= the threshold, binarised in ``recsys.data.prepare``), nor
            timestamps, so no recency weighting either.
        popularity_blend: w >= 0 in score = cos(u, i) + w ln(1 + n_i), a popularity prior
            multiplied into the text likelihood (log-linear). 0: pure text retrieval.
    """

    weighting: str = "uniform"
    popularity_blend: float = 0.0

    def __post_init__(self) -> None:
        require(
            self.weighting in WEIGHTINGS,
            f"weighting must be one of {', '.join(map(repr, WEIGHTINGS))}, got {self.weighting!r}",
        )
        require(
            isinstance(self.popularity_blend, int | float)
            and not isinstance(self.popularity_blend, bool)
            and math.isfinite(self.popularity_blend)
            and self.popularity_blend >= 0,
            f"popularity_blend must be a number >= 0 (0 turns it off), got "
            f"{self.popularity_blend!r}",
        )


def item_weights(item_counts: torch.Tensor, n_users: int, weighting: str) -> torch.Tensor:
    """(n_items,) weight of each item in a user's profile (see :class:`SemanticConfig`)."""
    if weighting == "uniform":
        return torch.ones_like(item_counts, dtype=torch.float32)
    return 1.0 + torch.log((1.0 + n_users) / (1.0 + item_counts.to(torch.float32)))


class SemanticRetrieval(Recommender):
    """Content-based retrieval with Sentence-BERT item vectors (Reimers and Gurevych, EMNLP 2019;
    the user profile as the weighted mean of the vectors of the items they liked: Lops, de Gemmis
    and Semeraro, "Content-based recommender systems", Recommender Systems Handbook 2011; idf
    weights: Breese, Heckerman and Kadie's inverse user frequency, UAI 1998).

    With E the L2-normalised item vectors, X the binary training matrix and a the item weights,
    p_u = sum_i X_ui a_i E_i, and score(u, i) = <p_u / ||p_u||, E_i> + w ln(1 + n_i). Normalising
    p_u makes the mean and the sum the same direction. Closed form: nothing is learned; an item
    nobody interacted with is still scored from its text (cold start), and a user without
    training items scores 0 for every item (then the popularity prior alone ranks them).

    A :class:`~recsys.models.base.VectorScorer`: user vectors (p_u / ||p_u||, w) and item vectors
    (E_i, ln(1 + n_i)), the second column only when w > 0.

    Args:
        train_csr: (n_users, n_items) sparse CSR training matrix, kept for the profiles.
        item_embeddings: (n_items, d) item text vectors; normalised here.
        weighting: ``"uniform"`` or ``"idf"`` (see :class:`SemanticConfig`).
        popularity_blend: w >= 0.
    """

    def __init__(
        self,
        train_csr: torch.Tensor,
        item_embeddings: torch.Tensor,
        weighting: str = "uniform",
        popularity_blend: float = 0.0,
    ) -> None:
        super().__init__()
        self.history = History(train_csr)
        self.n_users, self.n_items = self.history.n_users, self.history.n_items
        self.popularity_blend = float(popularity_blend)
        counts = torch.bincount(self.history.col, minlength=self.n_items)
        # Everything comes from the data at build time, so checkpoints hold nothing.
        embeddings = F.normalize(item_embeddings.detach().to(torch.float32), dim=1)
        self.register_buffer("item_text", embeddings, persistent=False)
        weights = item_weights(counts, self.n_users, weighting)
        self.register_buffer("weights", weights, persistent=False)
        log_counts = torch.log1p(counts.to(torch.float32)).unsqueeze(1)
        self.register_buffer("log_popularity", log_counts, persistent=False)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) user indices -> (B, d) unit profiles, (B, d + 1) with the popularity column."""
        rows, items = row_gather(self.history.crow, self.history.col, users)
        profile = torch.zeros(users.shape[0], self.item_text.shape[1], device=users.device)
        profile.index_add_(0, rows, self.item_text[items] * self.weights[items].unsqueeze(1))
        profile = F.normalize(profile, dim=1)
        if self.popularity_blend == 0:
            return profile
        blend = profile.new_full((users.shape[0], 1), self.popularity_blend)
        return torch.cat([profile, blend], dim=1)

    def item_vectors(self) -> torch.Tensor:
        """(n_items, d) unit text vectors, (n_items, d + 1) with the popularity column."""
        if self.popularity_blend == 0:
            return self.item_text
        return torch.cat([self.item_text, self.log_popularity], dim=1)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(users) @ self.item_vectors().T


def build(cfg: SemanticConfig, data: SplitData, device: torch.device) -> SemanticRetrieval:
    """Semantic retrieval on ``device`` over ``data.item_embeddings``, profiles from
    ``data.train``."""
    if data.item_embeddings is None:
        raise RecsysError(
            "semantic needs item embeddings and the data has none; attach them first with "
            "recsys.text.with_item_embeddings(data) (the sweep does this once for all trials)"
        )
    embeddings = torch.tensor(data.item_embeddings, dtype=torch.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != data.n_items:
        raise RecsysError(
            f"semantic: item_embeddings must have shape (n_items={data.n_items}, d), got "
            f"{tuple(embeddings.shape)}; recompute them with recsys.text.with_item_embeddings"
        )
    model = SemanticRetrieval(data.train_csr(), embeddings, cfg.weighting, cfg.popularity_blend)
    return model.to(device)
