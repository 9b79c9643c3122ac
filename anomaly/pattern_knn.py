"""Pattern novelty: distance from the recent pattern to its nearest past patterns (kNN).

Why: the z-score views judge one value at a time, so a shape never seen before made of ordinary
values (a missing daily peak, a burst of unusual rhythm, a flat stretch on a busy series) passes
them; and a spike that comes back every day looks new to them every day. Comparing the whole
recent pattern with the patterns of the recent past (KNN-CAD's idea, Burnaev and Ishimtsev 2016)
answers both: a pattern like one already seen is near it, whatever its values.

Per point: the pattern ``p_t`` (shape ``(length,)``) is compared with the up to
``history - step * length`` past patterns that do not overlap it (held in a ring buffer, shape
``(history - step * length, length)``); ``raw = sqrt(mean of the k smallest squared distances) /
(sigma * sqrt(length))`` where ``sigma`` is the running standard deviation of every value before
``x_t``. So ``raw`` is a per-value distance in units of the series' own scale, comparable across
series. With ``step = 1`` the pattern is the last ``length`` values ``x[t-length+1 .. t]``; with
``step = s > 1`` it is ``length`` block means ``y[t - s*(length-1)], ..., y[t - s], y[t]`` where
``y_t`` is the mean of ``x[t-s+1 .. t]``: the shape of the last ``s * length`` points at a
coarser time scale, so a change that unfolds over tens of points (a missing daily peak, a new
rhythm) stands out of the point noise, which averages away, as does a lone spike.

Cost per point: one vectorised distance computation over the ring buffer (``O(history *
length)`` in numpy), about 10,000 points/s through ``update``. ``score_series`` on a fresh
detector computes the same distances in blocks (``batch_raw``), many times faster, and leaves the
same state behind (the NAB evaluation's path). Score: ``raw / (raw + alarm_distance)``, 0.5 at
``raw = alarm_distance``; :class:`anomaly.ensemble.EnsembleDetector` reads ``raw_`` instead and
calibrates it with the anomaly likelihood.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from anomaly._base import StreamingDetector, check_float, check_int

__all__ = ["PatternKnnDetector", "accepted_mask"]

_BLOCK = 512  # current patterns per block in batch_raw: a (block, block + history) distance matrix
_SPARE = 4  # candidates beyond k whose distances batch_raw recomputes exactly


def accepted_mask(ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Which points a fresh detector's ``update`` would score, and how many it would reject.

    The base class's rules: a time not after the last accepted one is rejected (counted); a
    NaN or infinite value is skipped (not counted).
    """
    ok = np.zeros(len(ts), dtype=bool)
    last: float | None = None
    rejected = 0
    for i, (t, v) in enumerate(zip(ts.tolist(), values.tolist())):
        if last is not None and not t > last:
            rejected += 1
        elif v - v == 0.0:
            ok[i] = True
            last = t
    return ok, rejected


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
        step: int = 1,
    ) -> None:
        super().__init__()
        self.length = check_int("length", length, 1)
        self.history = check_int("history", history, 2)
        self.step = check_int("step", step, 1)
        if self.history <= self.step * self.length:
            raise ValueError(f"history must exceed step * length ({self.step * self.length}), got {history}")
        self.k = check_int("k", k, 1)
        self.min_points = check_int("min_points", min_points, 0)
        self.alarm_distance = check_float("alarm_distance", alarm_distance, 0.0, open_low=True)
        self._reset()

    @property
    def _span(self) -> int:
        """Points a pattern covers, ``step * length``."""
        return self.step * self.length

    def _keep(self) -> int:
        """Block means kept: the current pattern's and the one that just left the overlap."""
        return self.step * (2 * self.length - 1) + 2

    def _reset(self) -> None:
        super()._reset()
        cap = self.history - self._span
        self.ref_ = np.zeros((cap, self.length))  # past patterns, ring buffer
        self.diff_ = np.empty((cap, self.length))  # scratch for the distances, no allocation per point
        self.cur_ = np.empty(self.length)
        self.filled_ = 0
        self.pos_ = 0  # next ring slot
        self.block_: deque[float] = deque(maxlen=self.step)  # the last `step` values
        self.last_: deque[float] = deque(maxlen=self._keep())  # block means (the values if step 1)
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
        L, s = self.length, self.step
        last = self.last_
        if s == 1:
            last.append(x)
        else:
            block = self.block_
            block.append(x)
            if len(block) < s:
                self.raw_ = 0.0
                return 0.0
            acc = 0.0
            for v in block:  # left to right, as batch_raw adds them
                acc += v
            last.append(acc / s)
        full = len(last) == last.maxlen
        buf = list(last)
        if full:  # the pattern ending step * length + 1 points ago no longer overlaps ours
            self.ref_[self.pos_] = buf[: s * (L - 1) + 1 : s]
            self.pos_ = (self.pos_ + 1) % len(self.ref_)
            if self.filled_ < len(self.ref_):
                self.filled_ += 1
        raw = 0.0
        m = self.filled_
        if t >= s * L + self.min_points and m >= self.k:
            cur = self.cur_
            cur[:] = buf[len(buf) - 1 - s * (L - 1) :: s]
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

    # -- batch path ---------------------------------------------------------------------------
    def batch_raw(self, x: np.ndarray) -> np.ndarray:
        """``raw_`` after each of ``x`` (shape ``(n,)``, all finite) streamed into a fresh detector.

        Same distances as ``_score``, computed a block of current patterns at a time against
        every past pattern they may see (masked outside ``[j - history, j - step * length)``),
        so it costs numpy time rather than Python time per point.
        """
        x = np.asarray(x, dtype=float)
        n, L, H, k, s = len(x), self.length, self.history, self.k, self.step
        span = s * L
        out = np.zeros(n)
        if n < span:
            return out
        # sigma before x_t: population std of x[:t], shifted by x[0] against cancellation
        y = x - x[0]
        cnt = np.arange(1, n + 1, dtype=float)
        mean = np.cumsum(y) / cnt
        var = np.maximum(np.cumsum(y * y) / cnt - mean * mean, 0.0)
        sigma = np.empty(n)
        sigma[0] = 0.0
        sigma[1:] = np.sqrt(var[:-1])
        sigma += 1e-9 * (np.abs(np.concatenate([[0.0], mean[:-1] + x[0]])) + 1.0)
        means = self._block_means(x)  # means[i] is y at t = i + step - 1
        # win[j] (shape (length,)) is the pattern ending at t = j + step * length - 1
        win = np.lib.stride_tricks.sliding_window_view(means, s * (L - 1) + 1)[:, ::s]
        first_t = span + self.min_points
        for a in range(0, len(win), _BLOCK):
            b = min(a + _BLOCK, len(win))
            lo = max(0, a - H)
            hi = b - span  # past patterns index < j - step * length
            if hi <= lo:
                continue
            j = np.arange(a, b)
            t = j + span - 1
            avail = np.minimum(np.maximum(j - span, 0), H - span)  # patterns in the ring at t
            use = (t >= first_t) & (avail >= k)
            if not use.any():
                continue
            j, t = j[use], t[use]
            # candidates by BLAS (|c|^2 + |r|^2 - 2 c.r on values centred in the block), then
            # exact distances for the few best, so near-ties and flat series stay exact
            c0 = float(means[lo : b + s * (L - 1)].mean())
            ref = win[lo:hi] - c0
            cur = win[j] - c0
            d = cur @ ref.T
            d *= -2.0
            d += (cur * cur).sum(1)[:, None]
            d += (ref * ref).sum(1)[None, :]
            # outside the ring (history - step * length patterns): the mask depends on j - i only
            np.putmask(d, self._band(j - lo), np.inf)
            m = min(k + _SPARE, d.shape[1])
            cand = np.argpartition(d, m - 1, axis=1)[:, :m]  # (rows, m) indices into ref
            exact = ((ref[cand] - cur[:, None, :]) ** 2).sum(axis=2)
            exact[~np.isfinite(np.take_along_axis(d, cand, axis=1))] = np.inf
            near = np.sort(exact, axis=1)[:, :k].mean(axis=1)
            out[t] = np.sqrt(near) / (sigma[t] * math.sqrt(L))
        return out

    def _block_means(self, x: np.ndarray) -> np.ndarray:
        """Means of ``step`` consecutive values, shape ``(n - step + 1,)``; ``x`` itself if step 1.

        Added left to right in the same order as ``_score`` adds them, so both agree exactly.
        """
        s = self.step
        if s == 1:
            return x
        acc = x[: len(x) - s + 1].copy()
        for i in range(1, s):
            acc += x[i : len(x) - s + 1 + i]
        return acc / s

    def _band(self, rows: np.ndarray) -> np.ndarray:
        """Mask of past patterns outside the ring for consecutive current patterns ``rows`` (j - lo).

        It depends on ``j - i`` only, so every full block shares one (cached, a few kept).
        """
        key = (rows[0], len(rows))
        cache = self.__dict__.setdefault("_bands", {})
        if key not in cache:
            if len(cache) > 8:
                cache.clear()
            off = rows[:, None] - np.arange(rows[-1] + 1)[None, :]  # j - i
            width = max(rows[-1] - self._span + 1, 0)  # columns lo .. hi - 1 used by the block
            cache[key] = ((off > self.history) | (off <= self._span))[:, :width]
        return cache[key]

    def absorb(self, x: np.ndarray, raws: np.ndarray) -> None:
        """Set the learned state as if ``x`` (finite, shape ``(n,)``) had been streamed in."""
        x = np.asarray(x, dtype=float)
        n, L, s, span = len(x), self.length, self.step, self._span
        self._reset_learned()
        if n == 0:
            return
        cap = len(self.ref_)
        means = self._block_means(x) if n >= s else x[:0]
        starts = np.arange(max(0, n - 2 * span - cap), n - 2 * span)  # patterns that left the overlap
        if len(starts):
            win = np.lib.stride_tricks.sliding_window_view(means, s * (L - 1) + 1)[:, ::s]
            ring = win[starts]
            self.ref_[: len(ring)] = ring
            self.filled_ = len(ring)
            self.pos_ = len(ring) % cap
        self.last_.extend(means[-self._keep() :].tolist())
        if s > 1:
            self.block_.extend(x[-s:].tolist())
        self.count_ = n
        self.mean_ = float(x.mean())
        self.m2_ = float(((x - self.mean_) ** 2).sum())
        self.raw_ = float(raws[-1])

    def _reset_learned(self) -> None:
        self.ref_[:] = 0.0
        self.filled_ = 0
        self.pos_ = 0
        self.last_.clear()
        self.block_.clear()
        self.count_ = 0
        self.mean_ = 0.0
        self.m2_ = 0.0
        self.raw_ = 0.0

    def is_fresh(self) -> bool:
        """Nothing learned or scored yet (the batch path applies)."""
        return self.count_ == 0 and self.last_ts_ is None and self.rejected_ == 0

    def score_series(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """As ``update`` over the arrays; batched (``batch_raw``) on a fresh detector."""
        ts = np.asarray(ts, dtype=float)
        values = np.asarray(values, dtype=float)
        if not self.is_fresh() or values.ndim != 1:
            return super().score_series(ts, values)
        ok, rejected = accepted_mask(ts, values)
        x = values[ok]
        raws = self.batch_raw(x)
        scores = raws / (raws + self.alarm_distance)
        out = np.zeros(len(ts))
        if len(x):
            idx = np.flatnonzero(ok)
            out[idx] = scores
            # a rejected point repeats the last accepted score (0 before any)
            pos = np.maximum.accumulate(np.where(ok, np.arange(len(ts)), -1))
            out = np.where(pos >= 0, out[np.maximum(pos, 0)], 0.0)
            self.absorb(x, raws)
            self.last_ts_ = float(ts[idx[-1]])
            self.last_score_ = float(scores[-1])
            self.n_seen_ = len(x)
        self.rejected_ = rejected
        return out

    def _state(self) -> dict[str, Any]:
        # the ring in age order, oldest first, so a restore needs no slot bookkeeping
        if self.filled_ < len(self.ref_):
            ring = self.ref_[: self.filled_]
        else:
            ring = np.concatenate([self.ref_[self.pos_ :], self.ref_[: self.pos_]])
        return {
            "ref": ring.tolist(),
            "last": list(self.last_),
            "block": list(self.block_),
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
        self.last_ = deque((float(v) for v in state["last"]), maxlen=self._keep())
        self.block_ = deque((float(v) for v in state["block"]), maxlen=self.step)
        self.count_ = int(state["count"])
        self.mean_ = float(state["mean"])
        self.m2_ = float(state["m2"])
        self.raw_ = float(state["raw"])
