"""A real OTLP receiver on loopback that keeps what it decodes, for tests of span exporters."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry

from collectors.self_metrics import WardenMetrics
from collectors.traces import OtlpReceiver
from warden.records import Span


class Received:
    """Starts the collectors' receiver; ``wait_for`` returns the spans decoded so far."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self.receiver = OtlpReceiver(self._sink, metrics=WardenMetrics(CollectorRegistry()))
        self.receiver.start()

    def _sink(self, spans: list[Span]) -> None:
        with self._lock:
            self.spans.extend(spans)

    def wait_for(self, n: int, timeout_s: float = 5.0) -> list[Span]:
        """The spans once ``n`` have arrived, or all there are after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.spans) < n:
            time.sleep(0.02)
        with self._lock:
            return list(self.spans)
