"""The kNN pattern detector and the NAB ensemble: the batched path equals the per-point one.

``score_series`` on a fresh detector computes the kNN distances in blocks; it must give the
scores, counters and learned state that streaming the same points through ``update`` gives,
with bad input (NaN, duplicate and out-of-order timestamps) mixed in.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from anomaly._base import StreamingDetector
from anomaly.ensemble import EnsembleDetector
from anomaly.pattern_knn import PatternKnnDetector, accepted_mask
from tests.anomaly.synthetic import series


def messy(kind: str = "level_shift", n: int = 2600) -> tuple[np.ndarray, np.ndarray]:
    ts, v = series(kind, seed=3)
    ts, v = ts[:n].copy(), v[:n].copy()
    v[50] = math.nan
    v[700] = math.inf
    ts[900] = ts[899]  # duplicate
    ts[1500] = ts[1400]  # out of order
    v[1800:1830] = 50.0  # a flat stretch: exact repeats, distances exactly 0
    return ts, v


def per_point(det: StreamingDetector, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
    return StreamingDetector.score_series(det, ts, v)


def test_accepted_mask_follows_the_base_rules() -> None:
    ts = np.array([1.0, 2.0, 2.0, 3.0, 1.5, 4.0])
    v = np.array([0.0, math.nan, 1.0, 1.0, 1.0, 2.0])
    ok, rejected = accepted_mask(ts, v)
    # t=2 NaN is skipped (not counted), so the next t=2 is accepted; t=1.5 is out of order
    assert ok.tolist() == [True, False, True, True, False, True]
    assert rejected == 1


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"length": 5, "history": 300, "k": 1},
        {"length": 3, "history": 50, "k": 4},
        {"step": 4},
        {"length": 5, "history": 300, "k": 1, "step": 3},
        {"length": 3, "history": 50, "k": 4, "step": 2},
    ],
)
def test_knn_batch_equals_per_point(params: dict) -> None:
    ts, v = messy()
    a = PatternKnnDetector(**params)
    b = PatternKnnDetector(**params)
    sa = a.score_series(ts, v)
    sb = per_point(b, ts, v)
    np.testing.assert_allclose(sa, sb, rtol=1e-9, atol=1e-12)
    assert (a.rejected_, a.n_seen_, a.last_ts_) == (b.rejected_, b.n_seen_, b.last_ts_) == (b.rejected_, len(ts) - 4, ts[-1])
    sta, stb = a.state_dict()["state"], b.state_dict()["state"]
    np.testing.assert_allclose(sta["ref"], stb["ref"])
    assert sta["last"] == stb["last"] and sta["block"] == stb["block"] and sta["count"] == stb["count"]
    # and both go on alike (the second call takes the per-point path on both)
    t2 = ts[-1] + 60.0 * np.arange(1, 400)
    v2 = v[-399:] + 30.0
    np.testing.assert_allclose(a.score_series(t2, v2), b.score_series(t2, v2), rtol=1e-9, atol=1e-12)


def test_knn_scores_a_new_shape_above_old_ones() -> None:
    i = np.arange(3000)
    v = np.sin(2 * np.pi * i / 50) + np.random.default_rng(0).normal(0, 0.05, 3000)
    v[2500:2550] = v[2500:2550][::-1] * 0.2  # a damped, reversed cycle: ordinary values, new shape
    det = PatternKnnDetector()
    s = det.score_series(60.0 * i, v)
    assert s[2500:2560].max() > 2 * s[1000:2500].max()


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
        clean = PatternKnnDetector(step=step).batch_raw(base)[1000:2500]
        peak = PatternKnnDetector(step=step).batch_raw(v)[2500:2540].max()
        return float(peak / np.quantile(clean, 0.99))

    assert prominence(slow, 4) > 1.2 > prominence(slow, 1)
    assert prominence(spike, 1) > 1.5 * prominence(spike, 4)
    with pytest.raises(ValueError, match="history"):
        PatternKnnDetector(length=8, step=4, history=32)
    with pytest.raises(ValueError, match="step"):
        PatternKnnDetector(step=0)


@pytest.mark.parametrize("params", [{}, {"knn_step": 1, "use_spatial": False}, {"knn_gate": 0.0}])
def test_ensemble_batch_equals_per_point(params: dict) -> None:
    ts, v = messy("variance_burst")
    a, b = EnsembleDetector(**params), EnsembleDetector(**params)
    sa = a.score_series(ts, v)
    sb = per_point(b, ts, v)
    np.testing.assert_allclose(sa, sb, rtol=1e-9, atol=1e-12)
    assert a.rejected_ == b.rejected_ == 2
    ja = json.loads(json.dumps(a.state_dict()))
    restored = EnsembleDetector(**params).load_state_dict(ja)
    t2 = ts[-1] + 60.0 * np.arange(1, 300)
    np.testing.assert_allclose(restored.score_series(t2, v[-299:]), b.score_series(t2, v[-299:]), rtol=1e-9, atol=1e-12)


def test_ensemble_streams_can_be_switched_off() -> None:
    ts, v = series("level_shift")
    full = EnsembleDetector(use_changepoint=True, use_p99=True).score_series(ts, v)
    views_only = EnsembleDetector(use_knn=False).score_series(ts, v)
    assert full.shape == views_only.shape and not np.array_equal(full, views_only)
    with pytest.raises(ValueError, match="use_knn"):
        EnsembleDetector(use_knn=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history"):
        PatternKnnDetector(length=8, history=8)
