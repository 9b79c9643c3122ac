"""Windowed z-score ensemble with NAB's anomaly-likelihood post-processing (the NAB detector).

Why: a raw z-score is not comparable across series (NAB sweeps one threshold over the whole
corpus) and fires again and again during one incident. The anomaly likelihood
(:class:`anomaly.postprocess.AnomalyLikelihood`) makes it comparable, a refractory period
(:class:`anomaly.postprocess.Refractory`) makes one incident one alarm.

Raw score per point (O(1), ring buffers with running sums): the larger of
``min(|z|, z_cap) / z_cap`` for the value against the previous ``window`` values and for the
first difference against the previous ``window`` differences. The standard deviation is floored
at ``min_std * (|mean| + 1)`` so a flat series that moves by a hair is not an infinite z.

Hyper-parameters were tuned once on the NAB development split (51 files) and are the same for
every file, as NAB requires.
"""

from __future__ import annotations

import math
from typing import Any

from anomaly._base import StreamingDetector, check_float, check_int
from anomaly.postprocess import AnomalyLikelihood, Refractory, RunningWindow

__all__ = ["LikelihoodDetector"]


class LikelihoodDetector(StreamingDetector):
    """Windowed z-score ensemble + anomaly likelihood + refractory period (univariate)."""

    name = "likelihood"

    def __init__(
        self,
        *,
        window: int = 2000,
        short: int = 8,
        long: int = 1500,
        z_cap: float = 16.0,
        warmup: int = 300,
        alarm: float = 0.5,
        refractory: int = 200,
        min_std: float = 1e-3,
        use_diff: bool = True,
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
        if not isinstance(use_diff, bool):
            raise ValueError(f"use_diff must be a bool, got {use_diff!r}")
        self.use_diff = use_diff
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.values_ = RunningWindow(self.window)
        self.diffs_ = RunningWindow(self.window)
        self.likelihood_ = AnomalyLikelihood(short=self.short, long=self.long, warmup=self.warmup)
        self.refractory_ = Refractory(alarm=self.alarm, quiet=self.refractory)
        self.prev_: float | None = None

    def _z(self, w: RunningWindow, x: float) -> float:
        n = len(w.buf)
        m = w.s / n
        var = w.ss / n - m * m
        sd = math.sqrt(var) if var > 0.0 else 0.0
        floor = self.min_std * (abs(m) + 1.0)
        if sd < floor:
            sd = floor
        z = abs(x - m) / sd
        cap = self.z_cap
        return 1.0 if z >= cap else z / cap

    def raw_score(self, x: float) -> float:
        """The raw z-ensemble score of ``x`` before it is learned (no state change)."""
        raw = self._z(self.values_, x) if len(self.values_.buf) >= 2 else 0.0
        prev = self.prev_
        if prev is not None and self.use_diff and len(self.diffs_.buf) >= 2:
            rd = self._z(self.diffs_, x - prev)
            if rd > raw:
                raw = rd
        return raw

    def _score(self, ts: float, x: float) -> float:
        raw = self.raw_score(x)
        prev = self.prev_
        if prev is not None and self.use_diff:
            self.diffs_.push(x - prev)
        self.values_.push(x)
        self.prev_ = x
        score = self.likelihood_.update(raw)
        ref = self.refractory_
        if ref.left_ > 0:
            ref.left_ -= 1
            return 0.0
        if score >= ref.alarm:
            ref.left_ = ref.quiet
        return score

    def _state(self) -> dict[str, Any]:
        return {
            "values": self.values_.state(),
            "diffs": self.diffs_.state(),
            "likelihood": self.likelihood_.state(),
            "refractory_left": self.refractory_.left_,
            "prev": self.prev_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.values_.load(state["values"])
        self.diffs_.load(state["diffs"])
        self.likelihood_.load(state["likelihood"])
        self.refractory_.left_ = int(state["refractory_left"])
        self.prev_ = state["prev"]
