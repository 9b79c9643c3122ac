"""Variance / jitter: rolling dispersion of successive differences against the baseline's.

Why successive differences: jitter is point-to-point instability. The mean absolute successive
difference over a short window estimates the noise scale (``sigma = mean|dx| * sqrt(pi) / 2`` for
Gaussian noise) and, unlike a rolling standard deviation, a level shift adds one large
difference rather than inflating the whole window, so this detector answers "did it get
noisier?" and leaves "did it move?" to the drift and changepoint detectors.

Per point (O(1), running sum over a ring buffer of ``window`` differences):
``ratio = sigma_recent / sigma_baseline`` where the baseline is a robust seasonal baseline of
``|dx|`` (median of ``|dx|``, learned at full rate from points scored below ``gate``, at ``flagged_weight`` from the others), each ``|dx|``
clipped at ``clip`` baseline scales so one spike cannot pass for jitter; score
``= (r - 1) / ((r - 1) + (alarm_ratio - 1))`` for ``r > 1`` else 0, so 0.5 means the recent noise
is exactly ``alarm_ratio`` times the baseline's.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from anomaly._base import StreamingDetector, check_float, check_int
from anomaly.baseline import SEASONS, SeasonalBaseline

__all__ = ["VarianceDetector"]


class VarianceDetector(StreamingDetector):
    """Rolling jitter (mean absolute successive difference) against a seasonal baseline."""

    name = "variance"

    def __init__(
        self,
        *,
        window: int = 30,
        alarm_ratio: float = 3.0,
        season: str = "hour_of_day",
        min_points: int = 50,
        learning_rate: float = 0.01,
        gate: float = 0.3,
        flagged_weight: float = 0.05,
        clip: float = 6.0,
    ) -> None:
        super().__init__()
        self.window = check_int("window", window, 2)
        self.alarm_ratio = check_float("alarm_ratio", alarm_ratio, 1.0, open_low=True)
        if season not in SEASONS:
            raise ValueError(f"season must be one of {sorted(SEASONS)}, got {season!r}")
        self.season = season
        self.min_points = check_int("min_points", min_points, 2)
        self.learning_rate = check_float("learning_rate", learning_rate, 0.0, 1.0, open_low=True)
        self.gate = check_float("gate", gate, 0.0, 1.0)
        self.flagged_weight = check_float("flagged_weight", flagged_weight, 0.0, 1.0)
        self.clip = check_float("clip", clip, 1.0)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.baseline_ = SeasonalBaseline(
            season=self.season, quantile=0.99, min_points=self.min_points, learning_rate=self.learning_rate
        )
        self.diffs_: deque[float] = deque()
        self.sum_ = 0.0
        self.prev_: float | None = None
        self.ratio_ = 0.0

    def _fit(self, ts: np.ndarray, values: np.ndarray) -> None:
        if values.ndim != 1:
            raise ValueError("variance is univariate")
        if len(values) >= 2:
            d = np.abs(np.diff(values))
            self.baseline_.fit((ts[1:], d))
            tail = d[-self.window :].tolist()
            self.diffs_ = deque(tail)
            self.sum_ = math.fsum(tail)
        if len(values):
            self.prev_ = float(values[-1])

    def _score(self, ts: float, x: float) -> float:
        prev = self.prev_
        self.prev_ = x
        if prev is None:
            return 0.0
        d = abs(x - prev)
        base = self.baseline_.lookup(ts)
        # Baseline scale of |dx|: its median, floored by its MAD and a tiny constant, so a
        # perfectly flat history does not make any wiggle infinitely anomalous.
        ref = max(base[0], base[1], 1e-9) if base is not None else 0.0
        # One spike makes two huge differences; clipping each at `clip` baseline scales keeps a
        # lone spike from looking like sustained jitter.
        dc = d if base is None or d <= self.clip * ref else self.clip * ref
        buf = self.diffs_
        buf.append(dc)
        self.sum_ += dc
        if len(buf) > self.window:
            self.sum_ -= buf.popleft()
        if base is None or len(buf) < self.window:
            self.baseline_.observe(ts, d)
            return 0.0
        r = (self.sum_ / len(buf)) / ref
        self.ratio_ = r
        score = (r - 1.0) / ((r - 1.0) + (self.alarm_ratio - 1.0)) if r > 1.0 else 0.0
        self.baseline_.observe(ts, d, 1.0 if score < self.gate else self.flagged_weight)
        return score

    def _state(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_.state_dict(),
            "diffs": list(self.diffs_),
            "prev": self.prev_,
            "ratio": self.ratio_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.baseline_.load_state_dict(state["baseline"])
        self.diffs_ = deque(float(v) for v in state["diffs"])
        self.sum_ = math.fsum(self.diffs_)
        self.prev_ = None if state["prev"] is None else float(state["prev"])
        self.ratio_ = float(state["ratio"])
