"""Multivariate detector: PyOD agreement, vector input, refit schedule, baseline-only training."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pyod.models.ecod import ECOD
from pyod.models.knn import KNN

from anomaly.multivariate import MultivariateDetector


def replicas(n: int, seed: int = 0) -> np.ndarray:
    """Per-replica features, shape (n, 4): load, p50 ms, p99 ms, GPU utilisation, correlated."""
    rng = np.random.default_rng(seed)
    load = rng.uniform(50, 150, n)
    p50 = 5 + 0.02 * load + rng.normal(0, 0.3, n)
    p99 = 3 * p50 + rng.normal(0, 1.0, n)
    util = 0.5 * load + rng.normal(0, 3, n)
    return np.column_stack([load, p50, p99, util])


def test_fast_knn_matches_pyod_decision_function() -> None:
    x = replicas(400)
    det = MultivariateDetector(model="knn", window=400, min_fit=50, refit_every=10_000)
    det.fit((np.arange(400.0), x))
    test = replicas(50, seed=3)
    test[::7, 3] -= 30
    pyod = KNN(n_neighbors=5, method="largest").fit(det.ztrain_)
    for row in test:
        expected = pyod.decision_function(((row - det.center_) / det.scale_)[None, :])[0]
        assert det._raw(row) == pytest.approx(expected, rel=1e-9)


def test_fast_ecod_matches_pyod_decision_function() -> None:
    x = replicas(400)
    det = MultivariateDetector(model="ecod", window=400, min_fit=50, refit_every=10_000)
    det.fit((np.arange(400.0), x))
    test = replicas(50, seed=3)
    test[::7, 2] += 40  # some tails
    pyod = ECOD().fit(x)
    for row in test:
        expected = pyod.decision_function(row[None, :])[0]
        assert det._raw(row) == pytest.approx(expected, rel=1e-9)


def test_vector_anomalies_score_high_and_normal_ones_low() -> None:
    x = replicas(900, seed=1)
    bad = [300, 500, 700]
    x[300, 2] += 30  # p99 blow-up on one replica
    x[500, 3] -= 60  # GPU idle at full load
    x[700, 0] += 200  # load far outside the baseline
    det = MultivariateDetector(window=200, refit_every=50, min_fit=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = det.fit(None).score_series(np.arange(900.0), x)
    assert all(s[i] >= 0.5 for i in bad)
    normal = np.delete(s[100:], [i - 100 for i in bad])
    assert np.mean(normal >= 0.5) < 0.02


def test_flagged_points_stay_out_of_training_and_refits_follow_schedule() -> None:
    x = replicas(400, seed=2)
    det = MultivariateDetector(window=300, refit_every=100, min_fit=50, gate=0.5).fit(None)
    det.score_series(np.arange(200.0), x[:200])
    fitted = det.train_
    assert fitted is not None and len(fitted) <= 300
    det.update(1000.0, x[0] * 10)  # far outside: flagged, not learned
    assert det.buffer_[-1] != (x[0] * 10).tolist()
    before = det.since_fit_
    assert before + 1 < det.refit_every
    det.update(1001.0, x[1])
    assert det.since_fit_ == before + 1  # learned, no refit yet
    for k in range(det.refit_every):
        det.update(1002.0 + k, x[2 + k])
    assert det.since_fit_ < det.refit_every  # the schedule refitted on the way


def test_wrong_vector_length_is_an_error() -> None:
    det = MultivariateDetector(min_fit=10).fit((np.arange(50.0), replicas(50)))
    with pytest.raises(ValueError, match="feature vector"):
        det.update(100.0, np.ones(3))


@pytest.mark.parametrize("model", ["copod", "ecod", "iforest"])
def test_other_pyod_models_run_through_pyod(model: str) -> None:
    x = replicas(200)
    x[150, 2] += 50
    det = MultivariateDetector(model=model, window=100, min_fit=50, refit_every=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = det.fit(None).score_series(np.arange(200.0), x)
    # marginal-only and tree models rank the anomaly high but not above every baseline point
    assert s[150] > np.quantile(s[60:150], 0.9) and np.median(s[60:150]) < 0.4
