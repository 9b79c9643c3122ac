"""anomaly: seasonal baselines, streaming detectors, NAB evaluation.

Public surface (imported lazily, so ``import anomaly`` stays light):

* :class:`SeasonalBaseline` (``anomaly.baseline``): robust hour-of-day/week baselines.
* Detectors, one per module, one contract (``anomaly._base.StreamingDetector``):
  ``P99DriftDetector``, ``VarianceDetector``, ``ChangepointDetector``, ``MultivariateDetector``,
  ``LikelihoodDetector``, ``PatternKnnDetector``, ``EnsembleDetector`` (the best on NAB).
* ``DETECTORS`` / ``make_detector(name, **params)`` (``anomaly.registry``).
* ``warden eval nab`` (``anomaly.cli.register``), scorer in ``anomaly.nab.scorer``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DETECTORS",
    "ChangepointDetector",
    "EnsembleDetector",
    "LikelihoodDetector",
    "MultivariateDetector",
    "P99DriftDetector",
    "PatternKnnDetector",
    "SeasonalBaseline",
    "StreamingDetector",
    "VarianceDetector",
    "make_detector",
]

_WHERE = {
    "DETECTORS": "anomaly.registry",
    "make_detector": "anomaly.registry",
    "ChangepointDetector": "anomaly.changepoint",
    "EnsembleDetector": "anomaly.ensemble",
    "LikelihoodDetector": "anomaly.likelihood",
    "MultivariateDetector": "anomaly.multivariate",
    "P99DriftDetector": "anomaly.p99_drift",
    "PatternKnnDetector": "anomaly.pattern_knn",
    "SeasonalBaseline": "anomaly.baseline",
    "StreamingDetector": "anomaly._base",
    "VarianceDetector": "anomaly.variance",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'anomaly' has no attribute {name!r}")
