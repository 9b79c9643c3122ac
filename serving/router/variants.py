"""Per-model split between the full model ``<model>`` and its lite variant ``<model>_lite``.

Why a random draw per request and not a deterministic counter: a counter (every other request for
f = 0.5) aliases with round robin, so one replica would see only lite traffic and a lite-variant
problem would look like a replica problem. The RNG is seeded from config for reproducible runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from serving.router.config import check_fraction

__all__ = ["LITE_SUFFIX", "VariantSplitter"]

LITE_SUFFIX = "_lite"


class VariantSplitter:
    """Decides, per request, whether a model's request goes to its lite variant."""

    def __init__(self, lite_models: Iterable[str], split: dict[str, float],
                 rng: random.Random) -> None:
        self.lite_models: set[str] = set(lite_models)
        self.split: dict[str, float] = {}
        self._rng = rng
        for model, fraction in split.items():
            self.set(model, fraction)

    def set(self, model: str, fraction: object) -> float:
        """Set the lite fraction of ``model``; ``ValueError`` if it has no lite variant or f is bad."""
        if model not in self.lite_models:
            raise ValueError(f"model {model!r} has no lite variant; lite models: {sorted(self.lite_models)}")
        value = check_fraction(fraction)
        if value == 0.0:
            self.split.pop(model, None)
        else:
            self.split[model] = value
        return value

    def to_lite(self, model: str) -> bool:
        """True if this request of ``model`` should go to ``<model>_lite``."""
        f = self.split.get(model)
        if not f:
            return False
        return f >= 1.0 or self._rng.random() < f

    def fractions(self) -> dict[str, float]:
        """Every lite model with its current fraction (0 when unset)."""
        return {m: self.split.get(m, 0.0) for m in sorted(self.lite_models)}
