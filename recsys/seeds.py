"""Seeds: every seed of a sweep is derived from its root seed by one function."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: Any) -> int:
    """A seed in ``[0, 2**31 - 1)`` that is a stable hash of ``parts`` (JSON, keys sorted).

    The same parts give the same seed in every process and Python version; any change to a
    part gives an unrelated one. Used for trial seeds (root seed, model, config) and the
    searchers' seeds (root seed, model, ``"search"``).
    """
    payload = json.dumps(list(parts), sort_keys=True, default=str)
    digest = hashlib.blake2b(payload.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1)


def set_seed(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's (CPU and every CUDA device) global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
