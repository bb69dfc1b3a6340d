"""The model registry: one entry per model name, one file per model."""

from __future__ import annotations

from recsys.errors import RecsysError
from recsys.models import ease, hybrid_vae, itemknn, mult_vae, popularity
from recsys.models.base import ModelSpec, Recommender

MODELS: dict[str, ModelSpec] = {
    "popularity": ModelSpec(
        "popularity", popularity.PopularityConfig, popularity.build, trainable=False
    ),
    "itemknn": ModelSpec("itemknn", itemknn.ItemKNNConfig, itemknn.build, trainable=False),
    "ease": ModelSpec("ease", ease.EASEConfig, ease.build, trainable=False),
    "mult_vae": ModelSpec("mult_vae", mult_vae.MultVAEConfig, mult_vae.build),
    "hybrid_vae": ModelSpec("hybrid_vae", hybrid_vae.HybridVAEConfig, hybrid_vae.build),
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
