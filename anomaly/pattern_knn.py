"""Pattern novelty: distance from the last ``length`` values to their nearest past patterns (kNN).

Why: the z-score views judge one value at a time, so a shape never seen before made of ordinary
values (a missing daily peak, a burst of unusual rhythm, a flat stretch on a busy series) passes
them; and a spike that comes back every day looks new to them every day. Comparing the whole
recent pattern with the patterns of the recent past (KNN-CAD's idea, Burnaev and Ishimtsev 2016)
answers both: a pattern like one already seen is near it, whatever its values.

Per point: the pattern ``p_t = x[t-length+1 .. t]`` (shape ``(length,)``) is compared with the
up to ``history - length`` past patterns that do not overlap it (held in a ring buffer, shape
``(history - length, length)``); ``raw = sqrt(mean of the k smallest squared distances) /
(sigma * sqrt(length))`` where ``sigma`` is the running standard deviation of every value before
``x_t``. So ``raw`` is a per-value distance in units of the series' own scale, comparable across
series. Cost per point: one vectorised distance computation over the ring buffer
(``O(history * length)`` in numpy). Score: ``raw / (raw + alarm_distance)``, 0.5 at
``raw = alarm_distance``; :class:`anomaly.ensemble.EnsembleDetector` reads ``raw_`` instead and
calibrates it with the anomaly likelihood.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from anomaly._base import StreamingDetector, check_float, check_int

__all__ = ["PatternKnnDetector"]


class PatternKnnDetector(StreamingDetector):
    """Nearest-neighbour distance of the recent pattern to past patterns (univariate)."""

    name = "pattern_knn"

    def __init__(
        self,
        *,
        length: int = 8,
        history: int = 2000,
        k: int = 3,
        min_points: int = 10,
        alarm_distance: float = 1.0,
    ) -> None:
        super().__init__()
        self.length = check_int("length", length, 1)
        self.history = check_int("history", history, 2)
        if self.history <= self.length:
            raise ValueError(f"history must exceed length ({self.length}), got {history}")
        self.k = check_int("k", k, 1)
        self.min_points = check_int("min_points", min_points, 0)
        self.alarm_distance = check_float("alarm_distance", alarm_distance, 0.0, open_low=True)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        cap = self.history - self.length
        self.ref_ = np.zeros((cap, self.length))  # past patterns, ring buffer
        self.diff_ = np.empty((cap, self.length))  # scratch for the distances, no allocation per point
        self.cur_ = np.empty(self.length)
        self.filled_ = 0
        self.pos_ = 0  # next ring slot
        self.last_: deque[float] = deque(maxlen=2 * self.length + 1)
        self.count_ = 0  # values seen, for the running mean / std (Welford)
        self.mean_ = 0.0
        self.m2_ = 0.0
        self.raw_ = 0.0

    def _fit(self, ts: np.ndarray, values: np.ndarray) -> None:
        if values.ndim != 1:
            raise ValueError("pattern_knn is univariate")
        for v in values.tolist():
            self._score(0.0, v)

    def _score(self, ts: float, x: float) -> float:
        t = self.count_  # index of x
        n = self.count_
        sigma = math.sqrt(self.m2_ / n) if n > 0 and self.m2_ > 0.0 else 0.0
        sigma += 1e-9 * (abs(self.mean_) + 1.0)
        # learn the running mean / std after reading it: sigma is of the values before x
        n += 1
        d = x - self.mean_
        self.mean_ += d / n
        self.m2_ += d * (x - self.mean_)
        self.count_ = n
        last = self.last_
        last.append(x)
        L = self.length
        full = len(last) == 2 * L + 1
        if full:  # the pattern ending L + 1 points ago no longer overlaps ours
            buf = list(last)
            self.ref_[self.pos_] = buf[:L]
            self.pos_ = (self.pos_ + 1) % len(self.ref_)
            if self.filled_ < len(self.ref_):
                self.filled_ += 1
        raw = 0.0
        m = self.filled_
        if t >= L + self.min_points and m >= self.k:
            cur = self.cur_
            cur[:] = buf[L + 1 :] if full else list(last)[-L:]
            diff = self.diff_[:m]
            np.subtract(self.ref_[:m], cur, out=diff)
            dist = np.einsum("ij,ij->i", diff, diff)
            k = self.k
            if k == 1:
                near = float(dist.min())
            else:
                near = float((np.partition(dist, k - 1)[:k] if m > k else dist).mean())
            raw = math.sqrt(near) / (sigma * math.sqrt(L))
        self.raw_ = raw
        return raw / (raw + self.alarm_distance)

    def _state(self) -> dict[str, Any]:
        # the ring in age order, oldest first, so a restore needs no slot bookkeeping
        if self.filled_ < len(self.ref_):
            ring = self.ref_[: self.filled_]
        else:
            ring = np.concatenate([self.ref_[self.pos_ :], self.ref_[: self.pos_]])
        return {
            "ref": ring.tolist(),
            "last": list(self.last_),
            "count": self.count_,
            "mean": self.mean_,
            "m2": self.m2_,
            "raw": self.raw_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        ring = np.asarray(state["ref"], dtype=float).reshape(-1, self.length)
        cap = len(self.ref_)
        if len(ring) > cap:
            raise ValueError(f"state holds {len(ring)} patterns, more than this detector's {cap}")
        self.ref_[: len(ring)] = ring
        self.filled_ = len(ring)
        self.pos_ = len(ring) % cap
        self.last_ = deque((float(v) for v in state["last"]), maxlen=2 * self.length + 1)
        self.count_ = int(state["count"])
        self.mean_ = float(state["mean"])
        self.m2_ = float(state["m2"])
        self.raw_ = float(state["raw"])
