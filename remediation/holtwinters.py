"""Additive Holt-Winters (triple exponential smoothing), small and dependency-free.

Why our own: statsmodels is not installed and is ~40 MB for one model; the predictive
autoscaler needs only additive level + trend + season on a regularly sampled load series, a
streaming update per bucket, and an ``h``-step forecast. Parameters are chosen by a small grid
search on one-step-ahead squared error over the history (what statsmodels' ``fit`` minimises,
with a grid instead of L-BFGS).

Shapes: ``history`` is a 1-D array of ``n >= 2 * season`` values at a fixed step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["HoltWinters"]

_GRID_ALPHA = (0.1, 0.3, 0.5, 0.8)
_GRID_BETA = (0.0, 0.05, 0.2)
_GRID_GAMMA = (0.05, 0.2, 0.5)


class HoltWinters:
    """Additive Holt-Winters with season length ``season`` (in samples).

    ``alpha``/``beta``/``gamma`` left ``None`` are fitted by :meth:`fit`.
    Learned state ends in ``_``: ``level_``, ``trend_``, ``seasonal_`` (length ``season``),
    ``t_`` (samples seen), ``sse_`` (one-step squared error of the fit).
    """

    def __init__(self, season: int, *, alpha: float | None = None, beta: float | None = None,
                 gamma: float | None = None) -> None:
        if season < 2:
            raise ValueError(f"season must be >= 2 samples, got {season}")
        for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        self.season = season
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.level_ = 0.0
        self.trend_ = 0.0
        self.seasonal_ = np.zeros(season)
        self.t_ = 0
        self.sse_ = math.inf

    def _init(self, y: np.ndarray) -> tuple[float, float, np.ndarray]:
        m = self.season
        first, second = y[:m], y[m:2 * m]
        level = float(first.mean())
        trend = float((second.mean() - first.mean()) / m)
        return level, trend, first - level

    def _run(self, y: np.ndarray, a: float, b: float, g: float
             ) -> tuple[float, float, np.ndarray, float]:
        m = self.season
        level, trend, seas = self._init(y)
        seas = seas.copy()
        sse = 0.0
        for t in range(m, len(y)):
            s = seas[t % m]
            pred = level + trend + s
            sse += (y[t] - pred) ** 2
            new_level = a * (y[t] - s) + (1 - a) * (level + trend)
            trend = b * (new_level - level) + (1 - b) * trend
            seas[t % m] = g * (y[t] - new_level) + (1 - g) * s
            level = new_level
        return level, trend, seas, sse

    def fit(self, history: Sequence[float]) -> HoltWinters:
        y = np.asarray(history, dtype=float)
        if y.ndim != 1 or len(y) < 2 * self.season:
            raise ValueError(f"need at least 2 seasons ({2 * self.season} samples), got {len(y)}")
        if not np.all(np.isfinite(y)):
            raise ValueError("history has NaN or inf; fill gaps before fitting")
        grid = itertools.product(
            (self.alpha,) if self.alpha is not None else _GRID_ALPHA,
            (self.beta,) if self.beta is not None else _GRID_BETA,
            (self.gamma,) if self.gamma is not None else _GRID_GAMMA)
        best = None
        for a, b, g in grid:
            level, trend, seas, sse = self._run(y, a, b, g)
            if best is None or sse < best[0]:
                best = (sse, a, b, g, level, trend, seas)
        assert best is not None
        self.sse_, self.alpha, self.beta, self.gamma, self.level_, self.trend_, seas = best
        self.seasonal_ = seas
        self.t_ = len(y)
        return self

    def update(self, value: float) -> None:
        """Fold one new sample in (O(1)); a non-finite value is skipped."""
        if not math.isfinite(value) or self.alpha is None:
            return
        a, b, g = self.alpha, self.beta or 0.0, self.gamma or 0.0
        i = self.t_ % self.season
        s = self.seasonal_[i]
        new_level = a * (value - s) + (1 - a) * (self.level_ + self.trend_)
        self.trend_ = b * (new_level - self.level_) + (1 - b) * self.trend_
        self.seasonal_[i] = g * (value - new_level) + (1 - g) * s
        self.level_ = new_level
        self.t_ += 1

    def forecast(self, h: int) -> float:
        """The value ``h >= 1`` samples after the last one seen."""
        if h < 1:
            raise ValueError(f"h must be >= 1, got {h}")
        return float(self.level_ + h * self.trend_
                     + self.seasonal_[(self.t_ + h - 1) % self.season])
