"""One contract suite, parametrised over every registered detector (PyOD's shared-test idea).

Quality floors on seeded synthetic series (``synthetic.py``): a daily season of amplitude 5
sigma, fitted on two days, scored online on the third, with a level shift, a variance burst or a
single spike injected. ``rank`` is the fraction of the detector's clean-period scores strictly
below its highest score in the ``DELAY`` points after onset (1.0: above anything it said on clean
data); ``alarm`` is the number of points after onset within which a score >= 0.5 must come.
Each detector is held to the anomalies it exists for; the others still get a rank floor.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from anomaly.registry import DETECTORS, UNIVARIATE, make_detector
from tests.anomaly.synthetic import HISTORY, N, ONSET, series

NAMES = sorted(DETECTORS)
DELAY = 30
SEEDS = (0, 1, 2)

# (detector, scenario) -> (min rank, points within which score >= 0.5, or None)
FLOORS: dict[tuple[str, str], tuple[float, int | None]] = {
    ("changepoint", "level_shift"): (1.0, 10),
    ("changepoint", "variance_burst"): (0.5, None),
    ("ensemble", "level_shift"): (1.0, 5),
    ("ensemble", "variance_burst"): (0.99, 5),
    ("ensemble", "spike"): (0.99, 5),
    ("likelihood", "level_shift"): (0.97, None),
    ("likelihood", "variance_burst"): (1.0, 5),
    ("likelihood", "spike"): (1.0, 5),
    ("multivariate", "level_shift"): (0.99, 3),
    ("multivariate", "variance_burst"): (0.99, 3),
    ("multivariate", "spike"): (0.99, 3),
    ("p99_drift", "level_shift"): (1.0, 5),
    ("p99_drift", "variance_burst"): (1.0, 100),  # a tail drift test; the jitter one is faster
    # block means of 4: a burst's noise half averages away; above all it said on clean data, but
    # under its alarm distance (one sigma per value): the views and the likelihood alarm on these
    ("pattern_knn", "level_shift"): (1.0, None),
    ("pattern_knn", "variance_burst"): (1.0, None),
    ("pattern_knn", "spike"): (1.0, None),
    # the 0.9 quantile of its 60-point window moves once 6 differences are noisy
    ("variance", "variance_burst"): (1.0, 15),
    ("variance", "level_shift"): (0.5, None),
}
#: detectors that must not alarm on one spike (a sustained-change test by design)
SPIKE_QUIET = ("changepoint", "p99_drift", "variance")


def run(name: str, kind: str, seed: int = 0) -> np.ndarray:
    ts, v = series(kind, seed)
    det = make_detector(name).fit((ts[:HISTORY], v[:HISTORY]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return det.score_series(ts[HISTORY:], v[HISTORY:])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "kind"), sorted(FLOORS))
def test_quality_floor(name: str, kind: str, seed: int) -> None:
    s = run(name, kind, seed)
    onset = ONSET - HISTORY
    clean, after = s[:onset], s[onset : onset + DELAY]
    rank = float(np.mean(clean < after.max()))
    min_rank, alarm = FLOORS[(name, kind)]
    assert rank >= min_rank, f"{name} on {kind}: rank {rank:.3f} < {min_rank}"
    if alarm is not None:
        hits = np.flatnonzero(s[onset:] >= 0.5)
        assert len(hits) and hits[0] <= alarm, f"{name} on {kind}: first alarm at {hits[:1]} > {alarm}"


@pytest.mark.parametrize("name", NAMES)
def test_quiet_on_clean_seasonal_series(name: str) -> None:
    for seed in SEEDS:
        s = run(name, "clean", seed)
        assert np.mean(s >= 0.5) <= 0.005, f"{name}: {np.mean(s >= 0.5):.4f} of clean points alarm"


@pytest.mark.parametrize("name", SPIKE_QUIET)
def test_single_spike_does_not_alarm(name: str) -> None:
    for seed in SEEDS:
        s = run(name, "spike", seed)
        assert s[ONSET - HISTORY : ONSET - HISTORY + DELAY].max() < 0.5


@pytest.mark.parametrize("name", NAMES)
def test_scores_in_unit_interval_and_fit_is_optional(name: str) -> None:
    ts, v = series("level_shift")
    det = make_detector(name).fit(None)  # purely online, as NAB runs it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = det.score_series(ts, v)
    assert s.shape == (N,) and np.all((s >= 0.0) & (s <= 1.0))
    assert det.n_seen_ == N


@pytest.mark.parametrize("name", NAMES)
def test_fit_accepts_the_store_dataframe(name: str) -> None:
    ts, v = series("clean")
    df = pd.DataFrame({"ts": ts[:HISTORY], "value": v[:HISTORY]})
    a = make_detector(name).fit(df)
    b = make_detector(name).fit((ts[:HISTORY], v[:HISTORY]))
    series_ = pd.Series(v[:HISTORY], index=pd.to_datetime(ts[:HISTORY], unit="s"))
    c = make_detector(name).fit(series_)
    sa = a.score_series(ts[HISTORY:HISTORY + 200], v[HISTORY:HISTORY + 200])
    sb = b.score_series(ts[HISTORY:HISTORY + 200], v[HISTORY:HISTORY + 200])
    sc = c.score_series(ts[HISTORY:HISTORY + 200], v[HISTORY:HISTORY + 200])
    np.testing.assert_allclose(sa, sb)
    np.testing.assert_allclose(sa, sc)


@pytest.mark.parametrize("name", NAMES)
def test_nan_updates_nothing_and_returns_last_score(name: str) -> None:
    ts, v = series("clean")
    det = make_detector(name).fit((ts[:HISTORY], v[:HISTORY]))
    last = det.update(ts[HISTORY], v[HISTORY])
    before = json.dumps(det.state_dict(), sort_keys=True)
    assert det.update(ts[HISTORY + 1], math.nan) == last
    assert det.update(ts[HISTORY + 1], math.inf) == last
    assert json.dumps(det.state_dict(), sort_keys=True) == before


@pytest.mark.parametrize("name", NAMES)
def test_duplicate_and_out_of_order_timestamps_are_rejected_and_counted(name: str) -> None:
    ts, v = series("clean")
    det = make_detector(name).fit((ts[:HISTORY], v[:HISTORY]))
    last = det.update(ts[HISTORY], v[HISTORY])
    before = json.dumps(det.state_dict()["state"], sort_keys=True)
    assert det.update(ts[HISTORY], 1e9) == last  # duplicate
    assert det.update(ts[HISTORY] - 600, 1e9) == last  # out of order
    assert det.update(ts[0], v[0]) == last  # older than the history's end
    assert det.rejected_ == 3
    assert json.dumps(det.state_dict()["state"], sort_keys=True) == before


@pytest.mark.parametrize("name", NAMES)
def test_gap_in_time_does_not_break_scoring(name: str) -> None:
    ts, v = series("clean")
    det = make_detector(name).fit((ts[:HISTORY], v[:HISTORY]))
    gap_ts = ts[HISTORY:] + 7 * 86400.0  # a week without data
    s = det.score_series(gap_ts[:300], v[HISTORY : HISTORY + 300])
    assert np.all(np.isfinite(s)) and np.mean(s >= 0.5) < 0.05


@pytest.mark.parametrize("name", NAMES)
def test_no_look_ahead(name: str) -> None:
    ts, v = series("clean")
    other = v.copy()
    cut = HISTORY + 500
    other[cut:] += np.random.default_rng(9).normal(0, 20, N - cut)  # a different future
    a = make_detector(name).fit((ts[:HISTORY], v[:HISTORY])).score_series(ts[HISTORY:], v[HISTORY:])
    b = make_detector(name).fit((ts[:HISTORY], v[:HISTORY])).score_series(ts[HISTORY:], other[HISTORY:])
    k = cut - HISTORY
    np.testing.assert_array_equal(a[:k], b[:k])
    assert not np.array_equal(a[k:], b[k:])


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_reproduces_future_scores(name: str) -> None:
    ts, v = series("level_shift")
    mid = HISTORY + 700
    det = make_detector(name).fit((ts[:HISTORY], v[:HISTORY]))
    det.score_series(ts[HISTORY:mid], v[HISTORY:mid])
    det.update(ts[mid - 1], 0.0)  # one rejected point, so the counter must survive too
    saved = json.loads(json.dumps(det.state_dict()))  # must be JSON-able
    expected = det.score_series(ts[mid:], v[mid:])
    restored = make_detector(name).load_state_dict(saved)
    assert restored.rejected_ == 1
    np.testing.assert_allclose(restored.score_series(ts[mid:], v[mid:]), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_state_of_another_detector_is_refused(name: str) -> None:
    other = next(n for n in NAMES if n != name)
    with pytest.raises(ValueError, match="state is for detector"):
        make_detector(name).load_state_dict(make_detector(other).state_dict())


BAD_PARAMS = {
    "changepoint": ("recent", 0),
    "ensemble": ("refractory", -1),
    "likelihood": ("window", 1),
    "multivariate": ("model", "knn-not-here"),
    "p99_drift": ("p1", 0.005),
    "pattern_knn": ("history", 8),
    "variance": ("alarm_ratio", 1.0),
}


@pytest.mark.parametrize("name", NAMES)
def test_bad_hyper_parameter_is_named(name: str) -> None:
    param, value = BAD_PARAMS[name]
    with pytest.raises(ValueError, match=param):
        make_detector(name, **{param: value})
    with pytest.raises(ValueError, match="nonsense"):
        make_detector(name, nonsense=1)


def test_registry_knows_every_detector_and_refuses_unknown_names() -> None:
    assert set(NAMES) == {
        "changepoint",
        "ensemble",
        "likelihood",
        "multivariate",
        "p99_drift",
        "pattern_knn",
        "variance",
    }
    assert set(UNIVARIATE) == set(NAMES) - {"multivariate"}
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("nope")
