"""P99 drift specifics: the capped statistic lets the alarm end in bounded time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anomaly.p99_drift import P99DriftDetector


def _fitted(h: float = 15.0, **kw: float) -> tuple[P99DriftDetector, np.random.Generator]:
    rng = np.random.default_rng(0)
    det = P99DriftDetector(h=h, **kw)
    ts = np.arange(2_000, dtype=float)
    det.fit((ts, 0.02 + rng.gamma(9, 0.001, ts.size)))
    return det, rng


# (past ~1,600 such points the baseline accepts them as the new normal and the score falls)
@pytest.mark.parametrize("slow_points", [100, 1_500])
def test_after_any_length_of_drift_the_alarm_ends_within_a_bounded_number_of_points(
        slow_points: int) -> None:
    det, rng = _fitted()
    t = 2_000.0
    for _ in range(slow_points):  # every point far over the baseline's P99
        det.update(t, 1.0)
        t += 1.0
    assert det.last_score_ == pytest.approx(det.cap / (det.cap + 1))  # held at the cap
    bound = math.ceil((det.cap - 1) * det.h / -det.down_)  # 2h / 0.213 = 141 at h 15
    for n in range(1, 10 * bound):
        if det.update(t, 0.02 + rng.gamma(9, 0.001)) < 0.5:
            break
        t += 1.0
    assert n <= bound, (n, bound)


def test_the_cap_is_a_checked_parameter() -> None:
    with pytest.raises(ValueError, match="cap"):
        P99DriftDetector(cap=0.5)
    det, _ = _fitted(cap=1.0)
    for i in range(100):
        det.update(2_000.0 + i, 1.0)
    assert det.last_score_ == pytest.approx(0.5)  # at cap 1 the score never passes the alarm
