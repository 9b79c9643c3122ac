"""Which PyOD model for per-replica feature vectors? ROC AUC and speed on a constructed task.

Task: 4 features per replica and tick (load, p50 ms, p99 ms, GPU utilisation), correlated as in a
real fleet. Training: 500 clean vectors (the detector's baseline window). Test: 2,000 clean
vectors plus 200 anomalies of four kinds, 50 each: marginal extremes (p99 x3), correlation
breaks that no single feature shows (GPU idle at high load; p99 up while p50 and load are
normal, each within the normal range of its own feature), and a whole-replica shift. Scores via
the streaming detector's own path (robust scaling, conformal calibration), seeds 0..2.

Usage: ``python benchmarks/multivariate_models.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from anomaly.multivariate import MODELS, MultivariateDetector  # noqa: E402


def features(n: int, rng: np.random.Generator) -> np.ndarray:
    load = rng.uniform(50, 150, n)
    p50 = 5 + 0.02 * load + rng.normal(0, 0.3, n)
    p99 = 3 * p50 + rng.normal(0, 1.0, n)
    util = 0.5 * load + rng.normal(0, 3, n)
    return np.column_stack([load, p50, p99, util])


def task(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    train = features(500, rng)
    clean = features(2000, rng)
    kinds = {}
    a = features(50, rng)
    a[:, 2] *= 3.0
    kinds["p99 x3"] = a
    b = features(50, rng)
    b[:, 0] = rng.uniform(130, 150, 50)
    b[:, 3] = rng.uniform(25, 40, 50)  # util of a load-60 replica at load 140
    kinds["idle GPU at load"] = b
    c = features(50, rng)
    c[:, 0] = rng.uniform(50, 70, 50)
    c[:, 1] = 5 + 0.02 * c[:, 0] + rng.normal(0, 0.3, 50)
    c[:, 2] = rng.uniform(24, 27, 50)  # a p99 normal only for high load
    kinds["p99 up, p50 normal"] = c
    d = features(50, rng)
    d[:, 1:3] += 2.0
    kinds["replica shift"] = d
    return train, clean, np.vstack(list(kinds.values())), kinds


def scores(model: str, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float]:
    det = MultivariateDetector(model=model, window=len(train), min_fit=50, refit_every=10**9, gate=1.0)
    det.fit((np.arange(len(train), dtype=float), train))
    t0 = time.perf_counter()
    raw = np.array([det._raw(row) for row in test])
    return raw, len(test) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one seed")
    args = ap.parse_args(argv)
    seeds = [0] if args.quick else [0, 1, 2]
    rows = {}
    for model in MODELS:
        aucs: dict[str, list[float]] = {}
        rates = []
        for seed in seeds:
            train, clean, bad, kinds = task(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sc, rate = scores(model, train, np.vstack([clean, bad]))
            rates.append(rate)
            s_clean, start = sc[: len(clean)], len(clean)
            for name, block in kinds.items():
                s_bad = sc[start : start + len(block)]
                start += len(block)
                y = np.r_[np.zeros(len(s_clean)), np.ones(len(s_bad))]
                aucs.setdefault(name, []).append(roc_auc_score(y, np.r_[s_clean, s_bad]))
            y = np.r_[np.zeros(len(clean)), np.ones(len(bad))]
            aucs.setdefault("all", []).append(roc_auc_score(y, sc))
        rows[model] = ({k: statistics.mean(v) for k, v in aucs.items()}, statistics.median(rates))
    cols = list(next(iter(rows.values()))[0])
    print(f"{'model':<9}" + "".join(f"{c:>20}" for c in cols) + f"{'points/s':>11}")
    for model, (auc, rate) in rows.items():
        print(f"{model:<9}" + "".join(f"{auc[c]:>20.3f}" for c in cols) + f"{rate:>11,.0f}")
    print("ROC AUC, mean over seeds", seeds, "(fast path for ecod and knn, PyOD per point otherwise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
