"""Seeded synthetic series with known injected anomalies, shared by the anomaly tests.

Shapes: ``ts`` ``(n,)`` seconds at a 60 s step, values ``(n,)``. A daily-like season (period
``PERIOD`` points = one day at a 60 s step); ``HISTORY`` points to ``fit`` on plus Gaussian noise of std ``SIGMA``; anomalies start at ``ONSET``.
"""

from __future__ import annotations

import numpy as np

HISTORY = 2880  # two days at one point a minute: enough for hour-of-day baselines
N = HISTORY + 1440
ONSET = HISTORY + 1000
PERIOD = 1440
SIGMA = 1.0
STEP = 60.0
T0 = 1_700_000_000.0

SCENARIOS = ("clean", "level_shift", "variance_burst", "spike")


def series(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded series of the named kind (one of ``SCENARIOS``)."""
    rng = np.random.default_rng(seed)
    i = np.arange(N)
    ts = T0 + STEP * i
    values = 50.0 + 5.0 * np.sin(2 * np.pi * i / PERIOD) + rng.normal(0.0, SIGMA, N)
    if kind == "level_shift":
        values[ONSET:] += 8.0 * SIGMA
    elif kind == "variance_burst":
        values[ONSET:] += rng.normal(0.0, 5.0 * SIGMA, N - ONSET)
    elif kind == "spike":
        values[ONSET] += 12.0 * SIGMA
    elif kind != "clean":
        raise ValueError(f"unknown kind {kind!r}")
    return ts, values
