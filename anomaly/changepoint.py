"""Changepoint: two-sided CUSUM of clipped, standardised residuals, restarting after a change.

Why CUSUM rather than full Bayesian online changepoint detection: it is the optimal sequential
test for a mean shift of known size (Page, 1954; Lorden, 1971), it is O(1) per point where BOCPD
is O(run length), and clipping each standardised residual at ``z_clip`` makes it robust: a lone
spike adds at most ``z_clip - k`` to the statistic, below the alarm level ``h``.

Per point: ``z = clip((x - mu) / sigma, -z_clip, z_clip)``; ``S+ = max(0, S+ + z - k)``,
``S- = max(0, S- - z - k)``; score ``= S / (S + h)`` with ``S = max(S+, S-)`` (0.5 at the alarm
level). The reference ``(mu, sigma)`` is an exponentially weighted mean and mean absolute
deviation, learned only from points scored below ``gate``. When ``S`` passes ``confirm * h`` the
change is confirmed: ``changepoints_`` counts it, the statistics reset and the reference restarts
from the new segment (first ``relearn`` points learned with a fast running mean, scored 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anomaly._base import StreamingDetector, check_float, check_int

__all__ = ["ChangepointDetector"]

_MAD_TO_SIGMA = 1.2533  # mean absolute deviation -> std for Gaussian noise (sqrt(pi/2))


class ChangepointDetector(StreamingDetector):
    """Two-sided CUSUM mean-shift detector with segment restart (univariate)."""

    name = "changepoint"

    def __init__(
        self,
        *,
        k: float = 0.5,
        h: float = 8.0,
        z_clip: float = 4.0,
        alpha: float = 0.01,
        relearn: int = 30,
        confirm: float = 3.0,
        gate: float = 0.3,
        min_sigma: float = 1e-6,
    ) -> None:
        super().__init__()
        self.k = check_float("k", k, 0.0)
        self.h = check_float("h", h, 0.0, open_low=True)
        self.z_clip = check_float("z_clip", z_clip, 0.0, open_low=True)
        self.alpha = check_float("alpha", alpha, 0.0, 1.0, open_low=True)
        self.relearn = check_int("relearn", relearn, 2)
        self.confirm = check_float("confirm", confirm, 1.0)
        self.gate = check_float("gate", gate, 0.0, 1.0)
        self.min_sigma = check_float("min_sigma", min_sigma, 0.0)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.mu_ = 0.0
        self.mad_ = 0.0
        self.seg_n_ = 0
        self.pos_ = 0.0
        self.neg_ = 0.0
        self.changepoints_ = 0

    def _fit(self, ts: np.ndarray, values: np.ndarray) -> None:
        if values.ndim != 1:
            raise ValueError("changepoint is univariate")
        if len(values):
            tail = values[-max(self.relearn, int(3 / self.alpha)) :]
            self.mu_ = float(np.median(tail))
            self.mad_ = float(np.mean(np.abs(tail - self.mu_)))
            self.seg_n_ = len(tail)

    def _learn(self, x: float, rate: float) -> None:
        dev = abs(x - self.mu_)
        self.mu_ += rate * (x - self.mu_)
        self.mad_ += rate * (dev - self.mad_)

    def _score(self, ts: float, x: float) -> float:
        n = self.seg_n_
        if n < self.relearn:
            # Learning a new segment: running mean (rate 1/n), no score yet.
            self.seg_n_ = n + 1
            if n == 0:
                self.mu_, self.mad_ = x, 0.0
            else:
                self._learn(x, 1.0 / (n + 1))
            return 0.0
        sigma = _MAD_TO_SIGMA * self.mad_
        floor = max(self.min_sigma, 1e-9 * abs(self.mu_))
        if sigma < floor:
            sigma = floor
        z = (x - self.mu_) / sigma
        c = self.z_clip
        z = c if z > c else -c if z < -c else z
        p = self.pos_ + z - self.k
        q = self.neg_ - z - self.k
        self.pos_ = p = p if p > 0.0 else 0.0
        self.neg_ = q = q if q > 0.0 else 0.0
        s = p if p > q else q
        score = s / (s + self.h)
        if s >= self.confirm * self.h:
            self.changepoints_ += 1
            self.pos_ = self.neg_ = 0.0
            self.seg_n_ = 1
            self.mu_, self.mad_ = x, self.mad_  # keep the noise scale, restart the level
        elif score < self.gate:
            self._learn(x, self.alpha)
        return score

    def _state(self) -> dict[str, Any]:
        return {
            "mu": self.mu_,
            "mad": self.mad_,
            "seg_n": self.seg_n_,
            "pos": self.pos_,
            "neg": self.neg_,
            "changepoints": self.changepoints_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.mu_ = float(state["mu"])
        self.mad_ = float(state["mad"])
        self.seg_n_ = int(state["seg_n"])
        self.pos_ = float(state["pos"])
        self.neg_ = float(state["neg"])
        self.changepoints_ = int(state["changepoints"])
