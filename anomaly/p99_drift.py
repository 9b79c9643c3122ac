"""P99 drift: a Bernoulli CUSUM on exceedances of the baseline's P99, plus a windowed P99.

Why this test: a P99 is exceeded by 1% of normal points. When the tail drifts up, that rate
rises, and the likelihood-ratio CUSUM of "exceedance rate p1 against p0" is the fastest test for
such a sustained change at a given false-alarm rate (Page, 1954). One spike adds only
``log(p1/p0)`` (about 2.3) to the statistic, below the alarm level ``h``, and the statistic
drains by ``log((1-p1)/(1-p0))`` per normal point, so a lone spike never fires while three or
four exceedances in a row do.

Per point (O(1)): ``e = x > baseline.high(ts)``; ``S = min(cap * h, max(0, S + (log(p1/p0) if
e else log((1-p1)/(1-p0)))))``; score ``= S / (S + h)`` (0.5 exactly at the alarm level ``h``).
The cap bounds how long the score outlives the drift: each exceedance adds 3.0 and each normal
point drains 0.21, so uncapped, every slow request kept the alarm up for 14 more normal ones,
however long the incident (until the baseline accepted the slow regime). At ``cap`` 3 the score
falls below the alarm within ``2h / 0.213`` normal points of any drift (141 at ``h`` 15). The windowed
P99 (a fast stochastic-approximation quantile) is kept as the observed value to report. The
baseline (:class:`anomaly.baseline.SeasonalBaseline`) learns points scored below ``gate`` at full
rate and flagged ones at ``flagged_weight`` of it, so an incident stays out of it while a lasting
change of regime is eventually accepted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anomaly._base import StreamingDetector, check_float, check_int
from anomaly.baseline import SEASONS, SeasonalBaseline

__all__ = ["P99DriftDetector"]


class P99DriftDetector(StreamingDetector):
    """Sequential test of the P99 against a seasonal, robust baseline (univariate)."""

    name = "p99_drift"

    def __init__(
        self,
        *,
        season: str = "hour_of_day",
        p0: float = 0.01,
        p1: float = 0.20,
        h: float = 10.0,
        min_points: int = 50,
        learning_rate: float = 0.01,
        gate: float = 0.3,
        flagged_weight: float = 0.05,
        window_rate: float = 0.05,
        cap: float = 3.0,
    ) -> None:
        super().__init__()
        if season not in SEASONS:
            raise ValueError(f"season must be one of {sorted(SEASONS)}, got {season!r}")
        self.season = season
        self.p0 = check_float("p0", p0, 0.0, 0.5, open_low=True)
        self.p1 = check_float("p1", p1, 0.0, 1.0, open_low=True)
        if not self.p1 > self.p0 or self.p1 >= 1.0:
            raise ValueError(f"p1 must be in (p0, 1), got {p1}")
        self.h = check_float("h", h, 0.0, open_low=True)
        self.min_points = check_int("min_points", min_points, 2)
        self.learning_rate = check_float("learning_rate", learning_rate, 0.0, 1.0, open_low=True)
        self.gate = check_float("gate", gate, 0.0, 1.0)
        self.flagged_weight = check_float("flagged_weight", flagged_weight, 0.0, 1.0)
        self.window_rate = check_float("window_rate", window_rate, 0.0, 1.0, open_low=True)
        self.cap = check_float("cap", cap, 1.0)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.baseline_ = SeasonalBaseline(
            season=self.season,
            quantile=1.0 - self.p0,
            min_points=self.min_points,
            learning_rate=self.learning_rate,
        )
        self.up_ = math.log(self.p1 / self.p0)
        self.down_ = math.log((1.0 - self.p1) / (1.0 - self.p0))
        self.cusum_ = 0.0
        self.window_p99_ = math.nan

    def _fit(self, ts: np.ndarray, values: np.ndarray) -> None:
        if values.ndim != 1:
            raise ValueError("p99_drift is univariate")
        self.baseline_.fit((ts, values))

    def _score(self, ts: float, x: float) -> float:
        base = self.baseline_.lookup(ts)
        if base is None:
            self.baseline_.observe(ts, x)
            return 0.0
        w = self.window_p99_
        if w != w:
            self.window_p99_ = x
        else:
            step = self.window_rate * max(1.4826 * base[1], abs(base[0]) * 1e-3, 1e-12)
            self.window_p99_ = w + (step if x > w else -step * self.p0 / (1.0 - self.p0))
        s = self.cusum_ + (self.up_ if x > base[2] else self.down_)
        if s < 0.0:
            s = 0.0
        elif s > self.cap * self.h:
            s = self.cap * self.h
        self.cusum_ = s
        score = s / (s + self.h)
        self.baseline_.observe(ts, x, 1.0 if score < self.gate else self.flagged_weight)
        return score

    def _state(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_.state_dict(),
            "cusum": self.cusum_,
            "window_p99": None if self.window_p99_ != self.window_p99_ else self.window_p99_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.baseline_.load_state_dict(state["baseline"])
        self.cusum_ = float(state["cusum"])
        self.window_p99_ = math.nan if state["window_p99"] is None else float(state["window_p99"])
