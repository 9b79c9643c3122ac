"""The SLI during an experiment: client latency and errors per window, and what they add up to.

A background thread sends ``requests`` real inferences per window (through the router or to
one replica) and records each window's P99 and error ratio; a window violates the SLO when
either is over its limit. From the windows, pure functions compute SLO-violation seconds and
time to recover, so those are tested without processes.

Why probe the client path rather than only read the store: it measures what a user sees even
when no engine or trace pipeline runs (today's CI), and a hung replica shows up as timeouts.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict

from chaos.experiment import SliSpec
from chaos.probes import infer_once
from chaos.target import Target

__all__ = ["SliSampler", "SliWindow", "StoreSli", "slo_violation_s", "store_windows",
           "time_to_recover_s"]


class SliWindow(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")

    start: float
    end: float
    p99_ms: float
    error_ratio: float
    n: int
    violating: bool


def slo_violation_s(windows: Sequence[SliWindow], since: float = -math.inf) -> float:
    """Seconds of violating windows that end after ``since``."""
    return float(sum(w.end - max(w.start, since) for w in windows
                     if w.violating and w.end > since))


def time_to_recover_s(windows: Sequence[SliWindow], t0: float, recover_windows: int = 2
                      ) -> tuple[float | None, str]:
    """Seconds from ``t0`` until the SLO holds again for ``recover_windows`` windows in a row.

    Returns ``(0.0, why)`` when no window violated after ``t0`` and ``(None, why)`` when the SLO
    was violated and never recovered in the windows seen.
    """
    after = [w for w in windows if w.end > t0]
    first_bad = next((i for i, w in enumerate(after) if w.violating), None)
    if first_bad is None:
        return 0.0, "SLO not violated after the fault"
    run = 0
    for i in range(first_bad + 1, len(after)):
        run = 0 if after[i].violating else run + 1
        if run >= recover_windows:
            start = after[i - recover_windows + 1].start
            return max(0.0, start - t0), f"healthy from {start - t0:.1f} s after the fault"
    return None, f"SLO violated and not recovered ({len(after) - first_bad} windows watched)"


class SliSampler:
    """Samples the SLI in a thread until :meth:`stop`; ``windows`` grows as it goes."""

    def __init__(self, spec: SliSpec, target: Target, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.url = target.router_url if spec.via == "router" else target.replica(spec.via).url
        self.clock = clock
        self.windows: list[SliWindow] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> SliSampler:
        self._thread = threading.Thread(target=self._loop, name="chaos-sli", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[SliWindow]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.spec.timeout_s * self.spec.requests + 5)
        return self.snapshot()

    def snapshot(self) -> list[SliWindow]:
        with self._lock:
            return list(self.windows)

    def _loop(self) -> None:
        s = self.spec
        gap = s.window_s / s.requests
        with httpx.Client() as client:
            while not self._stop.is_set():
                start = self.clock()
                results = []
                for _ in range(s.requests):
                    t = time.monotonic()
                    results.append(infer_once(client, self.url, s.model, s.timeout_s))
                    if self._stop.wait(max(0.0, gap - (time.monotonic() - t))):
                        break
                lat = np.array([r[0] for r in results if r[1]]) * 1e3
                p99 = float(np.percentile(lat, 99)) if len(lat) else math.inf
                err = sum(1 for r in results if not r[1]) / max(1, len(results))
                window = SliWindow(start=start, end=self.clock(), p99_ms=p99, error_ratio=err,
                                   n=len(results),
                                   violating=p99 > s.threshold_ms or err > s.max_error_ratio)
                with self._lock:
                    self.windows.append(window)

    def recovered(self, t0: float) -> bool:
        ttr, _ = time_to_recover_s(self.snapshot(), t0, self.spec.recover_windows)
        return ttr is not None


def store_windows(store: Any, spec: SliSpec, start: float, end: float) -> list[SliWindow]:
    """SLI windows from traced request chains in the store (``Store.chains``), ``window_s``
    wide, aligned to ``start``; windows with no request are left out (no traffic, no verdict)."""
    replica = None if spec.via == "router" else spec.via
    df = store.chains(start, end, model=spec.model, replica=replica)
    if df.empty:
        return []
    out = []
    idx = ((df["ts"].astype(float) - start) // spec.window_s).astype(int)
    for i, group in df.groupby(idx, sort=True):
        ok = group[~group["error"]]
        lat = ok["latency_s"].astype(float).to_numpy() * 1e3
        p99 = float(np.percentile(lat, 99)) if len(lat) else math.inf
        err = float(group["error"].mean())
        w0 = start + int(i) * spec.window_s
        out.append(SliWindow(start=w0, end=w0 + spec.window_s, p99_ms=p99, error_ratio=err,
                             n=len(group), violating=p99 > spec.threshold_ms
                             or err > spec.max_error_ratio))
    return out


class StoreSli:
    """The :class:`SliSampler` interface over the store: nothing to run, windows on request."""

    def __init__(self, spec: SliSpec, store: Any, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec, self.store, self.clock = spec, store, clock
        self._start = clock()

    def start(self) -> StoreSli:
        self._start = self.clock()
        return self

    def snapshot(self) -> list[SliWindow]:
        return store_windows(self.store, self.spec, self._start, self.clock())

    def stop(self) -> list[SliWindow]:
        return self.snapshot()

    def recovered(self, t0: float) -> bool:
        ttr, _ = time_to_recover_s(self.snapshot(), t0, self.spec.recover_windows)
        return ttr is not None
