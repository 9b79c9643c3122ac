"""Score post-processing from NAB/HTM: anomaly likelihood and a refractory period.

Why: NAB sweeps one threshold over every series, so scores must mean the same everywhere, and it
credits only the first detection in a window while charging every other one. Numenta's anomaly
likelihood turns any raw score stream into a tail probability of the recent average raw score
against the raw scores' own long-run Gaussian, which is comparable across series; a refractory
period silences the detector for a while after an alarm. ``WithLikelihood`` wraps any registered
detector fed one float per point in both, which is how ``warden eval nab`` scores the ``NAME+lh`` variants.

``AnomalyLikelihood.update(raw) -> score`` (O(1)): ``m`` = mean of the last ``short`` raw scores;
``mu, sd`` = mean and std of the previous ``long`` values of ``m``;
``score = log(Q((m - mu) / sd) + 1e-10) / log(1e-10)`` clipped to ``[0, 1]``; 0 during
``warmup`` points. ``Refractory.update(score)``: returns 0 for ``quiet`` points after a score
``>= alarm``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from anomaly._base import StreamingDetector, check_float, check_int

__all__ = ["AnomalyLikelihood", "Refractory", "RunningWindow", "WithLikelihood"]

_LOG_EPS = math.log(1e-10)
_SQRT2 = math.sqrt(2.0)


class RunningWindow:
    """Sliding mean/std over the last ``n`` floats with running sums (O(1) per push)."""

    __slots__ = ("n", "buf", "s", "ss", "k")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf: deque[float] = deque()
        self.s = 0.0
        self.ss = 0.0
        self.k = 0

    def push(self, x: float) -> None:
        buf = self.buf
        buf.append(x)
        self.s += x
        self.ss += x * x
        if len(buf) > self.n:
            old = buf.popleft()
            self.s -= old
            self.ss -= old * old
        self.k += 1
        if self.k >= 10000:  # re-sum now and then so float error cannot build up
            self.k = 0
            self.s = math.fsum(buf)
            self.ss = math.fsum(v * v for v in buf)

    def mean_std(self) -> tuple[float, float]:
        n = len(self.buf)
        if n == 0:
            return 0.0, 0.0
        m = self.s / n
        var = self.ss / n - m * m
        return m, math.sqrt(var) if var > 0.0 else 0.0

    def state(self) -> list[float]:
        return list(self.buf)

    def load(self, values: list[float]) -> None:
        self.buf = deque(float(v) for v in values)
        self.s = math.fsum(self.buf)
        self.ss = math.fsum(v * v for v in self.buf)
        self.k = 0


class AnomalyLikelihood:
    """Numenta's anomaly likelihood over a raw score stream (see module docstring)."""

    def __init__(self, *, short: int = 8, long: int = 1500, warmup: int = 300) -> None:
        self.short = check_int("short", short, 1)
        self.long = check_int("long", long, 2)
        self.warmup = check_int("warmup", warmup, 0)
        self.raw_ = RunningWindow(self.short)
        self.avg_ = RunningWindow(self.long)
        self.count_ = 0

    def update(self, raw: float) -> float:
        self.count_ += 1
        rw = self.raw_
        rw.push(raw)
        m = rw.s / len(rw.buf)
        av = self.avg_
        n = len(av.buf)
        if n >= 2:
            mu = av.s / n
            var = av.ss / n - mu * mu
        av.push(m)
        if self.count_ <= self.warmup or n < 2:
            return 0.0
        sd = math.sqrt(var) if var > 1e-12 else 1e-6
        tail = 0.5 * math.erfc((m - mu) / (sd * _SQRT2))  # Gaussian Q(z)
        score = math.log(tail + 1e-10) / _LOG_EPS
        return 0.0 if score < 0.0 else 1.0 if score > 1.0 else score

    def state(self) -> dict[str, Any]:
        return {"raw": self.raw_.state(), "avg": self.avg_.state(), "count": self.count_}

    def load(self, state: dict[str, Any]) -> None:
        self.raw_.load(state["raw"])
        self.avg_.load(state["avg"])
        self.count_ = int(state["count"])


class Refractory:
    """Silence for ``quiet`` points after a score ``>= alarm``: one incident, one alarm."""

    def __init__(self, *, alarm: float = 0.5, quiet: int = 200) -> None:
        self.alarm = check_float("alarm", alarm, 0.0, 1.0)
        self.quiet = check_int("quiet", quiet, 0)
        self.left_ = 0

    def update(self, score: float) -> float:
        if self.left_ > 0:
            self.left_ -= 1
            return 0.0
        if score >= self.alarm:
            self.left_ = self.quiet
        return score


class WithLikelihood(StreamingDetector):
    """A detector's scores through ``AnomalyLikelihood`` and ``Refractory``, one float per point.

    The multivariate detector qualifies too: it turns a float into its own feature vector.
    """

    def __init__(
        self,
        inner: StreamingDetector,
        *,
        short: int = 8,
        long: int = 1500,
        warmup: int = 300,
        alarm: float = 0.5,
        refractory: int = 200,
    ) -> None:
        super().__init__()
        if not isinstance(inner, StreamingDetector):
            raise ValueError("inner must be a StreamingDetector")
        self.inner = inner
        self.name = f"{inner.name}+lh"
        self.short, self.long, self.warmup = short, long, warmup
        self.alarm, self.refractory = alarm, refractory
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.likelihood_ = AnomalyLikelihood(short=self.short, long=self.long, warmup=self.warmup)
        self.refractory_ = Refractory(alarm=self.alarm, quiet=self.refractory)

    def get_params(self) -> dict[str, Any]:
        params = {k: v for k, v in super().get_params().items() if k not in ("inner", "name")}
        params["inner"] = self.inner.name
        return params

    def _fit(self, ts: np.ndarray, values: np.ndarray) -> None:
        self.inner.fit((ts, values))

    def _score(self, ts: float, x: float) -> float:
        raw = self.inner.update(ts, x)
        return self.refractory_.update(self.likelihood_.update(raw))

    def _state(self) -> dict[str, Any]:
        return {
            "inner": self.inner.state_dict(),
            "likelihood": self.likelihood_.state(),
            "refractory_left": self.refractory_.left_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.likelihood_.load(state["likelihood"])
        self.refractory_.left_ = int(state["refractory_left"])
