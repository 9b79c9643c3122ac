"""Windowed z-score ensemble with NAB's anomaly-likelihood post-processing (the NAB detector).

Why: a raw z-score is not comparable across series (NAB sweeps one threshold over the whole
corpus) and fires again and again during one incident. Numenta's anomaly likelihood fixes the
first: it asks how unusual the *recent average* raw score is compared with the raw scores' own
long-run distribution, a tail probability that means the same on every series. A refractory
period after an alarm fixes the second: NAB only credits the first detection in a window and
charges every later one outside it.

Per point ``x_t`` (O(1): ring buffers with running sums):
1. raw_t = max over two views of ``min(|z|, z_cap) / z_cap``: the value's z-score against the
   previous ``window`` values, and the first difference's z-score against the previous
   ``window`` differences.
2. ``m_t`` = mean of the last ``short`` raw scores; ``(mu, sd)`` = mean and std of the previous
   ``long`` values of ``m``; likelihood ``L = 1 - Q((m_t - mu) / sd)``.
3. score = ``log(1 - L) / log(1e-10)`` clipped to ``[0, 1]`` (NAB's log scaling), forced to 0
   during the first ``warmup`` points and for ``refractory`` points after a score above
   ``alarm``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from anomaly._base import StreamingDetector, check_float, check_int

__all__ = ["LikelihoodDetector"]

_LOG_EPS = math.log(1e-10)
_SQRT2 = math.sqrt(2.0)


class _Window:
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


class LikelihoodDetector(StreamingDetector):
    """Windowed z-score ensemble + anomaly likelihood + refractory period (univariate)."""

    name = "likelihood"

    def __init__(
        self,
        *,
        window: int = 400,
        short: int = 8,
        long: int = 1500,
        z_cap: float = 8.0,
        warmup: int = 150,
        alarm: float = 0.5,
        refractory: int = 200,
        min_std: float = 1e-3,
    ) -> None:
        super().__init__()
        self.window = check_int("window", window, 2)
        self.short = check_int("short", short, 1)
        self.long = check_int("long", long, 2)
        self.z_cap = check_float("z_cap", z_cap, 0.0, open_low=True)
        self.warmup = check_int("warmup", warmup, 0)
        self.alarm = check_float("alarm", alarm, 0.0, 1.0)
        self.refractory = check_int("refractory", refractory, 0)
        self.min_std = check_float("min_std", min_std, 0.0)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.values_ = _Window(self.window)
        self.diffs_ = _Window(self.window)
        self.raw_ = _Window(self.short)
        self.avg_ = _Window(self.long)
        self.prev_: float | None = None
        self.count_ = 0
        self.quiet_ = 0

    def _z(self, w: _Window, x: float) -> float:
        m, sd = w.mean_std()
        # Scale-aware floor: a flat series that moves by a hair is not an infinite z.
        floor = self.min_std * (abs(m) + 1.0)
        if sd < floor:
            sd = floor
        z = abs(x - m) / sd
        cap = self.z_cap
        return 1.0 if z >= cap else z / cap

    def _score(self, ts: float, x: float) -> float:
        self.count_ += 1
        raw = 0.0
        if len(self.values_.buf) >= 2:
            raw = self._z(self.values_, x)
        prev = self.prev_
        if prev is not None:
            d = x - prev
            if len(self.diffs_.buf) >= 2:
                rd = self._z(self.diffs_, d)
                if rd > raw:
                    raw = rd
            self.diffs_.push(d)
        self.values_.push(x)
        self.prev_ = x
        self.raw_.push(raw)
        m = self.raw_.s / len(self.raw_.buf)
        mu, sd = self.avg_.mean_std()
        enough = len(self.avg_.buf) >= 2
        self.avg_.push(m)
        if self.count_ <= self.warmup or not enough:
            return 0.0
        if sd < 1e-6:
            sd = 1e-6
        tail = 0.5 * math.erfc((m - mu) / sd / _SQRT2)  # Q(z)
        score = math.log(tail + 1e-10) / _LOG_EPS if tail < 1.0 else 0.0
        if score < 0.0:
            score = 0.0
        elif score > 1.0:
            score = 1.0
        if self.quiet_ > 0:
            self.quiet_ -= 1
            return 0.0
        if score >= self.alarm:
            self.quiet_ = self.refractory
        return score

    def _state(self) -> dict[str, Any]:
        return {
            "values": self.values_.state(),
            "diffs": self.diffs_.state(),
            "raw": self.raw_.state(),
            "avg": self.avg_.state(),
            "prev": self.prev_,
            "count": self.count_,
            "quiet": self.quiet_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.values_.load(state["values"])
        self.diffs_.load(state["diffs"])
        self.raw_.load(state["raw"])
        self.avg_.load(state["avg"])
        self.prev_ = state["prev"]
        self.count_ = int(state["count"])
        self.quiet_ = int(state["quiet"])
