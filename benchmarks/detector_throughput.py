"""Points per second scored by each detector on one core (median of repeats), printed as a table.

Usage: ``python benchmarks/detector_throughput.py [--points N] [--repeats R] [--budget S] [--quick]``.
Each run streams a seeded seasonal series through ``update`` one point at a time (the engine's
hot path), after ``fit(None)``; the univariate detectors' target is 100,000 points/s. A repeat
stops after ``--budget`` seconds (the rate is over the points done), so a slow detector (the kNN
ones) costs seconds, not minutes; the ``points`` column says how many each repeat scored.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from anomaly.pattern_knn import PatternKnnDetector  # noqa: E402
from anomaly.registry import DETECTORS, UNIVARIATE, make_detector  # noqa: E402

TARGET = 100_000
#: (label, detector, parameters): pattern_knn's step 1 (the default before step 4: a search per
#: point over 1,992 patterns) and the ensemble's single kNN scale (a point-scale search per point)
VARIANTS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("pattern_knn step=1", "pattern_knn", {"step": 1}),
    ("ensemble knn_step=1", "ensemble", {"knn_step": 1}),
)


def measure(
    name: str,
    ts: list[float],
    values: list[float] | list[np.ndarray],
    repeats: int,
    budget: float,
    params: dict[str, object] | None = None,
) -> tuple[float, int]:
    """Median points/s over ``repeats`` and the points of the last repeat (< all if over budget)."""
    rates = []
    done = 0
    chunk = 1000
    for _ in range(repeats):
        det = make_detector(name, **(params or {})).fit(None)
        upd = det.update
        t0 = time.perf_counter()
        done = 0
        while done < len(ts):
            for t, v in zip(ts[done : done + chunk], values[done : done + chunk]):
                upd(t, v)
            done = min(done + chunk, len(ts))
            if time.perf_counter() - t0 > budget:
                break
        rates.append(done / (time.perf_counter() - t0))
    return statistics.median(rates), done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=float, default=5.0, help="seconds at most per repeat")
    ap.add_argument("--quick", action="store_true", help="20,000 points, for a smoke run")
    args = ap.parse_args(argv)
    n = 20_000 if args.quick else args.points
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rng = np.random.default_rng(0)
    i = np.arange(n)
    ts = (1.7e9 + 60.0 * i).tolist()
    vals = (50 + 5 * np.sin(2 * np.pi * i / 1440) + rng.normal(0, 1, n)).tolist()
    print(f"{'detector':<18}{'points/s':>14}{'points':>9}{'target':>12}  (n={n}, median of {args.repeats})")
    for name in sorted(DETECTORS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = n if name in UNIVARIATE else min(n, 20_000)
            rate, done = measure(name, ts[:m], vals[:m], args.repeats, args.budget)
        target = f">={TARGET // 1000}k " + ("ok" if rate >= TARGET else "MISS") if name in UNIVARIATE else "-"
        print(f"{name:<18}{rate:>14,.0f}{done:>9}{target:>12}")
    # variants: the settings a faster default replaced, for the trade it made
    for label, name, params in VARIANTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rate, done = measure(name, ts, vals, args.repeats, args.budget, params)
        print(f"{label:<18}{rate:>14,.0f}{done:>9}{'(variant)':>12}")
    print_knn_search_times(vals, args.repeats)
    return 0


def print_knn_search_times(vals: list[float], repeats: int) -> None:
    """One kNN search (``PatternKnnDetector.distance``) over a full history, in microseconds.

    The ensemble searches its block patterns once per block and its point patterns only where
    the views reach the alarm, so its rate above depends on these and on how often each runs.
    """
    for label, step in (("block (step 4)", 4), ("point (step 1)", 1)):
        det = PatternKnnDetector(step=step)
        for t, v in enumerate(vals[:5000]):
            det.update(float(t), v)
        n = 2000
        us = statistics.median(timeit.timeit(det.distance, number=n) / n * 1e6 for _ in range(repeats))
        print(f"kNN search, {label}: {det.patterns} past patterns, {us:.1f} us (median of {repeats} x {n})")


if __name__ == "__main__":
    sys.exit(main())
