"""NAB scores of detectors and of the ensemble's ablations on a NAB-layout corpus, as a table.

Usage: ``python benchmarks/nab_scores.py [--data DIR] [--windows FILE] [--detectors a,b] [--ablations]
[--quick]``. Defaults to the development split beside the repository
(``../shared/datasets/nab``). ``--ablations`` adds the ensemble with each stream switched on or
off and the refractory variants that were compared while choosing its defaults. ``--quick``
scores only the ensemble and the likelihood detector. Run it under ``nice``: the corpus is
296,042 points (about 1 s per fast detector, 2-3 s for the ensemble, 8 s for its ``knn_step=1``
variants, a few minutes for the whole table). ``points/CPU s`` is through ``run_detector`` (a
fresh detector's ``score_series`` per file: ``update`` per point, on NAB's data; the seeded series
of ``detector_throughput.py`` is the other measure), and per second
of this process's CPU time (all its threads), which a busy shared machine disturbs less than the
wall-clock ``seconds``. ``thresholds``: the score each profile's sweep settled on. Robustness (per category, hyper-parameter spread, leave one category
out): ``nab_robustness.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from anomaly._base import StreamingDetector  # noqa: E402
from anomaly.cli import nab_factory  # noqa: E402
from anomaly.nab.corpus import load_corpus, run_detector  # noqa: E402
from anomaly.nab.scorer import PROFILES, prepare_file, score_all_profiles  # noqa: E402
from anomaly.registry import make_detector  # noqa: E402

NAB = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nab"

#: label -> ensemble parameters, the comparisons behind its defaults
ABLATIONS: dict[str, dict[str, object]] = {
    "ensemble before: one kNN scale, no spatial rule": {"knn_step": 1, "use_spatial": False},
    "ensemble, one kNN scale (knn_step 1)": {"knn_step": 1},
    "ensemble, no spatial rule": {"use_spatial": False},
    "ensemble, knn_step 2": {"knn_step": 2},
    "ensemble, knn_step 6": {"knn_step": 6},
    "ensemble, spatial_tol 0 (any new extreme)": {"spatial_tol": 0.0},
    "ensemble, spatial_tol 0.1": {"spatial_tol": 0.1},
    "ensemble, no kNN gate": {"knn_gate": 0.0},
    "ensemble, kNN gate 0.5": {"knn_gate": 0.5},
    "ensemble, kNN gate 1.5": {"knn_gate": 1.5},
    "ensemble views + spatial only (no kNN)": {"use_knn": False},
    "ensemble, refractory 200, no extend": {"refractory": 200, "extend": 0},
    "ensemble, refractory 100, no extend": {"extend": 0},
    "ensemble + changepoint": {"use_changepoint": True},
    "ensemble + changepoint + p99": {"use_changepoint": True, "use_p99": True},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(NAB / "data"))
    ap.add_argument("--windows", default=str(NAB / "windows.json"))
    ap.add_argument(
        "--detectors",
        default="ensemble,likelihood,pattern_knn+lh,changepoint+lh,p99_drift+lh,variance+lh,multivariate+lh",
    )
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument("--quick", action="store_true", help="ensemble and likelihood only")
    args = ap.parse_args(argv)
    files = load_corpus(args.data, args.windows)
    names = ["ensemble", "likelihood"] if args.quick else [n for n in args.detectors.split(",") if n]
    runs: list[tuple[str, Callable[[], StreamingDetector]]] = [(n, nab_factory(n)) for n in names]
    if args.ablations and not args.quick:
        runs += [(label, lambda p=params: make_detector("ensemble", **p)) for label, params in ABLATIONS.items()]
    n_points = sum(len(f.values) for f in files)
    width = max(len(label) for label, _ in runs) + 2
    print(f"NAB on {len(files)} files, {n_points} points, {sum(len(f.windows) for f in files)} windows")
    print(
        f"{'detector':<{width}}"
        + "".join(f"{p:>20}" for p in PROFILES)
        + f"{'seconds':>9}{'CPU s':>8}{'points/CPU s':>14}  thresholds (std/lowFP/lowFN)"
    )
    for label, make in runs:
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            scores = run_detector(make, files, progress=None)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        prepared = [prepare_file(f.name, f.timestamps, scores[f.name], f.windows) for f in files]
        result = score_all_profiles(prepared)
        cells = "".join(f"{result[p].normalized:>20.2f}" for p in PROFILES)
        thresholds = "/".join(f"{result[p].threshold:.3f}" for p in PROFILES)
        print(f"{label:<{width}}{cells}{elapsed:>9.1f}{cpu:>8.1f}{n_points / cpu:>14,.0f}  {thresholds}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
