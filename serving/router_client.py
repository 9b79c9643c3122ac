"""A small synchronous client for the router's admin API (see ``serving.router.admin``).

The lab uses it to keep the router's replica set in step with the fleet, ``warden fleet status``
to read state, and remediation's local actuator to move weights and the variant split.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["RouterAdmin", "RouterAdminError"]


class RouterAdminError(RuntimeError):
    """The router refused an admin call (4xx/5xx) or could not be reached."""


class RouterAdmin:
    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout_s)

    def _call(self, method: str, path: str, body: Any | None = None) -> Any:
        try:
            resp = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RouterAdminError(f"router {self.url} unreachable: {exc}") from exc
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("error", resp.text)
            except ValueError:
                detail = resp.text
            raise RouterAdminError(f"{method} {path}: {resp.status_code} {detail}")
        return resp.json()

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/admin/state")

    def set_weights(self, weights: dict[str, float]) -> dict[str, Any]:
        return self._call("PUT", "/admin/weights", weights)

    def set_variant_split(self, model: str, fraction: float) -> dict[str, Any]:
        return self._call("PUT", "/admin/variant_split", {"model": model, "fraction": fraction})

    def set_policy(self, policy: str) -> dict[str, Any]:
        return self._call("PUT", "/admin/policy", {"policy": policy})

    def add_replica(self, name: str, url: str, weight: float = 1.0) -> dict[str, Any]:
        return self._call("POST", "/admin/replicas", {"name": name, "url": url, "weight": weight})

    def remove_replica(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/admin/replicas/{name}")

    def drain(self, name: str) -> dict[str, Any]:
        return self._call("POST", "/admin/drain", {"replica": name})

    def sync_replicas(self, wanted: dict[str, str]) -> None:
        """Make the router's replica set exactly ``wanted`` (name -> url), keeping weights."""
        have = {r["name"]: r["url"] for r in self.state()["replicas"]}
        for name in sorted(set(have) - set(wanted)):
            self.remove_replica(name)
        for name in sorted(set(wanted) - set(have)):
            self.add_replica(name, wanted[name])

    def close(self) -> None:
        self._client.close()
