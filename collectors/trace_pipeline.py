"""Receiver -> joiner -> store, wired together for the trace-receiver process.

The receiver's threads only decode and buffer (``ChainJoiner.add``); one pump thread polls the
joiner, writes chains (and the spans of chains kept whole) through a batching
:class:`~warden.store_writer.StoreWriter`, and counts what it emitted. Keeping the SQLite writes
on one thread is what lets the HTTP side keep up with bursts.
"""

from __future__ import annotations

import logging
import threading
import time

from collectors.chains import ChainJoiner, Joined
from collectors.self_metrics import WardenMetrics
from collectors.traces import OtlpReceiver
from warden.records import RequestChain, Span
from warden.store import Store
from warden.store_writer import StoreWriter

__all__ = ["TracePipeline"]

logger = logging.getLogger(__name__)


class TracePipeline:
    """Owns an :class:`OtlpReceiver`, a :class:`ChainJoiner` and a pump thread into the store.

    Args:
        store: writable store.
        metrics: Warden's own metrics.
        joiner: the joiner (its clock drives settling); a default one when ``None``.
        poll_interval_s: how often the pump polls the joiner and flushes.
        **receiver_kwargs: passed to :class:`OtlpReceiver` (host, port, bearer_token, ...).
    """

    def __init__(
        self, store: Store, *, metrics: WardenMetrics, joiner: ChainJoiner | None = None,
        poll_interval_s: float = 0.25, writer: StoreWriter | None = None,
        **receiver_kwargs: object,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.joiner = joiner if joiner is not None else ChainJoiner()  # len() 0 is falsy
        self.writer = (writer if writer is not None
                       else StoreWriter(store, max_records=5_000, max_delay_s=1.0))
        self.receiver = OtlpReceiver(self.joiner.add, metrics=metrics, **receiver_kwargs)  # type: ignore[arg-type]
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.receiver.url

    def pump(self, joined: list[Joined] | None = None) -> int:
        """Move ready chains into the writer; returns how many chains were emitted."""
        joined = self.joiner.poll() if joined is None else joined
        records: list[RequestChain | Span] = []
        for j in joined:
            records.append(j.chain)
            if j.spans is not None:
                records.extend(j.spans)
            self.metrics.chains.labels("whole" if j.spans is not None else "summary").inc()
        if records:
            self.writer.extend(records)
        self.writer.maybe_flush()
        return len(joined)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.pump()
            except Exception:  # noqa: BLE001 - the pump must outlive a bad batch
                logger.exception("trace pump failed")

    def start(self) -> TracePipeline:
        self.receiver.start()
        self._thread = threading.Thread(target=self._run, name="trace-pump", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, drain: bool = True) -> None:
        """Stop receiving; with ``drain``, emit and write every pending trace first."""
        self.receiver.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if drain:
            self.pump(self.joiner.drain())
        self.writer.flush()

    def __enter__(self) -> TracePipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until the joiner holds no pending trace (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.joiner) == 0:
                return True
            time.sleep(0.05)
        return False
