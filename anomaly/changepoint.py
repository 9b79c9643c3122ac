"""Changepoint: a two-window mean-shift test (Gaussian GLR), robust to spikes and slow seasons.

Why two windows: the question is "is the level of the last ``recent`` points different from the
level of the ``reference`` points just before them?". For Gaussian noise of scale ``sigma`` the
generalised likelihood ratio of that mean shift is ``t**2 / 2`` with
``t = (mean_recent - mean_ref) / (sigma * sqrt(1/recent + 1/reference))``, so ``|t|`` is the test
statistic. Comparing with the *adjacent* window (not a long-run mean) makes a slow daily season
invisible, while an abrupt shift shows at once. Robustness: each point enters the windows
clipped to ``mean_ref +- z_clip * sigma`` so that one spike moves the recent mean by at most
``z_clip * sigma / recent``; ``sigma`` comes from successive differences
(``mean|dx| * sqrt(pi) / 2``), which a level shift barely moves, learned only from points
scored below ``gate``.

Per point O(1) (running sums over two ring buffers). Score ``= |t| / (|t| + t_alarm)``: 0.5 at
``|t| = t_alarm``. ``changepoints_`` counts upward crossings of 0.5.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from anomaly._base import StreamingDetector, check_float, check_int

__all__ = ["ChangepointDetector"]

_DIFF_TO_SIGMA = math.sqrt(math.pi) / 2.0  # E|x_t - x_{t-1}| = 2 sigma / sqrt(pi) for iid noise


class ChangepointDetector(StreamingDetector):
    """Two-window mean-shift test with spike clipping (univariate)."""

    name = "changepoint"

    def __init__(
        self,
        *,
        recent: int = 10,
        reference: int = 60,
        t_alarm: float = 6.0,
        z_clip: float = 4.0,
        alpha: float = 0.02,
        gate: float = 0.3,
        min_sigma: float = 1e-9,
    ) -> None:
        super().__init__()
        self.recent = check_int("recent", recent, 1)
        self.reference = check_int("reference", reference, 2)
        self.t_alarm = check_float("t_alarm", t_alarm, 0.0, open_low=True)
        self.z_clip = check_float("z_clip", z_clip, 0.0, open_low=True)
        self.alpha = check_float("alpha", alpha, 0.0, 1.0, open_low=True)
        self.gate = check_float("gate", gate, 0.0, 1.0)
        self.min_sigma = check_float("min_sigma", min_sigma, 0.0)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.recent_: deque[float] = deque()
        self.ref_: deque[float] = deque()
        self.rsum_ = 0.0
        self.fsum_ = 0.0
        self.absdiff_: float | None = None  # EW mean of |dx|
        self.prev_: float | None = None
        self.n_diffs_ = 0
        self.changepoints_ = 0

    def _fit(self, ts: np.ndarray, values: np.ndarray) -> None:
        if values.ndim != 1:
            raise ValueError("changepoint is univariate")
        for v in values.tolist():
            self._score(0.0, v)

    def _sigma(self) -> float:
        a = self.absdiff_
        s = 0.0 if a is None else a * _DIFF_TO_SIGMA
        floor = self.min_sigma
        return s if s > floor else floor

    def _score(self, ts: float, x: float) -> float:
        prev = self.prev_
        self.prev_ = x
        d = None if prev is None else abs(x - prev)
        ref, rec = self.ref_, self.recent_
        score = 0.0
        if len(ref) >= self.reference:
            mref = self.fsum_ / len(ref)
            sigma = self._sigma()
            lim = self.z_clip * sigma
            xc = mref + lim if x > mref + lim else mref - lim if x < mref - lim else x
        else:
            xc = x
        rec.append(xc)
        self.rsum_ += xc
        if len(rec) > self.recent:
            old = rec.popleft()
            self.rsum_ -= old
            ref.append(old)
            self.fsum_ += old
            if len(ref) > self.reference:
                self.fsum_ -= ref.popleft()
        if len(ref) >= self.reference and len(rec) == self.recent:
            sigma = self._sigma()
            se = sigma * math.sqrt(1.0 / self.recent + 1.0 / self.reference)
            t = abs(self.rsum_ / self.recent - self.fsum_ / len(ref)) / se
            score = t / (t + self.t_alarm)
            if score >= 0.5 and self.last_score_ < 0.5:
                self.changepoints_ += 1
        if d is not None and (score < self.gate or self.absdiff_ is None):
            self.n_diffs_ += 1
            a = self.absdiff_
            # running mean for the first 1/alpha differences, then exponential forgetting
            rate = max(self.alpha, 1.0 / self.n_diffs_)
            self.absdiff_ = d if a is None else a + rate * (d - a)
        return score

    def _state(self) -> dict[str, Any]:
        return {
            "recent": list(self.recent_),
            "ref": list(self.ref_),
            "absdiff": self.absdiff_,
            "prev": self.prev_,
            "n_diffs": self.n_diffs_,
            "changepoints": self.changepoints_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.recent_ = deque(float(v) for v in state["recent"])
        self.ref_ = deque(float(v) for v in state["ref"])
        self.rsum_ = math.fsum(self.recent_)
        self.fsum_ = math.fsum(self.ref_)
        self.absdiff_ = state["absdiff"]
        self.prev_ = state["prev"]
        self.n_diffs_ = int(state["n_diffs"])
        self.changepoints_ = int(state["changepoints"])
