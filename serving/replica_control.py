"""A small synchronous client for a replica's control port (see ``serving.replica``).

Chaos experiments, benchmarks and tests inject model and GPU-twin faults through it; one
client means one place that knows the paths, and one clear error when a replica refuses
(a bad fault value answers 400) or is gone.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ReplicaControl", "ReplicaControlError"]


class ReplicaControlError(RuntimeError):
    """The replica refused a control call (4xx/5xx) or could not be reached."""


class ReplicaControl:
    def __init__(self, control_url: str, *, timeout_s: float = 5.0) -> None:
        self.url = control_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            resp = httpx.request(method, f"{self.url}{path}", json=body, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise ReplicaControlError(f"replica control {self.url} unreachable: {exc}") from exc
        if resp.status_code >= 400:
            raise ReplicaControlError(f"{method} {path}: {resp.status_code} {resp.text.strip()}")
        return resp.json()

    def faults(self) -> dict[str, float]:
        """The model faults injected now (all keys, defaults when none)."""
        return self._call("GET", "/faults")

    def set_faults(self, **changes: float) -> dict[str, float]:
        """Set some model faults, e.g. ``set_faults(latency_factor=5)``; returns them all."""
        return self._call("POST", "/faults", changes)

    def clear_faults(self) -> dict[str, float]:
        return self._call("DELETE", "/faults")

    def gpu(self) -> dict[str, Any]:
        """The GPU twin's reading (replicas on the twin only)."""
        return self._call("GET", "/gpu")

    def set_gpu_faults(self, **faults: Any) -> dict[str, Any]:
        return self._call("POST", "/gpu/faults", faults)

    def clear_gpu_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/gpu/faults")
