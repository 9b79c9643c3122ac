"""Shared helpers for the router's HTTP tests: start upstreams and a router, fire requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from serving.router.config import RouterConfig
from serving.router.thread import RouterThread
from serving.router.upstream import EchoUpstream

INFER_BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}


def start_router(upstreams: list[EchoUpstream], registry: CollectorRegistry | None = None,
                 tracer_provider: Any | None = None, **overrides: Any) -> RouterThread:
    """A router over ``upstreams``; active checks off unless the test asks for them."""
    cfg: dict[str, Any] = {
        "replicas": [{"name": u.name, "url": u.url} for u in upstreams],
        "policy": "round_robin", "health_interval_s": 0, "seed": 1234, "timeout_s": 5.0,
    }
    cfg.update(overrides)
    return RouterThread(RouterConfig.model_validate(cfg), registry or CollectorRegistry(),
                        tracer_provider=tracer_provider)


def fire(url: str, n: int, *, model: str = "mlp", concurrency: int = 1,
         body: Any = INFER_BODY) -> list[tuple[int, float, str]]:
    """Send ``n`` infers; returns (status, seconds, replica or error text) per request."""

    def one(client: httpx.Client) -> tuple[int, float, str]:
        t0 = time.perf_counter()
        resp = client.post(f"{url}/v2/models/{model}/infer", json=body)
        dt = time.perf_counter() - t0
        data = resp.json()
        who = data["outputs"][0]["data"][0] if resp.status_code == 200 else data.get("error", "")
        return resp.status_code, dt, who

    if concurrency == 1:
        with httpx.Client(timeout=10) as client:
            return [one(client) for _ in range(n)]

    def worker(k: int) -> list[tuple[int, float, str]]:
        with httpx.Client(timeout=10) as client:
            return [one(client) for _ in range(k)]

    per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        return [r for chunk in pool.map(worker, per) for r in chunk]


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` every 20 ms until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def replica_state(handle: RouterThread, name: str) -> dict[str, Any]:
    """One replica's entry of ``GET /admin/state``."""
    state = httpx.get(f"{handle.url}/admin/state").json()
    return next(r for r in state["replicas"] if r["name"] == name)
