"""Per-series seasonal baselines: robust, learned from history, kept clean, saved and restored.

Why: a latency of 80 ms can be normal at 14:00 on a Monday and alarming at 03:00 on a Sunday, and
one incident in the history must not teach the baseline that incidents are normal. So:

* Seasonality: one bucket per hour of day (``season="hour_of_day"``, 24 buckets), per hour of
  week (``"hour_of_week"``, 168 buckets), or a single bucket (``"none"``). Buckets use UTC.
* Robustness: each bucket keeps its median, MAD and high quantile (p99 by default), not a mean and
  a standard deviation, so a few outliers move nothing.
* Learning: ``fit(history, exclude=...)`` computes exact statistics from a pandas Series or the
  store's ``ts,value`` DataFrame, leaving out the excluded (anomalous) intervals; ``observe``
  then follows slow drifts online with stochastic-approximation quantile updates (O(1)), and the
  detectors call it only for points they did not flag, which keeps the baseline free of the
  anomalies it is used to find.
* A bucket with fewer than ``min_points`` points falls back to the global bucket, and a fuller
  one has its spread shrunk towards the pooled within-bucket spread (``prior_weight``
  pseudo-points), since a bucket's tail is noisy.
* ``state_dict``/``load_state_dict`` and ``save``/``load`` (JSON) carry it across restarts.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from anomaly._base import as_history, check_float, check_int

__all__ = ["SEASONS", "BaselineStats", "SeasonalBaseline"]

SEASONS: dict[str, int] = {"none": 1, "hour_of_day": 24, "hour_of_week": 168}
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class BaselineStats:
    """Expected behaviour at one time: ``sigma`` is ``1.4826 * mad`` (a robust std)."""

    median: float
    mad: float
    high: float
    count: int

    @property
    def sigma(self) -> float:
        return _MAD_TO_SIGMA * self.mad


def bucket_of(ts: float, season: str) -> int:
    """The season bucket of a UTC timestamp in seconds (1970-01-01 was a Thursday)."""
    if season == "none":
        return 0
    hour = int(ts // 3600.0)
    if season == "hour_of_day":
        return hour % 24
    return ((hour // 24 + 3) % 7) * 24 + hour % 24


class SeasonalBaseline:
    """Robust seasonal baseline of one series (see the module docstring)."""

    def __init__(
        self,
        *,
        season: str = "hour_of_day",
        quantile: float = 0.99,
        min_points: int = 30,
        learning_rate: float = 0.02,
        prior_weight: float = 100.0,
    ) -> None:
        if season not in SEASONS:
            raise ValueError(f"season must be one of {sorted(SEASONS)}, got {season!r}")
        self.season = season
        self.quantile = check_float("quantile", quantile, 0.5, 1.0, open_low=True)
        if self.quantile >= 1.0:
            raise ValueError(f"quantile must be below 1, got {quantile}")
        self.min_points = check_int("min_points", min_points, 2)
        self.learning_rate = check_float("learning_rate", learning_rate, 0.0, 1.0, open_low=True)
        self.prior_weight = check_float("prior_weight", prior_weight, 0.0)
        self._reset()

    def _reset(self) -> None:
        n = SEASONS[self.season] + 1  # last slot is the global bucket
        self.median_ = [math.nan] * n
        self.mad_ = [math.nan] * n
        self.high_ = [math.nan] * n
        self.count_ = [0] * n
        self.seed_: list[list[float]] = [[] for _ in range(n)]  # first points, until min_points
        self.pooled_mad_ = math.nan  # median over ready buckets of their MAD
        self.pooled_tail_ = math.nan  # median over ready buckets of (high - median)
        self.since_pool_ = 0

    # -- learning -------------------------------------------------------------------------------
    def fit(self, history: Any, *, exclude: Sequence[tuple[float, float]] = ()) -> Self:
        """Exact statistics from history, leaving out ``exclude`` intervals ``[(start_s, end_s)]``.

        ``history``: a Series indexed by time, a DataFrame with ``ts``/``timestamp`` and ``value``
        columns, or ``(ts, values)`` arrays shape ``(n,)``.
        """
        self._reset()
        ts, vals = as_history(history)
        if vals.ndim != 1:
            raise ValueError("history for a baseline must be univariate")
        keep = np.ones(len(ts), dtype=bool)
        for a, b in exclude:
            keep &= ~((ts >= a) & (ts <= b))
        ts, vals = ts[keep], vals[keep]
        g = SEASONS[self.season]
        buckets = np.array([bucket_of(t, self.season) for t in ts.tolist()], dtype=np.int64)
        for k in range(g + 1):
            v = vals if k == g else vals[buckets == k]
            self._set_exact(k, v)
        self._pool()
        return self

    def _pool(self) -> None:
        """Within-bucket spread pooled over the seasonal buckets (the shrinkage target)."""
        g = len(self.count_) - 1
        ready = [k for k in range(g) if self.median_[k] == self.median_[k] and self.count_[k] >= self.min_points]
        if ready:
            self.pooled_mad_ = float(np.median([self.mad_[k] for k in ready]))
            self.pooled_tail_ = float(np.median([self.high_[k] - self.median_[k] for k in ready]))
        else:
            self.pooled_mad_ = self.pooled_tail_ = math.nan
        self.since_pool_ = 0

    def _set_exact(self, k: int, v: np.ndarray) -> None:
        self.count_[k] = int(len(v))
        if len(v) >= self.min_points:
            med = float(np.median(v))
            self.median_[k] = med
            self.mad_[k] = float(np.median(np.abs(v - med)))
            self.high_[k] = float(np.quantile(v, self.quantile))
            self.seed_[k] = []
        else:
            self.seed_[k] = [float(x) for x in v]

    def observe(self, ts: float, value: float, weight: float = 1.0) -> None:
        """Learn one point online.

        Detectors pass ``weight=1`` for points they did not flag and a small weight (say 0.05)
        for flagged ones: an incident then barely moves the baseline, yet a lasting change of
        regime is learned in the end instead of alarming forever.
        """
        if value != value or value in (math.inf, -math.inf):
            return
        self._observe(bucket_of(ts, self.season), value, weight)
        if self.season != "none":
            self._observe(len(self.count_) - 1, value, weight)
            self.since_pool_ += 1
            if self.since_pool_ >= 500:
                self._pool()

    def _observe(self, k: int, x: float, weight: float = 1.0) -> None:
        self.count_[k] += 1
        seed = self.seed_[k]
        if self.median_[k] != self.median_[k]:  # still seeding
            seed.append(x)
            if len(seed) >= self.min_points:
                self._set_exact(k, np.asarray(seed))
            return
        med, mad, high = self.median_[k], self.mad_[k], self.high_[k]
        # Step proportional to the bucket's own scale, so the rate is unit-free.
        scale = max(mad, abs(med) * 1e-3, 1e-12)
        step = self.learning_rate * scale * weight
        q = self.quantile
        self.median_[k] = med + (step * 0.5 if x > med else -step * 0.5 if x < med else 0.0)
        dev = abs(x - med)
        self.mad_[k] = max(0.0, mad + (step * 0.5 if dev > mad else -step * 0.5))
        # Stochastic-approximation quantile: up a full step on an exceedance, down by
        # (1-q)/q of one otherwise, which balances exactly when P(x > high) = 1 - q.
        self.high_[k] = high + (step if x > high else -step * (1.0 - q) / q)

    # -- reading ----------------------------------------------------------------------------------
    def expected(self, ts: float) -> BaselineStats | None:
        """Statistics at ``ts``: the bucket's, its spread shrunk towards the global one; or None.

        A bucket holds a few points per day or week, so its MAD and tail are noisy: they (the
        MAD and the distance from median to ``high``) are blended with their medians over all
        ready buckets with weight ``n / (n + prior_weight)`` (empirical-Bayes shrinkage); the
        median is the bucket's own. A bucket with fewer than ``min_points`` uses the global statistics.
        """
        got = self.lookup(ts)
        if got is None:
            return None
        k = bucket_of(ts, self.season)
        n = self.count_[k] if self.count_[k] >= self.min_points else self.count_[-1]
        return BaselineStats(got[0], got[1], got[2], n)

    @property
    def ready(self) -> bool:
        """Whether the global bucket has its ``min_points`` seed: before that, nothing is
        scored, and whatever arrives (an incident included) is learned as normal."""
        return self.median_[-1] == self.median_[-1]

    def lookup(self, ts: float) -> tuple[float, float, float] | None:
        """``(median, mad, high)`` as ``expected`` gives them, without building an object (hot path)."""
        g = len(self.count_) - 1
        k = bucket_of(ts, self.season)
        gm = self.median_[g]
        bm = self.median_[k]
        if self.count_[k] < self.min_points or bm != bm or k == g:
            if gm != gm:
                return None
            return gm, self.mad_[g], self.high_[g]
        pm = self.pooled_mad_
        if pm != pm or self.prior_weight == 0.0:
            return bm, self.mad_[k], self.high_[k]
        n = self.count_[k]
        w = n / (n + self.prior_weight)
        v = 1.0 - w
        # The season moves the level, so the bucket's median stands; the spread and the tail's
        # distance above the median are shrunk towards their pooled within-bucket values.
        return bm, w * self.mad_[k] + v * pm, bm + w * (self.high_[k] - bm) + v * self.pooled_tail_

    # -- persistence -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (NaN written as None)."""

        def clean(xs: list[float]) -> list[float | None]:
            return [None if x != x else x for x in xs]

        return {
            "params": {
                "season": self.season,
                "quantile": self.quantile,
                "min_points": self.min_points,
                "learning_rate": self.learning_rate,
                "prior_weight": self.prior_weight,
            },
            "median": clean(self.median_),
            "mad": clean(self.mad_),
            "high": clean(self.high_),
            "count": list(self.count_),
            "seed": [list(s) for s in self.seed_],
            "since_pool": self.since_pool_,
            "pooled": clean([self.pooled_mad_, self.pooled_tail_]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Self:
        """Restore ``state_dict()`` output; ``ValueError`` if its season layout differs."""
        if state["params"]["season"] != self.season:
            raise ValueError(f"state has season {state['params']['season']!r}, baseline has {self.season!r}")

        def dirty(xs: list[float | None]) -> list[float]:
            return [math.nan if x is None else float(x) for x in xs]

        self.median_ = dirty(state["median"])
        self.mad_ = dirty(state["mad"])
        self.high_ = dirty(state["high"])
        self.count_ = [int(c) for c in state["count"]]
        self.seed_ = [[float(x) for x in s] for s in state["seed"]]
        pooled = state["pooled"]
        self.pooled_mad_ = math.nan if pooled[0] is None else float(pooled[0])
        self.pooled_tail_ = math.nan if pooled[1] is None else float(pooled[1])
        self.since_pool_ = int(state["since_pool"])
        return self

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state as JSON atomically (a crash never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.state_dict(), fh)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SeasonalBaseline":
        """Read a baseline written by ``save``."""
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
        return cls(**state["params"]).load_state_dict(state)
