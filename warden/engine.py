"""The engine tick: collect, store, then let detection, alerting and remediation look.

One loop at a fixed interval (1 s by default). Ticks are scheduled on a fixed grid
(``start + k * interval``) rather than "sleep one interval after the work", so the loop does not
drift by the time each tick takes; when a tick overruns, the missed slots are skipped (and
counted) rather than run in a burst, because a burst of stale ticks would feed detectors a
time axis that never happened.

A collector or hook that raises is logged, counted and skipped for that tick: the hot loop never
dies (STYLE.md). Hooks run after the samples are committed, so they read what was just written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from collectors.base import Collector
from warden.records import GpuReading, Sample
from warden.store import Store

__all__ = ["Engine", "TickHook", "TickReport"]

logger = logging.getLogger("warden.engine")

TickHook = Callable[[float], None]
"""Called once per tick with the tick's timestamp, after the collected data is stored."""


@dataclass
class TickReport:
    ts: float
    samples: int = 0
    gpu_readings: int = 0
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0


class Engine:
    """Runs ``collectors`` then ``hooks`` every ``interval_s`` seconds.

    Args:
        store: where samples and GPU readings go (one transaction per tick).
        collectors: objects with ``collect(now) -> Iterable[Sample | GpuReading]``.
        hooks: callables run after storing, in order (detectors, alert rules, remediation).
        interval_s: the tick period.
        clock: wall clock for record timestamps; ``monotonic`` and ``sleep`` drive scheduling.
            All three are injectable so tests of time do not sleep.
    """

    def __init__(
        self,
        store: Store,
        collectors: Sequence[Collector],
        *,
        hooks: Sequence[TickHook] = (),
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.store = store
        self.collectors = list(collectors)
        self.hooks = list(hooks)
        self.interval_s = interval_s
        self.clock, self.monotonic, self.sleep = clock, monotonic, sleep
        self.ticks = 0
        self.skipped_ticks = 0
        self.errors: Counter[str] = Counter()
        self.last_report: TickReport | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float | None = None) -> TickReport:
        """One tick: every collector, one store transaction, every hook. Never raises."""
        started = self.monotonic()
        now = self.clock() if now is None else now
        report = TickReport(ts=now)
        samples: list[Sample] = []
        readings: list[GpuReading] = []
        for collector in self.collectors:
            try:
                for item in collector.collect(now):
                    (readings if isinstance(item, GpuReading) else samples).append(item)
            except Exception:
                self._count(report, f"collector:{type(collector).__name__}")
        try:
            report.samples = self.store.write_samples(samples) if samples else 0
            report.gpu_readings = self.store.write_gpu_readings(readings) if readings else 0
        except Exception:
            self._count(report, "store")
        for hook in self.hooks:
            try:
                hook(now)
            except Exception:
                self._count(report, f"hook:{getattr(hook, '__qualname__', repr(hook))}")
        self.ticks += 1
        report.duration_s = self.monotonic() - started
        self.last_report = report
        return report

    def _count(self, report: TickReport, where: str) -> None:
        logger.exception("engine: %s failed", where)
        self.errors[where] += 1
        report.errors.append(where)

    def run(self, ticks: int | None = None) -> None:
        """Tick on a fixed grid until :meth:`stop` (or ``ticks`` ticks, for tests)."""
        start = self.monotonic()
        k = 0
        done = 0
        while not self._stop.is_set() and (ticks is None or done < ticks):
            if not self._paused.is_set():
                self.tick()
            done += 1
            k += 1
            next_at = start + k * self.interval_s
            now = self.monotonic()
            if now > next_at:  # overran: skip the slots already past
                missed = int((now - next_at) // self.interval_s) + 1
                self.skipped_ticks += missed
                k += missed
                next_at = start + k * self.interval_s
            self._wait(next_at - self.monotonic())

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.sleep is time.sleep:
            self._stop.wait(seconds)  # wakes at once on stop()
        else:
            self.sleep(seconds)

    def start(self) -> Engine:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="warden-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def pause(self) -> None:
        """Skip ticks (no scrape, no hook) until :meth:`resume`: for measuring what collection
        costs the fleet, against the same processes with it off."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def add_collectors(self, collectors: Iterable[Collector]) -> None:
        self.collectors.extend(collectors)
