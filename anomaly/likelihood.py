"""Windowed z-score ensemble with NAB's anomaly-likelihood post-processing (the NAB detector).

Why: a raw z-score is not comparable across series (NAB sweeps one threshold over the whole
corpus) and fires again and again during one incident. The anomaly likelihood
(:class:`anomaly.postprocess.AnomalyLikelihood`) makes it comparable, a refractory period
(:class:`anomaly.postprocess.Refractory`) makes one incident one alarm.

Raw score per point: the largest of ``min(|z|, z_cap) / z_cap`` over four views, each z taken
against the previous ``window`` values of that view (O(1): ring buffers with running sums):

* the value itself (level anomalies, spikes);
* the first difference (abrupt jumps on a drifting level);
* the seasonal difference ``x_t - x_{t - lag}`` with ``lag`` = ``season_s`` seconds at the
  sampling interval measured on the first 20 points (a changed daily pattern), when
  ``2 <= lag <= max_lag``;
* ``log1p(x)`` while the series has been non-negative (counts and rates: multiplicative bursts).

The standard deviation is floored at ``min_std * (|mean| + 1)`` so a flat series that moves by a
hair is not an infinite z. Hyper-parameters were tuned once on the NAB development split (51
files) and are the same for every file, as NAB requires.
"""

from __future__ import annotations

import math
from collections import deque
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
        long: int = 2000,
        z_cap: float = 16.0,
        warmup: int = 300,
        alarm: float = 0.5,
        refractory: int = 200,
        min_std: float = 1e-3,
        use_diff: bool = True,
        season_s: float = 86400.0,
        max_lag: int = 2000,
        log_view: bool = True,
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
        for flag, val in (("use_diff", use_diff), ("log_view", log_view)):
            if not isinstance(val, bool):
                raise ValueError(f"{flag} must be a bool, got {val!r}")
        self.use_diff = use_diff
        self.season_s = check_float("season_s", season_s, 0.0)
        self.max_lag = check_int("max_lag", max_lag, 2)
        self.log_view = log_view
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.values_ = RunningWindow(self.window)
        self.diffs_ = RunningWindow(self.window)
        self.sdiffs_ = RunningWindow(self.window)
        self.logs_ = RunningWindow(self.window)
        self.likelihood_ = AnomalyLikelihood(short=self.short, long=self.long, warmup=self.warmup)
        self.refractory_ = Refractory(alarm=self.alarm, quiet=self.refractory)
        self.prev_: float | None = None
        self.prev_ts_: float | None = None
        self.steps_: list[float] = []  # first sampling intervals, to find the season's lag
        self.lag_ = 0  # 0: not known yet, -1: no seasonal view
        self.hist_: deque[float] = deque()  # the last `lag` values
        self.negative_ = False  # seen a negative value: no log view

    def _view(self, w: RunningWindow, x: float, raw: float) -> float:
        """Score ``x`` against view ``w``, learn it, return the larger of that and ``raw``.

        Hot path (four calls per point): written out inline rather than through
        ``RunningWindow`` methods, which halves its cost.
        """
        buf = w.buf
        n = len(buf)
        s = w.s
        ss = w.ss
        if n >= 2:
            m = s / n
            var = ss / n - m * m
            sd = math.sqrt(var) if var > 0.0 else 0.0
            floor = self.min_std * (abs(m) + 1.0)
            if sd < floor:
                sd = floor
            r = abs(x - m) / (sd * self.z_cap)
            if r > raw:
                raw = 1.0 if r > 1.0 else r
        buf.append(x)
        s += x
        ss += x * x
        if n >= w.n:
            old = buf.popleft()
            s -= old
            ss -= old * old
        w.s = s
        w.ss = ss
        w.k += 1
        if w.k >= 10000:  # re-sum now and then so float error cannot build up
            w.load(list(buf))
        return raw

    def _find_lag(self, ts: float) -> None:
        if self.prev_ts_ is not None:
            self.steps_.append(ts - self.prev_ts_)
        self.prev_ts_ = ts
        if len(self.steps_) >= 20:
            step = sorted(self.steps_)[len(self.steps_) // 2]
            lag = int(round(self.season_s / step)) if step > 0 else 0
            self.lag_ = lag if 2 <= lag <= self.max_lag else -1

    def _score(self, ts: float, x: float) -> float:
        raw = self._view(self.values_, x, 0.0)
        prev = self.prev_
        if prev is not None and self.use_diff:
            raw = self._view(self.diffs_, x - prev, raw)
        self.prev_ = x
        if self.season_s > 0.0:
            if self.lag_ == 0:
                self._find_lag(ts)
            elif self.lag_ > 0:
                h = self.hist_
                if len(h) >= self.lag_:
                    raw = self._view(self.sdiffs_, x - h.popleft(), raw)
                h.append(x)
        if self.log_view and not self.negative_:
            if x < 0.0:
                self.negative_ = True
            else:
                raw = self._view(self.logs_, math.log1p(x), raw)
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
            "sdiffs": self.sdiffs_.state(),
            "logs": self.logs_.state(),
            "likelihood": self.likelihood_.state(),
            "refractory_left": self.refractory_.left_,
            "prev": self.prev_,
            "prev_ts": self.prev_ts_,
            "steps": list(self.steps_),
            "lag": self.lag_,
            "hist": list(self.hist_),
            "negative": self.negative_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.values_.load(state["values"])
        self.diffs_.load(state["diffs"])
        self.sdiffs_.load(state["sdiffs"])
        self.logs_.load(state["logs"])
        self.likelihood_.load(state["likelihood"])
        self.refractory_.left_ = int(state["refractory_left"])
        self.prev_ = state["prev"]
        self.prev_ts_ = state["prev_ts"]
        self.steps_ = [float(s) for s in state["steps"]]
        self.lag_ = int(state["lag"])
        self.hist_ = deque(float(v) for v in state["hist"])
        self.negative_ = bool(state["negative"])
