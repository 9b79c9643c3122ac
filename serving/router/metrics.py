"""The router's own Prometheus metrics, on a registry passed in (never the global one).

Why a custom collector for the per-replica gauges: outstanding, weight, health and the EWMA are
already plain attributes of each replica, so reading them at scrape time costs the hot path
nothing, and a removed replica's series disappear with it.

Series (all prefixed ``warden_router_``):

* ``upstream_outstanding{replica}`` gauge: requests sent and not yet answered
* ``replica_weight``, ``replica_healthy``, ``replica_ejected``, ``replica_ewma_seconds``
  ``{replica}`` gauges
* ``upstream_request_duration_seconds{replica}`` histogram, 1 ms .. 5 s
* ``upstream_errors_total{replica, kind}`` counter, kind = connect | timeout | http_5xx | protocol
* ``ejections_total{replica}`` counter
* ``requests_total{model, variant}`` counter (requested model; variant full | lite)
* ``retries_total`` counter
* ``rejections_total{reason}`` counter, reason = not_found | too_large | no_replica |
  bad_request | admin_bad_request
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.router.replicas import ReplicaState

__all__ = ["LATENCY_BUCKETS", "RouterMetrics"]

#: 1 ms .. 5 s, roughly x2 per step, with extra resolution where inference latencies live.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0,
)


class _ReplicaCollector(Collector):
    """Reads replica attributes at scrape time."""

    def __init__(self, replicas: Callable[[], Iterable[ReplicaState]],
                 ewma: Callable[[ReplicaState], float]) -> None:
        self._replicas = replicas
        self._ewma = ewma

    def collect(self) -> Iterator[Metric]:
        out = GaugeMetricFamily("warden_router_upstream_outstanding",
                                "Requests sent to the replica and not yet answered", labels=["replica"])
        weight = GaugeMetricFamily("warden_router_replica_weight", "Routing weight", labels=["replica"])
        healthy = GaugeMetricFamily("warden_router_replica_healthy",
                                    "1 if the last active checks passed", labels=["replica"])
        ejected = GaugeMetricFamily("warden_router_replica_ejected",
                                    "1 while passively ejected", labels=["replica"])
        ewma = GaugeMetricFamily("warden_router_replica_ewma_seconds",
                                 "Peak-EWMA latency estimate", labels=["replica"])
        for r in list(self._replicas()):
            out.add_metric([r.name], r.outstanding)
            weight.add_metric([r.name], r.weight)
            healthy.add_metric([r.name], 1.0 if r.healthy else 0.0)
            ejected.add_metric([r.name], 1.0 if r.ejected else 0.0)
            ewma.add_metric([r.name], self._ewma(r))
        yield from (out, weight, healthy, ejected, ewma)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked collector: names are fixed and documented above


class RouterMetrics:
    """Holds the metric objects; label children are cached so the hot path skips ``labels()``."""

    def __init__(self, registry: CollectorRegistry,
                 replicas: Callable[[], Iterable[ReplicaState]],
                 ewma: Callable[[ReplicaState], float]) -> None:
        self.latency = Histogram("warden_router_upstream_request_duration_seconds",
                                 "Time from sending to a replica to its full response",
                                 ["replica"], buckets=LATENCY_BUCKETS, registry=registry)
        self.errors = Counter("warden_router_upstream_errors_total",
                              "Failed attempts by replica and kind", ["replica", "kind"],
                              registry=registry)
        self.ejections = Counter("warden_router_ejections_total",
                                 "Passive outlier ejections", ["replica"], registry=registry)
        self.requests = Counter("warden_router_requests_total",
                                "Inference requests routed, by requested model and variant",
                                ["model", "variant"], registry=registry)
        self.retries = Counter("warden_router_retries_total",
                               "Attempts repeated on another replica after a connection failure",
                               registry=registry)
        self.rejections = Counter("warden_router_rejections_total",
                                  "Requests the router answered itself with an error",
                                  ["reason"], registry=registry)
        registry.register(_ReplicaCollector(replicas, ewma))
        self._latency: dict[str, Histogram] = {}
        self._requests: dict[tuple[str, str], Counter] = {}

    def observe_latency(self, replica: str, seconds: float) -> None:
        child = self._latency.get(replica)
        if child is None:
            child = self._latency[replica] = self.latency.labels(replica)
        child.observe(seconds)

    def count_request(self, model: str, variant: str) -> None:
        key = (model, variant)
        child = self._requests.get(key)
        if child is None:
            if len(self._requests) > 10_000:  # arbitrary model names from clients: bound memory
                self._requests.clear()
            child = self._requests[key] = self.requests.labels(model, variant)
        child.inc()

    def count_error(self, replica: str, kind: str) -> None:
        self.errors.labels(replica, kind).inc()

    def count_ejection(self, replica: str) -> None:
        self.ejections.labels(replica).inc()

    def count_rejection(self, reason: str) -> None:
        self.rejections.labels(reason).inc()
