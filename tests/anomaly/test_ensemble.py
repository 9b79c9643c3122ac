"""The NAB ensemble's own rules: NAB's spatial anomaly and the two kNN time scales.

The contract (ranges, state, look-ahead, bad input) is the shared suite's
(``test_detector_contract.py``); the batched path against the per-point one is in
``test_pattern_knn.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.ensemble import EnsembleDetector

I = np.arange(1200)
TS = 60.0 * I
CREST, TROUGH = 1025, 1075  # of the sine (period 100)


def sine_with(at: int, value: float) -> np.ndarray:
    """A clean sine in [-1, 1] (range 2) with ``value`` put at index ``at``."""
    v = np.clip(np.sin(2 * np.pi * I / 100) + np.random.default_rng(0).normal(0, 0.01, len(I)), -1.0, 1.0)
    v[at] = value
    return v


@pytest.mark.parametrize(
    ("at", "value", "alarms"), [(CREST, 1.05, False), (CREST, 1.15, True), (TROUGH, -1.15, True)]
)
def test_spatial_rule_alarms_beyond_the_range_seen_plus_tolerance(at: int, value: float, alarms: bool) -> None:
    """1.05 is within 5% of the range (0.1) above the maximum seen; 1.15 and -1.15 are not.

    On this sine the calibrated streams barely stir at one crest (trough) a little too high
    (low), so the alarm is the spatial rule's alone, at exactly the alarm level.
    """
    v = sine_with(at, value)
    s = EnsembleDetector().score_series(TS, v)
    assert s[300:at].max() < 0.1  # quiet before
    assert bool(s[at] == 0.5) is alarms
    assert EnsembleDetector(use_spatial=False).score_series(TS, v)[at] < 0.5
    # a wider tolerance forgives it
    assert EnsembleDetector(spatial_tol=0.2).score_series(TS, v)[at] < 0.5


def test_spatial_rule_waits_for_the_warmup() -> None:
    v = sine_with(CREST, 1.0)
    v[225] = 1.5  # beyond the range, but within the first `warmup` (300) values
    assert EnsembleDetector().score_series(TS, v)[225] < 0.5
    assert EnsembleDetector(warmup=100).score_series(TS, v)[225] == 0.5


def test_knn_step_one_is_the_single_scale_ensemble() -> None:
    two, one = EnsembleDetector(), EnsembleDetector(knn_step=1)
    assert two.shape_ is not None and two.shape_.step == 4 and two.knn_ is not None and two.knn_.step == 1
    assert one.shape_ is None and one.state_dict()["state"]["shape"] is None
    assert EnsembleDetector(use_knn=False).shape_ is None


@pytest.mark.parametrize(
    ("param", "value"), [("knn_step", 0), ("knn_step", 250), ("spatial_tol", -0.1), ("use_spatial", 1)]
)
def test_bad_new_hyper_parameters_are_named(param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param):
        EnsembleDetector(**{param: value})  # type: ignore[arg-type]
