"""NAB scoring, written from NAB's published rules (numenta/NAB ``nab/sweeper.py``).

Why our own: the scorer decides whether a detector "works", so it must be exact and tested on
hand-computed cases rather than trusted. The rules, per data file of ``n`` rows:

* Probationary period: the first ``min(floor(0.15 * n), 0.15 * 5000)`` rows are not scored.
* Each row gets a *sweep score* as if it were a detection:
  inside a window ``[a, b]`` (width ``W = b - a + 1``) at row ``i`` the relative position is
  ``-(b - i + 1) / W`` (-1 at the left edge) and the score is
  ``A_TP * scaled_sigmoid(pos) / scaled_sigmoid(-1)``; outside every window the score is
  ``A_FP * scaled_sigmoid(pos)`` with ``pos = |i - b_prev| / (W_prev - 1)`` measured from the
  previous window's right edge, or ``pos = 3`` (score ``-A_FP``) before the first window.
* ``scaled_sigmoid(x) = 2 / (1 + exp(5 x)) - 1``, and ``-1`` for ``x >= 3``.
* At a threshold ``t`` every scorable row with ``anomaly_score >= t`` is a detection. The file's
  score is the sum of the FP rows' sweep scores plus, for each window, the best (= earliest)
  detection's sweep score, or ``-A_FN`` if the window has none (``max(-A_FN, best)``).
* The threshold is swept over every distinct anomaly score of the whole corpus (plus 1.1 = no
  detection) and the one with the highest corpus total is kept (ties: the highest threshold).
* Normalised score: ``100 * (raw - null) / (perfect - null)`` with ``null = -A_FN * windows``
  (never detecting) and ``perfect = A_TP * windows`` (detecting each window at its first row).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "PROFILES",
    "CorpusScore",
    "FileScoring",
    "Profile",
    "prepare_file",
    "probationary_length",
    "scaled_sigmoid",
    "score_all_profiles",
    "score_at_threshold",
    "score_corpus",
    "sweep_thresholds",
]


@dataclass(frozen=True)
class Profile:
    """An application profile: NAB's cost matrix (``config/profiles.json``)."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float
    a_tn: float = 1.0


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", a_tp=1.0, a_fp=0.11, a_fn=1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", a_tp=1.0, a_fp=0.22, a_fn=1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", a_tp=1.0, a_fp=0.11, a_fn=2.0),
}

PROBATION_PERCENT = 0.15
NO_DETECTION_THRESHOLD = 1.1


def scaled_sigmoid(x: float | np.ndarray) -> np.ndarray:
    """NAB's scaled sigmoid: +0.98661 at -1 (window's left edge), 0 at 0, -1 from 3 on."""
    x = np.asarray(x, dtype=float)
    val = 2.0 / (1.0 + np.exp(np.clip(5.0 * x, -700, 700))) - 1.0
    return np.where(x >= 3.0, -1.0, val)


def probationary_length(n_rows: int, percent: float = PROBATION_PERCENT) -> float:
    """Rows at the head of a file whose detections are ignored (NAB ``_getProbationaryLength``)."""
    return min(math.floor(percent * n_rows), percent * 5000)


@dataclass
class FileScoring:
    """One file's rows prepared for scoring (probationary rows already dropped).

    Attributes:
        name: the file's relative path, ``CATEGORY/NAME.csv``.
        scores: anomaly scores of scorable rows, shape ``(m,)``.
        unit_sweep: per-row sweep scores for weight 1, shape ``(m,)``: ``scaled_sigmoid(pos) /
            scaled_sigmoid(-1)`` inside windows, ``scaled_sigmoid(pos)`` outside.
        window: window index per scorable row, ``-1`` outside windows, shape ``(m,)``.
        n_windows: windows with at least one scorable row.
    """

    name: str
    scores: np.ndarray
    unit_sweep: np.ndarray
    window: np.ndarray
    n_windows: int

    def sweep(self, profile: Profile) -> np.ndarray:
        """Weighted sweep scores for a profile, shape ``(m,)``."""
        return np.where(self.window >= 0, self.unit_sweep * profile.a_tp, self.unit_sweep * profile.a_fp)


