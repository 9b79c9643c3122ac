"""Pattern novelty: distance from the recent pattern to its nearest past patterns (kNN).

Why: the z-score views judge one value at a time, so a shape never seen before made of ordinary
values (a missing daily peak, a burst of unusual rhythm, a flat stretch on a busy series) passes
them; and a spike that comes back every day looks new to them every day. Comparing the whole
recent pattern with the patterns of the recent past (KNN-CAD's idea, Burnaev and Ishimtsev 2016)
answers both: a pattern like one already seen is near it, whatever its values.

The series is cut into consecutive blocks of ``step`` values (from the first value on) and each
block becomes its mean ``y_j`` (``step = 1``: the values themselves). When a block completes, its
pattern ``p_j = (y[j-length+1], ..., y[j])`` (the shape of the last ``step * length`` points at a
coarser time scale: point noise and a lone spike average away, a change that unfolds over tens
of points stands out) is compared with the up to ``(history - step * length) // step`` past
block patterns that do not overlap it: ``raw = sqrt(mean of the k smallest squared distances) /
(sigma * sqrt(length))`` where ``sigma`` is the running standard deviation of every value before
``x_t``. So ``raw`` is a per-value distance in units of the series' own scale, comparable across
series. (Not in units of a block mean's noise, ``sigma / sqrt(step)``: that doubles ``raw`` at
step 4, and through the likelihood NAB scored it 29.15 against 43.03 as here.) Between block ends the score holds. Score: ``raw / (raw + alarm_distance)``, 0.5 at ``raw
= alarm_distance``; :class:`anomaly.ensemble.EnsembleDetector` reads ``raw_`` instead and
calibrates it with the anomaly likelihood, and calls :meth:`push` and :meth:`distance` apart, to
search only when it needs the answer.

Cost: one search per block: dot products of the current pattern with every past one in one
``np.correlate`` call, the best few candidates re-measured exactly (so near-ties and flat series
stay exact), about 11 µs over 492 patterns, 16 µs over 1,992. The history is a flat array of
block values, compacted now and then, so a value costs an append, not a pattern copy. At the
defaults (``step`` 4, history 2,000 points: 492 patterns) that is a few µs per point.
``benchmarks/detector_throughput.py`` times a search and measures the rate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anomaly._base import StreamingDetector, check_float, check_int

__all__ = ["PatternKnnDetector"]

_SPARE = 4  # candidates beyond k whose distances are re-measured exactly


class PatternKnnDetector(StreamingDetector):
    """Nearest-neighbour distance of the recent block pattern to past ones (univariate)."""

    name = "pattern_knn"

    def __init__(
        self,
        *,
        length: int = 8,
        history: int = 2000,
        k: int = 3,
        min_points: int = 10,
        alarm_distance: float = 1.0,
        step: int = 4,
    ) -> None:
        super().__init__()
        self.length = check_int("length", length, 1)
        self.history = check_int("history", history, 2)
        self.step = check_int("step", step, 1)
        self.k = check_int("k", k, 1)
        if (self.history - self.step * self.length) // self.step < self.k:
            raise ValueError(
                f"history must leave at least k={self.k} past patterns of step * length "
                f"({self.step * self.length}) points beside the current one, got {history}"
            )
        self.min_points = check_int("min_points", min_points, 0)
        self.alarm_distance = check_float("alarm_distance", alarm_distance, 0.0, open_low=True)
        self._ones = np.ones(self.length)  # window sums by correlation
        self._offsets = np.arange(self.length)  # a pattern's positions after its start
        self._reset()

    @property
    def patterns(self) -> int:
        """Past block patterns searched: those of the last ``history`` points not overlapping the current one."""
        return (self.history - self.step * self.length) // self.step

    def _keep(self) -> int:
        """Block values the search reads: the past patterns' and the current one's."""
        return self.patterns + 2 * self.length - 1

    def _reset(self) -> None:
        super()._reset()
        self.buf_ = np.zeros(2 * self._keep())  # block values; [:n_] are live
        self.n_ = 0
        self.acc_ = 0.0  # sum of the values of the block being filled
        self.in_block_ = 0
        self.count_ = 0  # values seen, for the running mean / std (Welford)
        self.mean_ = 0.0
        self.m2_ = 0.0
        self.sigma_ = 0.0  # std of the values before the last one
        self.raw_ = 0.0

    def _fit(self, ts: np.ndarray, values: np.ndarray) -> None:
        if values.ndim != 1:
            raise ValueError("pattern_knn is univariate")
        for v in values.tolist():
            self._score(0.0, v)

    def _score(self, ts: float, x: float) -> float:
        if self.push(x):
            self.raw_ = self.distance()
        raw = self.raw_
        return raw / (raw + self.alarm_distance)

    def push(self, x: float) -> bool:
        """Learn ``x`` (finite); True when it completed a block, so a new pattern can be searched."""
        n = self.count_
        sigma = math.sqrt(self.m2_ / n) if n > 0 and self.m2_ > 0.0 else 0.0
        self.sigma_ = sigma + 1e-9 * (abs(self.mean_) + 1.0)
        n += 1  # the running mean / std learn x after sigma_ was read: sigma is of the values before x
        d = x - self.mean_
        self.mean_ += d / n
        self.m2_ += d * (x - self.mean_)
        self.count_ = n
        s = self.step
        if s > 1:
            self.acc_ += x
            self.in_block_ += 1
            if self.in_block_ < s:
                return False
            x = self.acc_ / s
            self.acc_ = 0.0
            self.in_block_ = 0
        buf = self.buf_
        if self.n_ == len(buf):  # compact: keep what the next search reads
            keep = self._keep() - 1
            buf[:keep] = buf[self.n_ - keep : self.n_]
            self.n_ = keep
        buf[self.n_] = x
        self.n_ += 1
        return True

    def distance(self) -> float:
        """``raw`` of the latest block pattern against the past ones (0 until enough are seen)."""
        L, k = self.length, self.k
        n = self.n_
        m = min(self.patterns, n - 2 * L + 1)  # past patterns available
        if m < k or self.count_ <= self.step * L + self.min_points:
            return 0.0
        buf = self.buf_
        c0 = float(buf[n - 1])  # centre near the current values: no cancellation where it matters
        cur = buf[n - L : n] - c0
        past = buf[n - L - m - L + 1 : n - L] - c0  # m patterns, each `length` long, overlapping
        approx = np.correlate(past * past, self._ones, "valid") - 2.0 * np.correlate(past, cur, "valid")
        c = k + _SPARE
        cand = np.argpartition(approx, c - 1)[:c] if m > c else np.arange(m)
        diff = past[cand[:, None] + self._offsets]  # (candidates, length)
        diff -= cur
        diff *= diff
        exact = sorted(diff.sum(axis=1).tolist())  # a handful: Python sorts them faster than numpy
        near = sum(exact[:k]) / k
        return math.sqrt(near) / (self.sigma_ * math.sqrt(L))

    def _state(self) -> dict[str, Any]:
        live = self.buf_[max(0, self.n_ - self._keep()) : self.n_]
        return {
            "blocks": live.tolist(),
            "acc": self.acc_,
            "in_block": self.in_block_,
            "count": self.count_,
            "mean": self.mean_,
            "m2": self.m2_,
            "sigma": self.sigma_,
            "raw": self.raw_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        blocks = np.asarray(state["blocks"], dtype=float).ravel()
        if len(blocks) > self._keep():
            raise ValueError(f"state holds {len(blocks)} block values, more than this detector's {self._keep()}")
        self.buf_[: len(blocks)] = blocks
        self.n_ = len(blocks)
        self.acc_ = float(state["acc"])
        self.in_block_ = int(state["in_block"])
        self.count_ = int(state["count"])
        self.mean_ = float(state["mean"])
        self.m2_ = float(state["m2"])
        self.sigma_ = float(state["sigma"])
        self.raw_ = float(state["raw"])
