"""SeasonalBaseline: seasonality, robustness, exclusion, online drift, save/restore."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from anomaly.baseline import SeasonalBaseline, bucket_of

T0 = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC, a Wednesday


def daily(days: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Latency-like: 20 ms at night, 60 ms at 14:00, minute resolution, noise 2 ms."""
    rng = np.random.default_rng(seed)
    ts = T0 + 60.0 * np.arange(days * 1440)
    hour = (ts % 86400) / 3600
    return ts, 40 - 20 * np.cos(2 * np.pi * (hour - 2) / 24) + rng.normal(0, 2, len(ts))


def test_buckets_follow_utc_hour_and_weekday() -> None:
    assert bucket_of(T0, "hour_of_day") == 0
    assert bucket_of(T0 + 14 * 3600, "hour_of_day") == 14
    assert bucket_of(T0, "hour_of_week") == 2 * 24  # Wednesday, Monday = 0
    assert bucket_of(T0 + 5 * 86400 + 3600, "hour_of_week") == 0 * 24 + 1  # Monday 01:00
    assert bucket_of(T0, "none") == 0


def test_hour_of_day_baseline_knows_the_season() -> None:
    ts, v = daily()
    b = SeasonalBaseline(season="hour_of_day").fit(pd.DataFrame({"ts": ts, "value": v}))
    night, afternoon = b.expected(T0 + 2.5 * 3600), b.expected(T0 + 14.5 * 3600)
    assert night is not None and afternoon is not None
    assert night.median == pytest.approx(20.3, abs=1.5)
    assert afternoon.median == pytest.approx(59.7, abs=1.5)
    assert afternoon.high > afternoon.median + 3 and night.sigma < 4
    flat = SeasonalBaseline(season="none").fit((ts, v)).expected(T0)
    assert flat is not None and 35 < flat.median < 45  # no season: one bucket for the day


def test_robust_to_outliers_and_exclusion_keeps_incidents_out() -> None:
    ts, v = daily()
    dirty = v.copy()
    incident = (ts >= T0 + 3 * 86400 + 14 * 3600) & (ts < T0 + 3 * 86400 + 15 * 3600)
    dirty[incident] += 500.0  # an hour at +500 ms on day 4
    clean = SeasonalBaseline().fit((ts, v)).expected(T0 + 14.5 * 3600)
    spoiled = SeasonalBaseline().fit((ts, dirty)).expected(T0 + 14.5 * 3600)
    kept = SeasonalBaseline().fit(
        (ts, dirty), exclude=[(T0 + 3 * 86400 + 14 * 3600, T0 + 3 * 86400 + 15 * 3600)]
    ).expected(T0 + 14.5 * 3600)
    assert clean is not None and spoiled is not None and kept is not None
    assert abs(spoiled.median - clean.median) < 2  # the median shrugs one hour in seven
    assert spoiled.high > clean.high + 100  # the p99 does not ...
    assert kept.high == pytest.approx(clean.high, abs=3)  # ... unless the incident is excluded


def test_online_updates_follow_drift_and_weight_holds_incidents_back() -> None:
    b = SeasonalBaseline(season="none", learning_rate=0.05)
    rng = np.random.default_rng(1)
    for i in range(200):
        b.observe(float(i), 10 + rng.normal())
    before = b.expected(0.0)
    assert before is not None and before.median == pytest.approx(10, abs=0.5)
    snapshot = json.loads(json.dumps(b.state_dict()))
    for i in range(200, 400):
        b.observe(float(i), 30 + rng.normal(), weight=0.01)  # flagged: barely learned
    weak = b.expected(0.0)
    assert weak is not None and weak.median < 13
    b2 = SeasonalBaseline(season="none", learning_rate=0.05).load_state_dict(snapshot)
    for i in range(200, 3000):
        b2.observe(float(i), 30 + rng.normal())  # a lasting new regime is learned
    after = b2.expected(0.0)
    assert after is not None and after.median == pytest.approx(30, abs=1.5)


def test_seeding_online_without_history() -> None:
    b = SeasonalBaseline(season="hour_of_day", min_points=10)
    assert b.expected(T0) is None
    for i in range(9):
        b.observe(T0 + i, 5.0 + i)
    assert b.expected(T0) is None
    b.observe(T0 + 9, 14.0)
    got = b.expected(T0)
    assert got is not None and got.median == pytest.approx(9.5)


def test_save_and_load_round_trip(tmp_path) -> None:
    ts, v = daily(days=2)
    b = SeasonalBaseline(season="hour_of_week", min_points=20).fit((ts, v))
    path = tmp_path / "sub" / "baseline.json"
    b.save(path)
    c = SeasonalBaseline.load(path)
    for t in (T0, T0 + 14 * 3600, T0 + 5 * 86400):  # last one: an unseen weekday -> global
        assert c.expected(t) == b.expected(t)
    b.observe(T0, 100.0)
    c.observe(T0, 100.0)
    assert c.expected(T0) == b.expected(T0)
    with pytest.raises(ValueError, match="season"):
        SeasonalBaseline(season="none").load_state_dict(b.state_dict())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"season": "daily"}, "season"), ({"quantile": 1.0}, "quantile"), ({"min_points": 1}, "min_points"),
     ({"learning_rate": 0}, "learning_rate"), ({"prior_weight": -1}, "prior_weight")],
)
def test_bad_parameters_are_named(kwargs, name) -> None:
    with pytest.raises(ValueError, match=name):
        SeasonalBaseline(**kwargs)


def test_nan_is_ignored_and_multivariate_history_refused() -> None:
    b = SeasonalBaseline(season="none", min_points=2)
    b.observe(0.0, float("nan"))
    assert b.count_[-1] == 0
    with pytest.raises(ValueError, match="univariate"):
        b.fit((np.arange(5.0), np.ones((5, 2))))