def prepare_file(
    name: str,
    timestamps: Sequence[np.datetime64] | np.ndarray,
    anomaly_scores: Sequence[float] | np.ndarray,
    windows: Sequence[tuple[object, object]],
) -> FileScoring:
    """Compute the per-row sweep scores of one file (NAB ``calcSweepScore``).

    A window covers the rows whose timestamp lies in ``[start, end]``; NAB's windows start and end
    on existing rows, where this is the same as its exact-match lookup.
    """
    ts = np.asarray(timestamps, dtype="datetime64[ns]")
    scores = np.asarray(anomaly_scores, dtype=float)
    if ts.shape != scores.shape:
        raise ValueError(f"{name}: {len(ts)} timestamps but {len(scores)} anomaly scores")
    n = len(ts)
    window = np.full(n, -1, dtype=np.int64)
    unit = np.empty(n, dtype=float)
    max_tp = float(scaled_sigmoid(-1.0))
    idx = np.arange(n, dtype=float)
    bounds: list[tuple[int, int]] = []
    for start, end in windows:
        a = int(np.searchsorted(ts, np.datetime64(start, "ns"), side="left"))
        b = int(np.searchsorted(ts, np.datetime64(end, "ns"), side="right")) - 1
        if b >= a:
            bounds.append((a, b))
    bounds.sort()
    # Rows before the first window: FP at full weight.
    first = bounds[0][0] if bounds else n
    unit[:first] = -1.0
    for k, (a, b) in enumerate(bounds):
        width = float(b - a + 1)
        pos = -(b - idx[a : b + 1] + 1) / width
        unit[a : b + 1] = scaled_sigmoid(pos) / max_tp
        window[a : b + 1] = k
        nxt = bounds[k + 1][0] if k + 1 < len(bounds) else n
        if nxt > b + 1:
            past = np.abs(idx[b + 1 : nxt] - b) / max(width - 1.0, 1.0)
            unit[b + 1 : nxt] = scaled_sigmoid(past)
    keep = idx >= probationary_length(n)
    kept_windows = window[keep]
    n_windows = len(set(kept_windows[kept_windows >= 0].tolist()))
    return FileScoring(name, scores[keep], unit[keep], kept_windows, n_windows)


def _file_window_offsets(files: Sequence[FileScoring]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate files into corpus arrays with globally unique window ids."""
    scores, sweeps, wins, is_tp = [], [], [], []
    offset = 0
    for f in files:
        scores.append(f.scores)
        sweeps.append(f.unit_sweep)
        w = np.where(f.window >= 0, f.window + offset, -1)
        wins.append(w)
        offset += int(f.window.max()) + 1 if len(f.window) and f.window.max() >= 0 else 0
    if not files:
        empty = np.empty(0)
        return empty, empty, np.empty(0, dtype=np.int64), np.empty(0, dtype=bool)
    s = np.concatenate(scores)
    u = np.concatenate(sweeps)
    w = np.concatenate(wins)
    return s, u, w, w >= 0


def sweep_thresholds(files: Sequence[FileScoring], profile: Profile) -> list[tuple[float, float]]:
    """Corpus total raw score at every candidate threshold (NAB ``calcScoreByThreshold``).

    Returns ``[(threshold, raw_score), ...]`` from ``1.1`` (no detection) downwards.
    """
    s, u, w, in_win = _file_window_offsets(files)
    sweep = np.where(in_win, u * profile.a_tp, u * profile.a_fp)
    order = np.argsort(-s, kind="stable")
    window_ids = np.unique(w[in_win])
    best: dict[int, float] = {int(k): -profile.a_fn for k in window_ids}
    total = -profile.a_fn * len(window_ids)
    out: list[tuple[float, float]] = []
    cur = NO_DETECTION_THRESHOLD
    for i in order.tolist():
        si = float(s[i])
        if si != cur:
            out.append((cur, total))
            cur = si
        wi = int(w[i])
        if wi < 0:
            total += float(sweep[i])
        else:
            v = float(sweep[i])
            if v > best[wi]:
                total += v - best[wi]
                best[wi] = v
    out.append((cur, total))
    return out


def score_at_threshold(f: FileScoring, profile: Profile, threshold: float) -> float:
    """One file's raw score when every row with ``score >= threshold`` is a detection."""
    det = f.scores >= threshold
    sweep = f.sweep(profile)
    fp = float(sweep[det & (f.window < 0)].sum())
    total = fp
    for k in np.unique(f.window[f.window >= 0]).tolist():
        hits = sweep[det & (f.window == k)]
        total += max(-profile.a_fn, float(hits.max())) if len(hits) else -profile.a_fn
    return total


@dataclass
class CorpusScore:
    """A detector's NAB result for one profile."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalized: float
    per_file: dict[str, float] = field(default_factory=dict)

    def per_category(self) -> dict[str, float]:
        """Raw score summed by category (the folder part of each file name)."""
        out: dict[str, float] = {}
        for name, raw in self.per_file.items():
            cat = name.split("/", 1)[0]
            out[cat] = out.get(cat, 0.0) + raw
        return out


def score_corpus(files: Sequence[FileScoring], profile: Profile | str) -> CorpusScore:
    """Sweep the threshold over the corpus, keep the best, and normalise (null 0, perfect 100)."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    sweeps = sweep_thresholds(files, prof)
    best_thr, best_raw = sweeps[0]
    for thr, raw in sweeps[1:]:
        if raw > best_raw:  # strict: ties keep the higher threshold, as NAB's stable sort does
            best_thr, best_raw = thr, raw
    n_windows = sum(f.n_windows for f in files)
    null = -prof.a_fn * n_windows
    perfect = prof.a_tp * n_windows
    per_file = {f.name: score_at_threshold(f, prof, best_thr) for f in files}
    denom = perfect - null
    normalized = 100.0 * (best_raw - null) / denom if denom else 0.0
    return CorpusScore(prof.name, best_thr, best_raw, null, perfect, normalized, per_file)


def score_all_profiles(files: Sequence[FileScoring]) -> Mapping[str, CorpusScore]:
    """The three NAB profiles at once."""
    return {name: score_corpus(files, p) for name, p in PROFILES.items()}
