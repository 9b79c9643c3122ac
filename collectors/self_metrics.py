"""Warden's own metrics, exported on ``/metrics`` through prometheus-client.

Why: a monitoring system that cannot be monitored fails silently. Every rejection (garbage
metric lines, NaN, malformed OTLP bodies), every scrape error and the lag of every target is
counted here, so that Prometheus (or Warden itself) can alert on the collectors.

Nothing global: the metrics live in the :class:`~prometheus_client.CollectorRegistry` passed in.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

__all__ = ["WardenMetrics", "serve_metrics"]


class WardenMetrics:
    """Counters and gauges about Warden's own ingestion.

    Args:
        registry: where the metrics are registered (one per process, or one per test).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.samples_ingested = Counter(
            "warden_samples_ingested", "Samples produced by collectors and accepted",
            ["source"], registry=registry,
        )
        self.samples_rejected = Counter(
            "warden_samples_rejected", "Metric lines or values rejected (garbage, NaN, negative)",
            ["target", "reason"], registry=registry,
        )
        self.counter_resets = Counter(
            "warden_counter_resets", "Counters seen going backwards (a replica restarted)",
            ["target"], registry=registry,
        )
        self.scrape_errors = Counter(
            "warden_scrape_errors", "Failed scrapes per target", ["target", "reason"],
            registry=registry,
        )
        self.scrape_lag = Gauge(
            "warden_scrape_lag_seconds",
            "Seconds since the last successful scrape of the target",
            ["target"], registry=registry,
        )
        self.scrape_duration = Gauge(
            "warden_scrape_duration_seconds", "Duration of the last scrape", ["target"],
            registry=registry,
        )
        self.spans_received = Counter(
            "warden_spans_received", "Spans decoded from accepted OTLP requests", ["encoding"],
            registry=registry,
        )
        self.spans_rejected = Counter(
            "warden_spans_rejected", "Spans or OTLP requests rejected, by reason", ["reason"],
            registry=registry,
        )
        self.otlp_requests = Counter(
            "warden_otlp_requests", "OTLP/HTTP requests by response code", ["code"],
            registry=registry,
        )
        self.chains = Counter(
            "warden_chains", "Request chains emitted by the joiner", ["kept"], registry=registry,
        )
        self.store_size = Gauge(
            "warden_store_size_bytes", "Size of the SQLite store on disk (database + WAL)",
            registry=registry,
        )

    def track_store_size(self, size_bytes: Callable[[], float]) -> None:
        """Report the store's size at every scrape of ``/metrics`` (e.g. ``store.size_bytes``)."""
        self.store_size.set_function(size_bytes)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0.0 when never set), for tests and the CLI."""
        v = self.registry.get_sample_value(name, labels or {})
        return 0.0 if v is None else float(v)


def serve_metrics(registry: CollectorRegistry, port: int = 0, addr: str = "127.0.0.1") -> int:
    """Serve ``registry`` on ``http://addr:port/metrics`` in a daemon thread; returns the port."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return int(server.server_address[1])
