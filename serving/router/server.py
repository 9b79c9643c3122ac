"""``Router``: the HTTP server in front of N Triton replicas, and its control methods.

Routes (KServe v2, forwarded to one replica chosen by the policy):

* ``POST /v2/models/{model}/infer``, ``POST /v2/models/{model}/versions/{version}/infer``
  (variant split applied, traced as ``warden.router``)
* ``GET /v2``, ``/v2/health/ready``, ``/v2/health/live``, ``/v2/models/{model}``,
  ``/v2/models/{model}/ready``, ``/v2/models/{model}/versions/{version}[/ready]``
* ``GET /metrics``: the router's own Prometheus metrics (see ``serving.router.metrics``)
* ``/admin/...``: the JSON control API (see ``serving.router.admin``)
* anything else: 404 ``{"error": ...}``

The server is ``serving.router.http11`` and the upstream client ``serving.router.client``: lean
on purpose, see why there.

The control methods (``set_weights``, ``add_replica``...) must run on the router's event loop;
from another thread use ``RouterThread.call`` or the HTTP admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from serving.router.client import UpstreamClient
from serving.router.admin import AdminApi
from serving.router.config import RouterConfig, check_replica_name, check_url, check_weight
from serving.router.health import HealthChecker
from serving.router.http11 import HttpServer, Request, Response
from serving.router.metrics import RouterMetrics
from serving.router.policies import Policy, make_policy
from serving.router.proxy import Proxy
from serving.router.replicas import Clock, ReplicaPool, ReplicaState
from serving.router.tracing import LiteRouterTracer, RouterTracer, make_router_tracer
from serving.router.variants import VariantSplitter

__all__ = ["Router"]


class Router:
    """The router. Build it, ``await start(host, port)``, ``await stop()``."""

    def __init__(self, config: RouterConfig, registry: CollectorRegistry, *,
                 tracer_provider: Any | None = None, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.registry = registry
        self._rng = random.Random(config.seed)
        self.pool = ReplicaPool(config.ejection, clock, ewma_decay_s=config.ewma_decay_s,
                                default_rtt_s=config.ewma_default_rtt_s)
        self.pool.active_checks = config.health_interval_s > 0
        for spec in config.replicas:
            self.pool.add(spec.name, spec.url, spec.weight, healthy=True)
        self.policy: Policy = make_policy(config.policy, self._rng, clock, config.ewma_decay_s)
        self.splitter = VariantSplitter(config.lite_models, config.variant_split, self._rng)
        self.metrics = RouterMetrics(registry, lambda: self.pool,
                                     lambda r: r.ewma_peek(self.clock(), config.ewma_decay_s))
        self.tracer: RouterTracer | LiteRouterTracer | None = (
            make_router_tracer(tracer_provider, config.trace_deep_ratio)
            if tracer_provider is not None else None)
        self.client: UpstreamClient = None  # type: ignore[assignment]  # set in start()
        self.health: HealthChecker | None = None
        self._health_task: asyncio.Task[None] | None = None
        self.proxy = Proxy(self)
        self.admin = AdminApi(self)
        self._http: HttpServer | None = None
        self.host: str | None = None
        self.port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        """Answer one request (the routes above)."""
        answer = self.proxy.route(request)
        if answer is None:
            if request.path == "/metrics" and request.method == "GET":
                return self._metrics()
            if request.path.startswith("/admin/"):
                answer = self.admin.route(request)
            if answer is None:
                return self.proxy.not_found(request)
        return await answer

    def _bad_request(self, status: int) -> None:
        """The server refused a request before routing it (413, or malformed HTTP)."""
        self.metrics.count_rejection("too_large" if status == 413 else "bad_request")

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Open the client pool, start health checks, listen. Returns the bound port."""
        c = self.config
        # bytes in, bytes out: no cookies, no decompression, no headers of its own but Host
        self.client = UpstreamClient(connect_timeout_s=c.connect_timeout_s, timeout_s=c.timeout_s,
                                     keepalive_s=30.0)
        self.health = HealthChecker(self.pool, self.client, interval_s=c.health_interval_s,
                                    timeout_s=c.health_timeout_s,
                                    healthy_threshold=c.healthy_threshold,
                                    unhealthy_threshold=c.unhealthy_threshold)
        self.health.ready_models = list(c.ready_models)
        if c.health_interval_s > 0:
            self._health_task = asyncio.get_running_loop().create_task(self.health.run())
        # bodies are never decompressed: a gzip body goes on compressed, with its Content-Encoding
        self._http = HttpServer(self.handle, max_body_bytes=c.max_body_bytes,
                                on_bad_request=self._bad_request)
        self.host, self.port = host, await self._http.start(host, port)
        return self.port

    async def stop(self) -> None:
        """Stop listening, cancel checks, close the pool. Safe to call twice."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        if self._http is not None:
            await self._http.stop(grace_s=2.0)  # requests in flight get this long to finish
            self._http = None
        if self.client is not None:
            await self.client.close()

    @property
    def url(self) -> str:
        """Base URL once started, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def _metrics(self) -> Response:
        return Response(200, generate_latest(self.registry),
                        [(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))])

    # -- control (event-loop thread only) ----------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Snapshot for ``GET /admin/state``; ``ejected_until`` is in the router clock's seconds."""
        now = self.clock()
        decay = self.config.ewma_decay_s
        return {
            "policy": self.policy.name,
            "now": now,
            "replicas": [
                {"name": r.name, "url": r.url, "weight": r.weight, "healthy": r.healthy,
                 "ejected": r.ejected, "ejected_until": r.ejected_until if r.ejected else None,
                 "ejections": r.ejections, "outstanding": r.outstanding,
                 "ewma": r.ewma_peek(now, decay), "requests": r.requests, "errors": r.errors,
                 "available": r.available}
                for r in self.pool
            ],
            "lite_models": sorted(self.splitter.lite_models),
            "variant_split": self.splitter.fractions(),
        }

    def set_weights(self, weights: Mapping[str, object]) -> dict[str, float]:
        """Set several weights atomically: all are validated before any is applied."""
        checked: dict[str, float] = {}
        for name, weight in weights.items():
            if name not in self.pool.replicas:
                raise ValueError(f"unknown replica {name!r}")
            checked[name] = check_weight(weight)
        for name, weight in checked.items():
            self.pool.replicas[name].weight = weight
        return {r.name: r.weight for r in self.pool}

    def set_variant_split(self, model: str, fraction: object) -> float:
        """Fraction of ``model``'s requests rewritten to ``<model>_lite``."""
        return self.splitter.set(model, fraction)

    def set_policy(self, name: str) -> str:
        """Switch policy at run time (its own state starts fresh)."""
        self.policy = make_policy(name, self._rng, self.clock, self.config.ewma_decay_s)
        return self.policy.name

    async def add_replica(self, name: str, url: str, weight: object = 1.0) -> ReplicaState:
        """Add a replica; it takes traffic once one active check passes (at once if checks are off)."""
        name, url, w = check_replica_name(name), check_url(url), check_weight(weight)
        active = self.config.health_interval_s > 0
        state = self.pool.add(name, url, w, healthy=not active)
        if active and self.health is not None:
            await self.health.check(state)
        return state

    def remove_replica(self, name: str) -> ReplicaState:
        """Remove a replica (``KeyError`` if unknown); in-flight requests finish."""
        return self.pool.remove(name)

    def drain(self, name: str) -> ReplicaState:
        """Weight 0: no new requests. Waiting for ``outstanding == 0`` is the caller's business."""
        replica = self.pool.replicas[name]
        replica.weight = 0.0
        return replica
