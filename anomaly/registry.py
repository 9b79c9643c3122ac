"""Detectors by name, so configuration and the CLI can name them.

``DETECTORS`` maps a name to a detector class; ``make_detector(name, **params)`` builds one and
raises ``ValueError`` for an unknown name (listing the known ones) or a bad hyper-parameter.
``BEST_NAB`` is the detector with the best NAB standard score on the development split
(``ensemble``: 71.13 standard; ``likelihood`` 62.37; see ``benchmarks/nab_scores.py``).
"""

from __future__ import annotations

from typing import Any

from anomaly._base import StreamingDetector
from anomaly.changepoint import ChangepointDetector
from anomaly.ensemble import EnsembleDetector
from anomaly.likelihood import LikelihoodDetector
from anomaly.multivariate import MultivariateDetector
from anomaly.p99_drift import P99DriftDetector
from anomaly.pattern_knn import PatternKnnDetector
from anomaly.variance import VarianceDetector

__all__ = ["BEST_NAB", "DETECTORS", "UNIVARIATE", "make_detector"]

DETECTORS: dict[str, type[StreamingDetector]] = {
    cls.name: cls
    for cls in (
        ChangepointDetector,
        EnsembleDetector,
        LikelihoodDetector,
        MultivariateDetector,
        P99DriftDetector,
        PatternKnnDetector,
        VarianceDetector,
    )
}

#: the detectors that take one float per point (the throughput target applies to these)
UNIVARIATE: tuple[str, ...] = tuple(sorted(n for n, c in DETECTORS.items() if not c.multivariate))

BEST_NAB = "ensemble"


def make_detector(name: str, **params: Any) -> StreamingDetector:
    """Build a registered detector; ``ValueError`` names an unknown detector or parameter."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {sorted(DETECTORS)}") from None
    try:
        return cls(**params)
    except TypeError as exc:  # unexpected keyword
        raise ValueError(f"{name}: {exc}") from None
