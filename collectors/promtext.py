"""Prometheus text exposition: tolerant parsing, counters into rates, histogram quantiles.

Why tolerant: prometheus-client's parser stops at the first bad line, so one garbage line from a
half-written response would lose the whole scrape. :func:`parse_tolerant` parses the whole text
(fast path) and, only when that fails, re-parses line by line, keeping what it can and returning
the rejected lines so the caller can count them.

Why rates here: counters are cumulative since the replica started; a restart sets them back to
zero. :class:`CounterTracker` turns successive readings into per-second deltas and treats a
drop as a reset (the new value is the increase since the restart), as Prometheus' ``rate()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "CounterTracker",
    "Delta",
    "ParsedSample",
    "histogram_quantile",
    "merge_buckets",
    "parse_tolerant",
]


@dataclass(frozen=True, slots=True)
class ParsedSample:
    """One sample line: its name, labels, value, and its family's declared type."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    kind: str


def _samples(text: str) -> list[ParsedSample]:
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.append(ParsedSample(s.name, tuple(sorted(s.labels.items())), float(s.value), fam.type))
    return out


def parse_tolerant(text: str) -> tuple[list[ParsedSample], list[str]]:
    """Parse exposition text; returns ``(samples, rejected_lines)``. Never raises on bad text."""
    try:
        return _samples(text), []
    except Exception:  # noqa: BLE001 - the parser raises ValueError, IndexError, ...
        pass
    good: list[str] = []
    rejected: list[str] = []
    types: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            parts = stripped.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = stripped
            continue
        name = stripped.split("{", 1)[0].split(None, 1)[0]
        header = next((h for fam, h in types.items() if name.startswith(fam)), "")
        try:
            _samples(f"{header}\n{line}\n" if header else f"{line}\n")
        except Exception:  # noqa: BLE001
            rejected.append(line)
            continue
        if header and header not in good:
            good.append(header)
        good.append(line)
    try:
        return _samples("\n".join(good) + "\n"), rejected
    except Exception:  # noqa: BLE001 - e.g. a family split in two by a garbage line
        samples: list[ParsedSample] = []
        for line in good:
            if line.startswith("#"):
                continue
            try:
                samples.extend(_samples(line + "\n"))
            except Exception:  # noqa: BLE001
                rejected.append(line)
        return samples, rejected


@dataclass(frozen=True, slots=True)
class Delta:
    """The increase of one counter over one interval."""

    increase: float
    seconds: float
    reset: bool

    @property
    def rate(self) -> float:
        return self.increase / self.seconds


class CounterTracker:
    """Remembers the last reading of each counter and turns the next one into a :class:`Delta`."""

    def __init__(self) -> None:
        self._last: dict[object, tuple[float, float]] = {}

    def update(self, key: object, value: float, ts: float) -> Delta | None:
        """Record ``value`` at ``ts``; ``None`` on the first reading or a non-advancing clock."""
        last = self._last.get(key)
        self._last[key] = (value, ts)
        if last is None:
            return None
        last_value, last_ts = last
        dt = ts - last_ts
        if dt <= 0:
            return None
        if value < last_value:
            return Delta(value, dt, True)
        return Delta(value - last_value, dt, False)

    def forget(self, keep: Iterable[object]) -> None:
        """Drop state for keys not in ``keep`` (a model unloaded, a replica removed)."""
        keep = set(keep)
        for k in [k for k in self._last if k not in keep]:
            del self._last[k]


def merge_buckets(histograms: Iterable[Mapping[float, float]]) -> dict[float, float]:
    """Sum cumulative bucket counts (``{le: count}``) across replicas or intervals.

    Bucket counts add, which is why histograms (unlike summaries) merge across replicas.
    """
    out: dict[float, float] = {}
    for h in histograms:
        for le, c in h.items():
            out[le] = out.get(le, 0.0) + c
    return out


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding ``q``.

    ``buckets`` maps upper bounds (``le``, including ``math.inf``) to cumulative counts. Returns
    NaN with no observations; the highest finite bound when ``q`` falls in the ``+Inf`` bucket.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} not in [0, 1]")
    bounds: Sequence[float] = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return math.nan
    total = buckets[math.inf]
    if total <= 0:
        return math.nan
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if le == math.inf:
                return prev_bound
            if count == prev_count:
                return le
            return prev_bound + (le - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = le, count
    return prev_bound
