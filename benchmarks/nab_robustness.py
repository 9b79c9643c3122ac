"""How much the NAB ensemble's score owes to this split: per category, per hyper-parameter, and
leaving one category out.

Usage: ``python benchmarks/nab_robustness.py [--data DIR] [--windows FILE] [--quick]``. Three
tables, all on the standard profile unless named:

* per category, at the corpus-best threshold: windows, windows detected, false positives, raw
  score and the category's own normalised score (null 0, perfect 100; a category without windows
  has only its raw score, the false positives' cost), for the ensemble and the ensemble before
  the two-scale kNN and the spatial rule (``knn_step=1, use_spatial=False``);
* the spread when one hyper-parameter moves and the others keep their defaults: the three
  profiles for each move, and the range of the standard score over all moves;
* leave one category out over the grid ``knn_step`` x ``spatial_tol`` (spatial rule off, 0.02,
  0.05, 0.10): for each category, the setting with the best standard score on the other five
  (threshold swept over those five), and the held-out category's score with that setting against
  its score with the defaults (both at the threshold chosen without it).

The corpus is 296,042 points and every setting is a full run (2-8 s for the ensemble on a quiet
machine), so the whole script takes 3-4 minutes; ``--quick`` keeps a few moves and a
2 x 2 grid. Run it under ``nice``, one at a time.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from anomaly.nab.corpus import NabFile, load_corpus, run_detector  # noqa: E402
from anomaly.nab.scorer import (  # noqa: E402
    PROFILES,
    FileScoring,
    prepare_file,
    score_at_threshold,
    score_corpus,
)
from anomaly.registry import make_detector  # noqa: E402

NAB = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nab"

#: label -> ensemble parameters compared per category
VARIANTS: dict[str, dict[str, Any]] = {
    "ensemble": {},
    "ensemble before (knn_step 1, no spatial)": {"knn_step": 1, "use_spatial": False},
}

#: one hyper-parameter moved at a time, the others at their defaults
MOVES: list[dict[str, Any]] = [
    {"knn_step": 2},
    {"knn_step": 3},
    {"knn_step": 5},
    {"knn_step": 6},
    {"spatial_tol": 0.02},
    {"spatial_tol": 0.1},
    {"use_spatial": False},
    {"refractory": 60},
    {"refractory": 150},
    {"extend": 50},
    {"extend": 150},
    {"long": 1500},
    {"long": 3000},
    {"short": 5},
    {"short": 10},
    {"warmup": 200},
    {"warmup": 400},
    {"knn_gate": 0.7},
    {"knn_gate": 1.5},
    {"gate_floor": 0.4},
    {"gate_floor": 0.6},
]
QUICK_MOVES = [{"knn_step": 3}, {"knn_step": 5}, {"spatial_tol": 0.1}, {"refractory": 150}]

#: the leave-one-category-out grid (None: the spatial rule off)
GRID_STEPS = (1, 2, 3, 4, 5, 6)
GRID_TOLS: tuple[float | None, ...] = (None, 0.02, 0.05, 0.1)


def grid_params(step: int, tol: float | None) -> dict[str, Any]:
    return {"knn_step": step, "use_spatial": False} if tol is None else {"knn_step": step, "spatial_tol": tol}


def label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


class Runs:
    """Prepared NAB files per ensemble setting, each setting run once."""

    def __init__(self, files: Sequence[NabFile]) -> None:
        self.files = list(files)
        self._done: dict[str, list[FileScoring]] = {}
        self._defaults = make_detector("ensemble").get_params()

    def prepared(self, params: dict[str, Any]) -> list[FileScoring]:
        key = repr(sorted({**self._defaults, **params}.items()))  # a default spelt out is the same run
        if key not in self._done:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                scores = run_detector(lambda: make_detector("ensemble", **params), self.files, progress=None)
            self._done[key] = [prepare_file(f.name, f.timestamps, scores[f.name], f.windows) for f in self.files]
        return self._done[key]


def category(name: str) -> str:
    return name.split("/", 1)[0]


def normalised(files: Sequence[FileScoring], threshold: float, profile: str = "standard") -> float | None:
    """The files' own normalised score at ``threshold``; None when they hold no window."""
    prof = PROFILES[profile]
    windows = sum(f.n_windows for f in files)
    if windows == 0:
        return None
    raw = sum(score_at_threshold(f, prof, threshold) for f in files)
    return 100.0 * (raw + prof.a_fn * windows) / ((prof.a_tp + prof.a_fn) * windows)


