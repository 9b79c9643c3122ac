"""The kNN pattern detector and how the NAB ensemble uses it.

The streaming search (dot products, then the best candidates re-measured) must give the
distances a brute-force search gives, through the flat history's compactions and across a
save/restore in the middle of a block; the ensemble searches its gate only where the views reach
the alarm, and that changes no alarm.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from anomaly.ensemble import EnsembleDetector
from anomaly.pattern_knn import PatternKnnDetector
from tests.anomaly.synthetic import series


def brute_raws(x: np.ndarray, *, length: int, history: int, k: int, step: int, min_points: int = 10) -> np.ndarray:
    """``raw_`` after each value, by the definition in the module docstring, in plain loops."""
    out, raw, blocks, block = [], 0.0, [], []
    for t, v in enumerate(x):
        before = x[:t]
        sigma = (before.std() if t else 0.0) + 1e-9 * (abs(before.mean() if t else 0.0) + 1.0)
        block.append(v)
        if len(block) == step:
            blocks.append(float(np.mean(block)))
            block = []
            n, past = len(blocks), (history - step * length) // step
            m = min(past, n - 2 * length + 1)
            raw = 0.0
            if m >= k and t + 1 > step * length + min_points:
                cur = np.array(blocks[n - length :])
                d = sorted(((np.array(blocks[e - length : e]) - cur) ** 2).sum() for e in range(n - length - m + 1, n - length + 1))
                raw = math.sqrt(np.mean(d[:k])) / (sigma * math.sqrt(length))
        out.append(raw)
    return np.array(out)


@pytest.mark.parametrize(
    "params",
    [
        {"length": 8, "history": 200, "k": 3, "step": 4},
        {"length": 3, "history": 50, "k": 4, "step": 1},
        {"length": 5, "history": 120, "k": 1, "step": 3},
    ],
)
def test_streaming_search_equals_brute_force(params: dict) -> None:
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=700)) + 1000.0  # a large offset: cancellation would show
    x[300:330] = 5.0  # a flat stretch: exact repeats, distances exactly 0
    det = PatternKnnDetector(**params)
    got = []
    for i, v in enumerate(x):  # 700 values: the flat history compacts several times
        det.update(float(i), float(v))
        got.append(det.raw_)
    np.testing.assert_allclose(got, brute_raws(x, **params), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cut", [1001, 1002, 1003, 1004])  # every position within a block of 4
def test_restore_mid_block_continues_identically(cut: int) -> None:
    ts, v = series("level_shift", seed=3)
    a = PatternKnnDetector()
    a.score_series(ts[:cut], v[:cut])
    b = PatternKnnDetector().load_state_dict(json.loads(json.dumps(a.state_dict())))
    np.testing.assert_array_equal(a.score_series(ts[cut:2600], v[cut:2600]), b.score_series(ts[cut:2600], v[cut:2600]))


def test_knn_scores_a_new_shape_above_old_ones() -> None:
    i = np.arange(3000)
    v = np.sin(2 * np.pi * i / 50) + np.random.default_rng(0).normal(0, 0.05, 3000)
    v[2500:2550] = v[2500:2550][::-1] * 0.2  # a damped, reversed cycle: ordinary values, new shape
    for step in (1, 4):
        s = PatternKnnDetector(step=step).score_series(60.0 * i, v)
        assert s[2500:2560].max() > 2 * s[1000:2500].max(), step


def raws(det: PatternKnnDetector, v: np.ndarray) -> np.ndarray:
    out = []
    for i, x in enumerate(v):
        det.update(float(i), float(x))
        out.append(det.raw_)
    return np.array(out)


def test_knn_step_trades_spikes_for_slow_shapes() -> None:
    """With ``step`` s the pattern is ``length`` means of s points: point noise and a lone spike
    average away, a bump as long as the pattern (32 points) stands out of a noisy background."""
    i = np.arange(3000)
    base = np.sin(2 * np.pi * i / 200) + np.random.default_rng(0).normal(0, 0.3, 3000)
    slow, spike = base.copy(), base.copy()
    slow[2500:2532] += 0.6 * np.sin(np.pi * np.arange(32) / 32)
    spike[2500] += 3.0

    def prominence(v: np.ndarray, step: int) -> float:
        """Peak raw after 2500 over the 99th percentile of the raws before it."""
        clean = raws(PatternKnnDetector(step=step), base)[1000:2500]
        peak = raws(PatternKnnDetector(step=step), v)[2500:2540].max()
        return float(peak / np.quantile(clean, 0.99))

    assert prominence(slow, 4) > 1.15 > 1.1 > prominence(slow, 1)  # measured: 1.19 and 1.02
    assert prominence(spike, 1) > 1.5 * prominence(spike, 4)
    with pytest.raises(ValueError, match="history"):
        PatternKnnDetector(length=8, step=4, history=32 + 4 * 2)  # two past patterns, k is 3
    PatternKnnDetector(length=8, step=4, history=32 + 4 * 3)
    with pytest.raises(ValueError, match="step"):
        PatternKnnDetector(step=0)


def test_ensemble_searches_the_gate_only_where_the_views_reach_the_alarm() -> None:
    ts, v = series("variance_burst", seed=3)
    ens = EnsembleDetector()
    knn = ens.knn_
    assert knn is not None
    now = [0.0]
    at_alarm: list[float] = []  # times at which the views' score reached the alarm
    searched: list[float] = []  # times at which the gate's kNN searched
    views_update, distance = ens.views_.update, knn.distance

    def recording_views(t: float, x: float) -> float:
        s = views_update(t, x)
        if s >= ens.alarm:
            at_alarm.append(t)
        return s

    def recording_distance() -> float:
        searched.append(now[0])
        return distance()

    ens.views_.update = recording_views  # type: ignore[method-assign]
    knn.distance = recording_distance  # type: ignore[method-assign]
    for t, x in zip(ts.tolist(), v.tolist()):
        now[0] = t
        ens.update(t, x)
    assert at_alarm, "the series must bring the views to the alarm somewhere"
    assert searched == at_alarm  # searched there, and nowhere else
    assert len(searched) < 0.05 * len(ts)


def test_ensemble_gate_changes_no_alarm() -> None:
    """Searching the gate only at the alarm leaves every alarm where an always-gated score puts it."""
    for kind in ("variance_burst", "level_shift", "spike"):
        ts, v = series(kind, seed=5)
        ens = EnsembleDetector()
        always = EnsembleDetector()
        # the reference gates every point: the views' score damped before anything else sees it,
        # by a point-scale kNN of its own that learns the same values in the same order
        views_update, own_knn = always.views_.update, PatternKnnDetector(step=1)

        def gated(t: float, x: float, up=views_update, knn=own_knn, gate=always.knn_gate, floor=always.gate_floor) -> float:
            s = up(t, x)
            knn.push(x)
            return s * min(max(knn.distance() / gate, floor), 1.0)

        always.views_.update = gated  # type: ignore[method-assign]
        always.knn_gate = 0.0  # gated above already, not twice
        a, b = ens.score_series(ts, v), always.score_series(ts, v)
        np.testing.assert_array_equal(a >= ens.alarm, b >= ens.alarm)


@pytest.mark.parametrize("params", [{}, {"knn_step": 1, "use_spatial": False}, {"knn_gate": 0.0}])
def test_ensemble_restores_and_continues_identically(params: dict) -> None:
    ts, v = series("variance_burst", seed=3)
    a = EnsembleDetector(**params)
    a.score_series(ts[:1999], v[:1999])
    restored = EnsembleDetector(**params).load_state_dict(json.loads(json.dumps(a.state_dict())))
    # the views' running sums restore to the last bit but for float re-summation: allclose
    np.testing.assert_allclose(
        restored.score_series(ts[1999:], v[1999:]), a.score_series(ts[1999:], v[1999:]), rtol=1e-9, atol=1e-12
    )


def test_ensemble_streams_can_be_switched_off() -> None:
    ts, v = series("level_shift")
    full = EnsembleDetector(use_changepoint=True, use_p99=True).score_series(ts, v)
    views_only = EnsembleDetector(use_knn=False).score_series(ts, v)
    assert full.shape == views_only.shape and not np.array_equal(full, views_only)
    with pytest.raises(ValueError, match="use_knn"):
        EnsembleDetector(use_knn=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history"):
        PatternKnnDetector(length=8, step=1, history=8)
