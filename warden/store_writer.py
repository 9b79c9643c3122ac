"""Batched writes into the store: buffer records, flush every N records or T seconds.

Why: one SQLite transaction per sample caps ingest at a few thousand per second (each commit
touches the WAL); one ``executemany`` per batch reaches hundreds of thousands. The writer is
thread-safe so the trace receiver's thread and the engine's loop can share it, and it takes a
clock so tests of the time trigger do not sleep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from warden.records import Anomaly, GpuReading, RequestChain, Sample, Span

if TYPE_CHECKING:
    from warden.store import Store

__all__ = ["StoreWriter"]

logger = logging.getLogger(__name__)

Record = Sample | RequestChain | Span | GpuReading | Anomaly


class StoreWriter:
    """Buffers records and writes them in one transaction per kind.

    Args:
        store: the (writable) store.
        max_records: flush once this many records are buffered.
        max_delay_s: flush on :meth:`add` or :meth:`maybe_flush` once the oldest buffered record
            is this old.
        clock: seconds, monotonic or wall; only differences are used.
    """

    def __init__(
        self, store: Store, *, max_records: int = 5_000, max_delay_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_records < 1 or max_delay_s < 0:
            raise ValueError("max_records must be >= 1 and max_delay_s >= 0")
        self.store = store
        self.max_records = max_records
        self.max_delay_s = max_delay_s
        self.clock = clock
        self._lock = threading.Lock()
        self._buf: dict[type, list[Record]] = {}
        self._count = 0
        self._first_at: float | None = None
        self.flushes = 0
        self.written = 0
        self.failed_flushes = 0

    def __len__(self) -> int:
        return self._count

    def add(self, record: Record) -> None:
        self.extend((record,))

    def extend(self, records: Iterable[Record]) -> None:
        """Buffer records (any mix of kinds); flushes when a trigger is reached."""
        with self._lock:
            for r in records:
                self._buf.setdefault(type(r), []).append(r)
                self._count += 1
            if self._count and self._first_at is None:
                self._first_at = self.clock()
            due = self._due()
        if due:
            self.flush()

    def _due(self) -> bool:
        if self._count >= self.max_records:
            return True
        return self._first_at is not None and self.clock() - self._first_at >= self.max_delay_s

    def maybe_flush(self) -> int:
        """Flush if a trigger is reached (call this from a periodic loop)."""
        with self._lock:
            due = self._due()
        return self.flush() if due else 0

    def flush(self) -> int:
        """Write everything buffered now; returns the records written.

        A failed write is logged and counted, and its records are dropped: a broken batch must
        not wedge the collectors behind it.
        """
        with self._lock:
            buf, self._buf = self._buf, {}
            self._count = 0
            self._first_at = None
        written = 0
        writers: dict[type, Callable[[Iterable[Record]], int]] = {
            Sample: self.store.write_samples,  # type: ignore[dict-item]
            RequestChain: self.store.write_chains,  # type: ignore[dict-item]
            Span: self.store.write_spans,  # type: ignore[dict-item]
            GpuReading: self.store.write_gpu_readings,  # type: ignore[dict-item]
            Anomaly: self.store.write_anomalies,  # type: ignore[dict-item]
        }
        for kind, records in buf.items():
            try:
                written += writers[kind](records)
            except Exception:
                self.failed_flushes += 1
                logger.exception("store flush of %d %s failed", len(records), kind.__name__)
        if buf:
            self.flushes += 1
        self.written += written
        return written
