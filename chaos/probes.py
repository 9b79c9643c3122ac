"""Probes for steady-state hypotheses and the SLI: small functions over a :class:`Target`.

Each takes ``target`` (passed by the runner) and keyword arguments from the YAML, and returns a
plain value a tolerance can check. They measure from the outside, as a client would: a real
KServe v2 inference over HTTP, Triton's readiness endpoints, the replica's control endpoint.
A probe that cannot reach its endpoint returns a failing value (``False``, ``inf``, ``1.0``)
rather than raising, because "the replica does not answer" is an observation, not a crash.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import numpy as np

from chaos.target import Target

__all__ = [
    "error_ratio",
    "faults_cleared",
    "gpu_fault_state",
    "gpu_reading",
    "infer_once",
    "infer_sample",
    "latency_p99_ms",
    "model_ready",
    "replica_running",
    "warm_up",
]

_INPUTS = {"synth": ("x", 4), "mlp": ("x", 16)}
_CLEAN_FAULTS = {"latency_factor": 1.0, "extra_latency_ms": 0.0, "jitter_ms": 0.0,
                 "error_rate": 0.0}


def _base_url(target: Target, via: str) -> str:
    return target.router_url if via == "router" else target.replica(via).url


def _body(model: str) -> dict[str, Any]:
    base = model.removesuffix("_lite")
    name, width = _INPUTS.get(base, ("x", 4))
    return {"inputs": [{"name": name, "shape": [1, width], "datatype": "FP32",
                        "data": [0.5] * width}]}


def infer_once(client: httpx.Client, url: str, model: str, timeout_s: float) -> tuple[float, bool]:
    """One inference; ``(latency_s, ok)``. A timeout counts as its full timeout and an error."""
    t0 = time.perf_counter()
    try:
        resp = client.post(f"{url}/v2/models/{model}/infer", json=_body(model), timeout=timeout_s)
        ok = resp.status_code == 200
    except httpx.HTTPError:
        ok = False
    return time.perf_counter() - t0, ok


def infer_sample(target: Target, *, model: str = "synth", via: str = "router",
                 requests: int = 5, timeout_s: float = 2.0) -> dict[str, float]:
    """``requests`` sequential inferences: ``{"p99_ms", "max_ms", "error_ratio", "n"}``."""
    url = _base_url(target, via)
    with httpx.Client() as client:
        results = [infer_once(client, url, model, timeout_s) for _ in range(requests)]
    lat = np.array([r[0] for r in results if r[1]]) * 1e3
    errors = sum(1 for r in results if not r[1])
    return {"p99_ms": float(np.percentile(lat, 99)) if len(lat) else math.inf,
            "max_ms": float(lat.max()) if len(lat) else math.inf,
            "error_ratio": errors / len(results), "n": float(len(results))}


def latency_p99_ms(target: Target, *, model: str = "synth", via: str = "router",
                   requests: int = 5, timeout_s: float = 2.0) -> float:
    """P99 client latency in ms over ``requests`` inferences; ``inf`` if none succeeded."""
    return infer_sample(target, model=model, via=via, requests=requests,
                        timeout_s=timeout_s)["p99_ms"]


def error_ratio(target: Target, *, model: str = "synth", via: str = "router",
                requests: int = 5, timeout_s: float = 2.0) -> float:
    """Share of failed inferences, in [0, 1]."""
    return infer_sample(target, model=model, via=via, requests=requests,
                        timeout_s=timeout_s)["error_ratio"]


def model_ready(target: Target, *, replica: str, model: str, timeout_s: float = 2.0) -> bool:
    """Triton's ``/v2/models/{model}/ready`` on one replica answers 200."""
    try:
        r = httpx.get(f"{target.replica(replica).url}/v2/models/{model}/ready", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def replica_running(target: Target, *, replica: str) -> bool:
    """The replica's process is alive (not whether it answers: see :func:`model_ready`)."""
    return target.is_running(replica)


def _get_json(url: str, timeout_s: float) -> Any:
    try:
        r = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def faults_cleared(target: Target, *, replica: str, timeout_s: float = 2.0) -> bool:
    """No model fault is set on the replica's control ``/faults``."""
    state = _get_json(f"{target.replica(replica).control_url}/faults", timeout_s)
    return state is not None and all(state.get(k) == v for k, v in _CLEAN_FAULTS.items())


def gpu_fault_state(target: Target, *, replica: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """The twin's fault state (``{}``-like when clean); ``{"unreachable": True}`` on failure."""
    state = _get_json(f"{target.replica(replica).control_url}/gpu/faults", timeout_s)
    return state if isinstance(state, dict) else {"unreachable": True}


def gpu_reading(target: Target, *, replica: str, field: str, timeout_s: float = 2.0) -> float:
    """One numeric field of the replica's GPU reading (e.g. ``temperature_c``); NaN if absent."""
    reading = _get_json(f"{target.replica(replica).control_url}/gpu", timeout_s)
    try:
        return float(reading[field])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return math.nan


def warm_up(target: Target, models: tuple[str, ...] = ("synth",), requests: int = 8) -> None:
    """A few requests per replica and model, so no steady state is judged on a cold request
    (the first inference on a fresh replica takes ~100 ms here, against ~15 ms warm)."""
    with httpx.Client() as client:
        for ep in target.replicas.values():
            for model in models:
                for _ in range(requests):
                    infer_once(client, ep.url, model, 10.0)
