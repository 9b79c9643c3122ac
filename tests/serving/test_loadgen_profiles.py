"""Arrival-rate profiles and the summary, without a server."""

from __future__ import annotations

import math

import pytest

from serving.loadgen import LoadGenerator, LoadProfile, RequestResult, summarise


def test_diurnal_peaks_a_quarter_period_in() -> None:
    p = LoadProfile(kind="diurnal", rate=100, amplitude=0.5, period_s=120)
    assert p.rate_at(30) == pytest.approx(150)
    assert p.rate_at(90) == pytest.approx(50)
    assert p.rate_at(0) == pytest.approx(100)


def test_burst_multiplies_rate_at_the_end_of_each_cycle() -> None:
    p = LoadProfile(kind="burst", rate=10, burst_factor=4, burst_every_s=60, burst_len_s=10)
    assert p.rate_at(5) == 10
    assert p.rate_at(55) == 40
    assert p.rate_at(65) == 10


def test_surge_happens_once_then_the_base_rate_returns_for_good() -> None:
    p = LoadProfile(kind="surge", rate=20, burst_factor=5, surge_at_s=10, burst_len_s=30)
    assert [p.rate_at(t) for t in (0, 9.9, 10, 39.9, 40, 50, 90, 130)] == [
        20, 20, 100, 100, 20, 20, 20, 20]


def test_summary_quantiles_ignore_failures_but_count_them() -> None:
    results = [RequestResult(float(i), 0.001 * (i + 1), True, "synth") for i in range(100)]
    results += [RequestResult(0.0, 5.0, False, "mlp", error="boom")]
    s = summarise(results, duration_s=10.0, dropped=2)
    assert (s.sent, s.ok, s.errors, s.dropped) == (101, 100, 1, 2)
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.by_model == {"synth": 100, "mlp": 1}
    assert s.achieved_rps == pytest.approx(10.1)


def test_empty_summary_is_nan_not_an_error() -> None:
    assert math.isnan(summarise([], 1.0).p99_ms)


def test_unknown_model_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown models"):
        LoadGenerator("http://127.0.0.1:1", LoadProfile(), {"resnet": 1})
