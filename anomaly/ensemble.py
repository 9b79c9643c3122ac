"""NAB ensemble: z-score views, pattern novelty at two time scales (kNN) and NAB's spatial rule,
made comparable by the anomaly likelihood, combined by ``max``, then one refractory period that
extends while it fires. Optionally a changepoint test and a P99 CUSUM join.

Why an ensemble: each raw detector is blind somewhere. The windowed z-score views
(:class:`anomaly.likelihood.LikelihoodDetector`) see spikes and jumps but forgive a level that
settles; the pattern kNN (:class:`anomaly.pattern_knn.PatternKnnDetector`) sees a shape never
seen before made of ordinary values. Their raw scores live on different scales, so each goes
through its own :class:`anomaly.postprocess.AnomalyLikelihood` (a tail probability, comparable
across detectors and series) before the ``max``: the "max of calibrated scores" of NAB's
ensembles. The two-window changepoint test and the seasonal P99 CUSUM can join
(``use_changepoint``, ``use_p99``); on NAB they did not pay (see ``benchmarks/nab_scores.py``).

Why two kNN time scales: the novelty stream compares patterns of ``length`` block means of
``knn_step`` points (8 means of 4: the shape of the last 32 points), so a change that unfolds
over tens of points stands out of point noise, which averages away; point-sized news (a spike)
is the views' and the spatial rule's job. It searches once per block and holds its distance in
between (calibrated every point). The point-scale kNN (8 values) only gates the views: a value
far from the window's mean is not news when the whole recent pattern has been seen before (a
spike that comes every day). The views' calibrated score is multiplied by ``clip(knn_raw /
knn_gate, gate_floor, 1)``: up to halved while the pattern's distance to its nearest past
patterns is under ``knn_gate`` (in the series' standard deviations per value). The gate can only
lower a score, so it is searched only where the views reach the alarm (it could not stop an
alarm below it, and NAB's threshold sweep settles at the alarm, 0.5): below, the views' score
goes out undamped. ``knn_gate=0`` turns the gate off; ``knn_step=1`` makes the point-scale kNN the
novelty stream too (searched every point, the ensemble before the two scales: slow).

Why the spatial rule: NAB's own HTM detector (``numenta_detector.py``) raises the score of any
value beyond the range seen so far, widened by ``spatial_tol`` (0.05, its constant) of that
range on each side: a new extreme is news whatever the likelihood says, which is slow to react
on a series that was quiet. Here the rule raises the score to ``alarm`` (not higher: it claims
one alarm, not more certainty than the calibrated streams), after ``warmup`` values as the
likelihood. It uses only values already seen (a running minimum and maximum), not the whole
file's range that NAB hands its detectors.

Why the refractory extends: NAB credits the first detection in a window and charges every other
detection outside it. After an alarm the detector stays silent for ``refractory`` points, and any
further alarm-level score heard during that silence pushes the end out to at least ``extend``
points from then, so one long incident gives one alarm rather than one per ``refractory``
points. A shorter ``refractory`` than the likelihood detector's (100 rather than 200) lets a
second, nearby anomaly window still be caught.

Cost: the views, two likelihood updates and two kNN appends per point, all O(1); one kNN
search per ``knn_step`` points over ~500 block patterns (~11 µs), and a search over ~2,000
point patterns (~16 µs) only on the points where the views reach the alarm. About 140,000
points/s through ``update`` on one core (``benchmarks/detector_throughput.py``), 130,000 over
the NAB corpus. Before the
block search and the alarm-only gate both kNNs searched every point, over ~2,000 patterns each:
11,000 points/s, and 72.01 on NAB where this scores 71.13 (``benchmarks/nab_scores.py``): the
block patterns no longer slide a point at a time, so a past pattern at another phase of the
block is not a neighbour.

Honesty about tuning: the defaults were chosen on the NAB development split (51 files, the only
split here; the held-out category is not in this workspace), one set for every file as NAB
requires. The two-scale kNN and the spatial rule were added to the earlier defaults unchanged
(``knn_step`` 4 of 1-6 tried, ``spatial_tol`` NAB's 0.05). Moving one hyper-parameter at a time
keeps the standard score within 66.6-72.1 (71.13 at the defaults); leaving one category out,
``knn_step`` and ``spatial_tol`` picked on the other five score 68.84 over the held-out
categories, the fixed defaults 70.93 (``benchmarks/nab_robustness.py``). Expect unseen data to
score a few points below the development figure. The block search did not move the defaults
(``knn_step`` 3 now scores 71.85 on this split, but was not chosen on it).
"""