def per_category(files: Sequence[FileScoring]) -> dict[str, tuple[int, int, int, float, float | None]]:
    """Category -> (windows, detected, false positives, raw, normalised) at the corpus threshold."""
    prof = PROFILES["standard"]
    thr = score_corpus(files, prof).threshold
    out: dict[str, tuple[int, int, int, float, float | None]] = {}
    for cat in sorted({category(f.name) for f in files}):
        mine = [f for f in files if category(f.name) == cat]
        windows = detected = fps = 0
        raw = 0.0
        for f in mine:
            det = f.scores >= thr
            fps += int((det & (f.window < 0)).sum())
            hit = set(f.window[det & (f.window >= 0)].tolist())
            windows += f.n_windows
            detected += len(hit)
            raw += score_at_threshold(f, prof, thr)
        out[cat] = (windows, detected, fps, raw, normalised(mine, thr))
    return out


def fmt(v: float | None) -> str:
    return f"{v:.2f}" if v is not None else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(NAB / "data"))
    ap.add_argument("--windows", default=str(NAB / "windows.json"))
    ap.add_argument("--quick", action="store_true", help="a few moves and a 2 x 2 grid")
    args = ap.parse_args(argv)
    runs = Runs(load_corpus(args.data, args.windows))
    moves = QUICK_MOVES if args.quick else MOVES
    steps = (1, 4) if args.quick else GRID_STEPS
    tols = (None, 0.05) if args.quick else GRID_TOLS

    print("Per category, standard profile, at the corpus-best threshold")
    for name, params in VARIANTS.items():
        files = runs.prepared(params)
        print(f"\n{name}: {score_corpus(files, 'standard').normalized:.2f} standard")
        print(f"{'category':<24}{'windows':>8}{'detected':>9}{'FP':>5}{'raw':>8}{'normalised':>11}")
        for cat, (w, d, fp, raw, norm) in per_category(files).items():
            print(f"{cat:<24}{w:>8}{d:>9}{fp:>5}{raw:>8.2f}{fmt(norm):>11}")

    print("\nOne hyper-parameter moved, the others at their defaults")
    print(f"{'setting':<28}" + "".join(f"{p:>20}" for p in PROFILES))
    standard = []
    for params in [{}] + moves:
        res = {p: score_corpus(runs.prepared(params), p).normalized for p in PROFILES}
        standard.append(res["standard"])
        print(f"{label(params):<28}" + "".join(f"{res[p]:>20.2f}" for p in PROFILES), flush=True)
    print(f"standard over these settings: {min(standard):.2f} .. {max(standard):.2f} (defaults {standard[0]:.2f})")

    print("\nLeave one category out, grid knn_step x spatial_tol (None: spatial rule off)")
    grid = [grid_params(s, t) for s in steps for t in tols]
    default = grid_params(4, 0.05)
    cats = sorted({category(f.name) for f in runs.files})
    print(f"{'held out':<24}{'picked on the other five':<34}{'train':>7}{'held-out picked':>16}{'defaults':>10}")
    pooled = {"picked": 0.0, "defaults": 0.0}  # held-out raw scores, summed over the folds
    for cat in cats:
        train = {
            label(g): score_corpus([f for f in runs.prepared(g) if category(f.name) != cat], "standard") for g in grid
        }
        best = max(grid, key=lambda g: train[label(g)].normalized)

        def held_out(g: dict[str, Any], key: str) -> str:
            """Normalised, or the raw score (``raw ...``) for a category without windows."""
            mine = [f for f in runs.prepared(g) if category(f.name) == cat]
            thr = train[label(g)].threshold
            pooled[key] += sum(score_at_threshold(f, PROFILES["standard"], thr) for f in mine)
            norm = normalised(mine, thr)
            if norm is not None:
                return f"{norm:.2f}"
            return f"raw {sum(score_at_threshold(f, PROFILES['standard'], thr) for f in mine):.2f}"

        print(
            f"{cat:<24}{label(best):<34}{train[label(best)].normalized:>7.2f}"
            f"{held_out(best, 'picked'):>16}{held_out(default, 'defaults'):>10}",
            flush=True,
        )
    windows = sum(f.n_windows for f in runs.prepared(default))
    norm = {k: 100.0 * (v + windows) / (2 * windows) for k, v in pooled.items()}
    print(
        f"{'all six, each held out':<24}{'':<34}{'':>7}{norm['picked']:>16.2f}{norm['defaults']:>10.2f}"
        "  (held-out raw scores summed, normalised over every window)"
    )
    print("\nWhole split, every grid setting (standard)")
    for g in grid:
        print(f"{label(g):<34}{score_corpus(runs.prepared(g), 'standard').normalized:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
