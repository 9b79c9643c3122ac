"""Warden's router: KServe v2 HTTP in front of N Triton replicas.

Policies (round_robin, least_outstanding, peak_ewma) with weights, active health checks and
passive outlier ejection, a per-model lite-variant split, retries on connection failure, W3C
trace context with a ``warden.router`` span, its own ``/metrics`` and a JSON admin API.

Modules: ``config`` (RouterConfig), ``replicas`` (state, ejection), ``policies``, ``variants``,
``proxy`` (hot path), ``http11`` (its lean HTTP/1.1 server), ``client`` (its lean upstream
client), ``health``, ``admin``, ``metrics``, ``tracing``, ``server`` (Router), ``thread``
(RouterThread, uvloop where installed), ``process`` (RouterProcess), ``upstream`` (a tiny
KServe v2 server for tests and benchmarks).

Start one inside a synchronous program::

    from prometheus_client import CollectorRegistry
    from serving.router import RouterConfig, run_router_in_thread

    cfg = RouterConfig(replicas=[{"name": "r0", "url": "http://127.0.0.1:8000"}])
    handle = run_router_in_thread(cfg, CollectorRegistry())
    ...  # tritonclient.http.InferenceServerClient(handle.url.removeprefix("http://"))
    handle.stop()

Imports are lazy so ``import serving.router`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "EjectionConfig",
    "ReplicaSpec",
    "Router",
    "RouterConfig",
    "RouterProcess",
    "RouterThread",
    "make_tracer_provider",
    "run_router_in_thread",
]

_WHERE = {
    "EjectionConfig": "serving.router.config",
    "ReplicaSpec": "serving.router.config",
    "Router": "serving.router.server",
    "RouterConfig": "serving.router.config",
    "RouterProcess": "serving.router.process",
    "RouterThread": "serving.router.thread",
    "make_tracer_provider": "serving.router.tracing",
    "run_router_in_thread": "serving.router.thread",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'serving.router' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