from __future__ import annotations

from typing import Any


from anomaly._base import StreamingDetector, check_float, check_int
from anomaly.changepoint import ChangepointDetector
from anomaly.likelihood import LikelihoodDetector
from anomaly.p99_drift import P99DriftDetector
from anomaly.pattern_knn import PatternKnnDetector
from anomaly.postprocess import AnomalyLikelihood

__all__ = ["EnsembleDetector"]

#: the largest ``knn_step``: the history (2000 points) must hold k=3 block patterns of 8 beside the current one
_MAX_KNN_STEP = 181


class EnsembleDetector(StreamingDetector):
    """Max of likelihood-calibrated views and kNN novelty, NAB's spatial rule, then a refractory."""

    name = "ensemble"

    def __init__(
        self,
        *,
        short: int = 8,
        long: int = 2000,
        warmup: int = 300,
        alarm: float = 0.5,
        refractory: int = 100,
        extend: int = 100,
        use_knn: bool = True,
        use_changepoint: bool = False,
        use_p99: bool = False,
        weight: float = 1.0,
        knn_gate: float = 1.0,
        gate_floor: float = 0.5,
        knn_step: int = 4,
        use_spatial: bool = True,
        spatial_tol: float = 0.05,
    ) -> None:
        super().__init__()
        self.short = check_int("short", short, 1)
        self.long = check_int("long", long, 2)
        self.warmup = check_int("warmup", warmup, 0)
        self.alarm = check_float("alarm", alarm, 0.0, 1.0)
        self.refractory = check_int("refractory", refractory, 0)
        self.extend = check_int("extend", extend, 0)
        flags = (
            ("use_knn", use_knn),
            ("use_changepoint", use_changepoint),
            ("use_p99", use_p99),
            ("use_spatial", use_spatial),
        )
        for flag, val in flags:
            if not isinstance(val, bool):
                raise ValueError(f"{flag} must be a bool, got {val!r}")
        self.use_knn = use_knn
        self.use_changepoint = use_changepoint
        self.use_p99 = use_p99
        self.weight = check_float("weight", weight, 0.0, 1.0)
        self.knn_gate = check_float("knn_gate", knn_gate, 0.0)
        self.gate_floor = check_float("gate_floor", gate_floor, 0.0, 1.0)
        self.knn_step = check_int("knn_step", knn_step, 1, _MAX_KNN_STEP)
        self.use_spatial = use_spatial
        self.spatial_tol = check_float("spatial_tol", spatial_tol, 0.0)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        # the views detector does its own likelihood; its refractory is ours, so off there
        self.views_ = LikelihoodDetector(short=self.short, long=self.long, warmup=self.warmup, refractory=0)
        self.knn_ = PatternKnnDetector(step=1) if self.use_knn else None
        # the novelty stream: the same kNN on block means (None: the gate's kNN serves)
        self.shape_ = PatternKnnDetector(step=self.knn_step) if self.use_knn and self.knn_step > 1 else None
        self.changepoint_ = ChangepointDetector() if self.use_changepoint else None
        self.p99_ = P99DriftDetector() if self.use_p99 else None
        self.knn_lh_ = AnomalyLikelihood(short=self.short, long=self.long, warmup=self.warmup)
        self.cp_lh_ = AnomalyLikelihood(short=self.short, long=self.long, warmup=self.warmup)
        self.p99_lh_ = AnomalyLikelihood(short=self.short, long=self.long, warmup=self.warmup)
        self.left_ = 0
        self.count_ = 0  # values seen (the spatial rule waits `warmup` of them, as the likelihood)
        self.low_: float | None = None  # smallest and largest value seen, for the spatial rule
        self.high_: float | None = None

    def _fit(self, ts: Any, values: Any) -> None:
        if getattr(values, "ndim", 1) != 1:
            raise ValueError("ensemble is univariate")
        for t, v in zip(ts.tolist(), values.tolist()):
            self._score(t, v)

    def _score(self, ts: float, x: float) -> float:
        score = self.views_.update(ts, x)
        w = self.weight
        knn = self.knn_
        if knn is not None:
            knn.push(x)
            shape = self.shape_
            raw = -1.0  # the point-scale kNN's distance, searched only when needed
            if self.knn_gate > 0.0 and score >= self.alarm:
                # a pattern seen before damps the one-value views; below the alarm the damping
                # could not change an alarm, so the search (the cost) is skipped there
                raw = knn.distance()
                g = raw / self.knn_gate
                score *= self.gate_floor if g < self.gate_floor else 1.0 if g > 1.0 else g
            if shape is None:  # knn_step 1: the point-scale kNN is the novelty stream, every point
                novelty = raw if raw >= 0.0 else knn.distance()
            else:
                if shape.push(x):  # a block completed: search its pattern; held until the next
                    shape.raw_ = shape.distance()
                novelty = shape.raw_
            # calibrated every point (the likelihood's windows count points), held raw or not
            s = self.knn_lh_.update(novelty) * w
            if s > score:
                score = s
        if self.changepoint_ is not None:
            s = self.cp_lh_.update(self.changepoint_.update(ts, x)) * w
            if s > score:
                score = s
        if self.p99_ is not None:
            s = self.p99_lh_.update(self.p99_.update(ts, x)) * w
            if s > score:
                score = s
        self.count_ += 1
        low, high = self.low_, self.high_
        if low is None or high is None:
            self.low_ = self.high_ = x
        else:
            if self.use_spatial and self.count_ > self.warmup and high > low:
                tol = self.spatial_tol * (high - low)
                if (x > high + tol or x < low - tol) and score < self.alarm:  # NAB HTM's spatial anomaly
                    score = self.alarm
            if x < low:
                self.low_ = x
            elif x > high:
                self.high_ = x
        if self.left_ > 0:
            self.left_ -= 1
            if score >= self.alarm and self.left_ < self.extend:
                self.left_ = self.extend
            return 0.0
        if score >= self.alarm:
            self.left_ = self.refractory
        return score

    def _state(self) -> dict[str, Any]:
        return {
            "views": self.views_.state_dict(),
            "knn": None if self.knn_ is None else self.knn_.state_dict(),
            "shape": None if self.shape_ is None else self.shape_.state_dict(),
            "changepoint": None if self.changepoint_ is None else self.changepoint_.state_dict(),
            "p99": None if self.p99_ is None else self.p99_.state_dict(),
            "knn_lh": self.knn_lh_.state(),
            "cp_lh": self.cp_lh_.state(),
            "p99_lh": self.p99_lh_.state(),
            "left": self.left_,
            "count": self.count_,
            "low": self.low_,
            "high": self.high_,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.views_.load_state_dict(state["views"])
        if self.knn_ is not None:
            self.knn_.load_state_dict(state["knn"])
        if self.shape_ is not None:
            self.shape_.load_state_dict(state["shape"])
        if self.changepoint_ is not None:
            self.changepoint_.load_state_dict(state["changepoint"])
        if self.p99_ is not None:
            self.p99_.load_state_dict(state["p99"])
        self.knn_lh_.load(state["knn_lh"])
        self.cp_lh_.load(state["cp_lh"])
        self.p99_lh_.load(state["p99_lh"])
        self.left_ = int(state["left"])
        self.count_ = int(state["count"])
        self.low_ = None if state["low"] is None else float(state["low"])
        self.high_ = None if state["high"] is None else float(state["high"])
