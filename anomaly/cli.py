"""``warden eval nab``: stream detectors over a NAB-layout corpus and print NAB scores.

Hooked into ``warden`` by ``register(subparsers)``. Results: one file per data file,
``OUT/CATEGORY/warden_NAME.csv`` (``timestamp,value,anomaly_score``); with ``--detector all`` each
detector gets its own ``OUT/DETECTOR/`` folder. Progress goes to stderr, tables to stdout.
Detector names are the registry's, and ``NAME+lh`` runs a detector through NAB's
anomaly likelihood and a refractory period (:mod:`anomaly.postprocess`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from anomaly._base import StreamingDetector

__all__ = ["CALIBRATED", "nab_detector_names", "nab_factory", "register", "run_eval_nab"]

#: detectors that already end in the anomaly likelihood and a refractory period: no ``+lh`` variant
CALIBRATED = frozenset({"ensemble", "likelihood"})


def nab_detector_names() -> list[str]:
    """Every detector ``--detector all`` runs: each registered one, plus ``+lh`` variants."""
    from anomaly.registry import BEST_NAB, DETECTORS

    names = [BEST_NAB] + sorted(n for n in DETECTORS if n != BEST_NAB)
    names += [f"{n}+lh" for n in sorted(DETECTORS) if n not in CALIBRATED]
    return names


def nab_factory(name: str) -> Callable[[], StreamingDetector]:
    """A zero-argument factory for a detector name (``ValueError`` if unknown)."""
    from anomaly.postprocess import WithLikelihood
    from anomaly.registry import make_detector

    if name.endswith("+lh"):
        base = name[:-3]
        make_detector(base)  # validate now, not on the first file
        return lambda: WithLikelihood(make_detector(base))
    make_detector(name)
    return lambda: make_detector(name)


def run_eval_nab(args: argparse.Namespace) -> int:
    """Run the evaluation; returns a process exit code (2 for bad arguments or data)."""
    import numpy as np

    from anomaly.nab.corpus import load_corpus, run_detector, write_result
    from anomaly.nab.scorer import PROFILES, prepare_file, score_all_profiles
    from anomaly.registry import BEST_NAB

    names = nab_detector_names() if args.detector == "all" else [args.detector or BEST_NAB]
    try:
        factories = {n: nab_factory(n) for n in names}
        files = load_corpus(args.data, args.windows)
    except (ValueError, OSError) as exc:
        print(f"warden eval nab: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows = []
    per_cat: dict[str, dict[str, float]] = {}
    for name in names:
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            scores = run_detector(factories[name], files, progress=sys.stderr, label=name)
        elapsed = time.perf_counter() - t0
        dest = out / name if len(names) > 1 else out
        for f in files:
            write_result(dest, f, scores[f.name])
        prepared = [prepare_file(f.name, f.timestamps, scores[f.name], f.windows) for f in files]
        result = score_all_profiles(prepared)
        rows.append((name, result, elapsed))
        per_cat[name] = result["standard"].per_category()
    n_points = sum(len(f.values) for f in files)
    print(f"NAB scores on {len(files)} files ({n_points} points), threshold swept over the corpus")
    header = f"{'detector':<18}" + "".join(f"{p:>20}" for p in PROFILES) + f"{'threshold':>11}{'seconds':>9}"
    print(header)
    print("-" * len(header))
    for name, result, elapsed in rows:
        cells = "".join(f"{result[p].normalized:>20.2f}" for p in PROFILES)
        print(f"{name:<18}{cells}{result['standard'].threshold:>11.4f}{elapsed:>9.1f}")
    cats = sorted({c for d in per_cat.values() for c in d})
    print("\nstandard profile, raw score by category (null = -windows, perfect = +windows):")
    print(f"{'category':<24}" + "".join(f"{n:>18}" for n, _, _ in rows))
    for c in cats:
        print(f"{c:<24}" + "".join(f"{per_cat[n].get(c, 0.0):>18.2f}" for n, _, _ in rows))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``eval nab`` to the ``warden`` command line."""
    ev = subparsers.add_parser("eval", help="evaluate detectors on labelled benchmarks")
    evsub = ev.add_subparsers(dest="eval_command", metavar="BENCHMARK", required=True)
    nab = evsub.add_parser("nab", help="score detectors on a NAB-layout corpus with NAB's rules")
    nab.add_argument("--data", required=True, help="folder with CATEGORY/NAME.csv files")
    nab.add_argument("--windows", required=True, help="NAB windows JSON (CATEGORY/NAME.csv -> windows)")
    nab.add_argument("--out", required=True, help="folder for the result files")
    nab.add_argument(
        "--detector",
        default=None,
        help="registered detector name, NAME+lh, or 'all' (default: the best on NAB)",
    )
    nab.set_defaults(func=run_eval_nab)
