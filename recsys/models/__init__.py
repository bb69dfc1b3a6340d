"""The model registry: one entry per model name, one file per model."""

from __future__ import annotations

from typing import Any

from recsys.errors import RecsysError
from recsys.models import (
    bpr_mf,
    ease,
    gfcf,
    hybrid_vae,
    ials,
    itemknn,
    lightgcn,
    mult_vae,
    ncf_mlp,
    popularity,
    rp3beta,
    semantic,
    two_tower,
    userknn,
)
from recsys.models.base import ModelSpec, Recommender


def _always(cfg: Any) -> bool:
    return True


_TEXT_LIGHTGCN = {
    "build": lightgcn.build,
    "needs_item_embeddings": lightgcn.uses_item_text,
    "needs_item_entities": lightgcn.uses_item_entities,
    "scores_cold_items": lightgcn.uses_item_text,
}

MODELS: dict[str, ModelSpec] = {
    "popularity": ModelSpec(
        "popularity", popularity.PopularityConfig, popularity.build, trainable=False
    ),
    "bpr_mf": ModelSpec("bpr_mf", bpr_mf.BPRMFConfig, bpr_mf.build),
    "lightgcn": ModelSpec("lightgcn", lightgcn.LightGCNConfig, **_TEXT_LIGHTGCN),
    "lightgcn_hardneg": ModelSpec(
        "lightgcn_hardneg", lightgcn.LightGCNHardNegConfig, **_TEXT_LIGHTGCN
    ),
    "lightgcn_text": ModelSpec("lightgcn_text", lightgcn.LightGCNTextConfig, **_TEXT_LIGHTGCN),
    "lightgcn_kg": ModelSpec("lightgcn_kg", lightgcn.LightGCNKGConfig, **_TEXT_LIGHTGCN),
    "itemknn": ModelSpec("itemknn", itemknn.ItemKNNConfig, itemknn.build, trainable=False),
    "ease": ModelSpec("ease", ease.EASEConfig, ease.build, trainable=False),
    "gfcf": ModelSpec("gfcf", gfcf.GFCFConfig, gfcf.build, trainable=False),
    "rp3beta": ModelSpec("rp3beta", rp3beta.RP3betaConfig, rp3beta.build, trainable=False),
    "userknn": ModelSpec("userknn", userknn.UserKNNConfig, userknn.build, trainable=False),
    "ials": ModelSpec("ials", ials.IALSConfig, ials.build),
    "mult_vae": ModelSpec("mult_vae", mult_vae.MultVAEConfig, mult_vae.build),
    "mult_dae": ModelSpec("mult_dae", mult_vae.MultDAEConfig, mult_vae.build_dae),
    "hybrid_vae": ModelSpec(
        "hybrid_vae",
        hybrid_vae.HybridVAEConfig,
        hybrid_vae.build,
        needs_item_embeddings=_always,
        scores_cold_items=_always,
    ),
    "semantic": ModelSpec(
        "semantic",
        semantic.SemanticConfig,
        semantic.build,
        trainable=False,
        needs_item_embeddings=_always,
        scores_cold_items=_always,
    ),
    "ncf_mlp": ModelSpec("ncf_mlp", ncf_mlp.NCFMLPConfig, ncf_mlp.build),
    "two_tower": ModelSpec(
        "two_tower",
        two_tower.TwoTowerConfig,
        two_tower.build,
        needs_item_embeddings=two_tower.uses_item_text,
        scores_cold_items=two_tower.uses_item_text,
    ),
}


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; a clear error for an unknown model."""
    try:
        return MODELS[name]
    except KeyError:
        raise RecsysError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}"
        ) from None


__all__ = ["MODELS", "ModelSpec", "Recommender", "get_spec"]
