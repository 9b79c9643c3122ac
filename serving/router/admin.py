"""The router's JSON admin API, served on the same port under ``/admin``.

Why the same port: one address to hand around (fleet, CLI, remediation actuator), and admin
calls run on the router's event loop, so they never race the hot path.

=======  ===========================  ==============================================  ============
method   path                         body                                            answer
=======  ===========================  ==============================================  ============
GET      /admin/state                 -                                               state object
PUT      /admin/weights (or POST)     ``{"r0": 1.0, "r1": 0}``                        ``{"weights": {...}}``
PUT      /admin/variant_split (POST)  ``{"model": "mlp", "fraction": 0.3}``           ``{"variant_split": {...}}``
PUT      /admin/policy (or POST)      ``{"policy": "peak_ewma"}``                     ``{"policy": ...}``
POST     /admin/replicas              ``{"name": "r2", "url": "http://h:p", "weight": 1}``  201, replica
DELETE   /admin/replicas/{name}       -  (or DELETE /admin/replicas ``{"name": ..}``)  replica
POST     /admin/drain                 ``{"replica": "r0"}``                           replica (weight 0, outstanding)
=======  ===========================  ==============================================  ============

The state object: ``{"policy", "now", "replicas": [{"name", "url", "weight", "healthy", "ejected",
"ejected_until", "ejections", "outstanding", "ewma", "requests", "errors", "available"}],
"lite_models", "variant_split": {model: fraction}}``; ``ejected_until`` and ``now`` are in the
router clock's seconds (monotonic by default).

Errors: malformed JSON, wrong types or bad values (negative or non-finite weight, fraction outside
[0, 1], unknown replica, model or policy) answer 400 ``{"error": "..."}``; an unknown replica in a
path 404; a duplicate replica name 409. Weights are validated all together before any is applied.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from serving.router.http11 import Request, Response, json_response
from serving.router.proxy import json_error

if TYPE_CHECKING:
    from serving.router.server import Router

__all__ = ["AdminApi"]


class _BadRequest(Exception):
    """Client error; the message becomes the JSON ``error``."""


def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest("body must be a JSON object")
    return data


def _replica_json(r: Any) -> dict[str, Any]:
    return {"name": r.name, "url": r.url, "weight": r.weight, "healthy": r.healthy,
            "ejected": r.ejected, "outstanding": r.outstanding}


_Handler = Callable[[Request, "str | None"], Awaitable[Response]]


class AdminApi:
    """``/admin/...`` on one router; every answer is JSON, errors included."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._routes: dict[tuple[str, str], _Handler] = {("GET", "/admin/state"): self.state}
        for method in ("PUT", "POST"):
            self._routes[(method, "/admin/weights")] = self.weights
            self._routes[(method, "/admin/variant_split")] = self.variant_split
            self._routes[(method, "/admin/policy")] = self.policy
        self._routes[("POST", "/admin/replicas")] = self.add_replica
        self._routes[("DELETE", "/admin/replicas")] = self.remove_replica
        self._routes[("POST", "/admin/drain")] = self.drain

    def route(self, request: Request) -> Awaitable[Response] | None:
        """The answer for an admin route, or None if ``request`` is not one."""
        path = request.path
        handler = self._routes.get((request.method, path))
        name = None
        if handler is None and request.method == "DELETE" and path.startswith("/admin/replicas/"):
            name = unquote(path[len("/admin/replicas/"):])
            if name and "/" not in name:
                handler = self.remove_replica
        if handler is None:
            return None
        return self._guarded(handler, request, name)

    async def _guarded(self, handler: _Handler, request: Request, name: str | None) -> Response:
        try:
            return await handler(request, name)
        except (_BadRequest, ValueError) as exc:
            self.router.metrics.count_rejection("admin_bad_request")
            return json_error(400, str(exc))

    # -- handlers ----------------------------------------------------------------------------
    async def state(self, request: Request, _: str | None) -> Response:
        return json_response(self.router.state())

    async def weights(self, request: Request, _: str | None) -> Response:
        data = _json_object(request)
        if not data:
            raise _BadRequest("body must map at least one replica name to a weight")
        return json_response({"weights": self.router.set_weights(data)})

    async def variant_split(self, request: Request, _: str | None) -> Response:
        data = _json_object(request)
        model, fraction = data.get("model"), data.get("fraction")
        if not isinstance(model, str):
            raise _BadRequest('body must be {"model": <name>, "fraction": <0..1>}')
        self.router.set_variant_split(model, fraction)
        return json_response({"variant_split": self.router.splitter.fractions()})

    async def policy(self, request: Request, _: str | None) -> Response:
        name = _json_object(request).get("policy")
        if not isinstance(name, str):
            raise _BadRequest('body must be {"policy": <name>}')
        return json_response({"policy": self.router.set_policy(name)})

    async def add_replica(self, request: Request, _: str | None) -> Response:
        router = self.router
        data = _json_object(request)
        unknown = sorted(set(data) - {"name", "url", "weight"})
        if unknown:
            raise _BadRequest(f"unknown keys {unknown}; expected name, url, weight")
        if "name" not in data or "url" not in data:
            raise _BadRequest('body must be {"name": ..., "url": "http://host:port", "weight": 1}')
        if data["name"] in router.pool.replicas:
            return json_error(409, f"replica {data['name']!r} already exists")
        replica = await router.add_replica(data["name"], data["url"], data.get("weight", 1.0))
        return json_response(_replica_json(replica), 201)

    async def remove_replica(self, request: Request, name: str | None) -> Response:
        router = self.router
        if name is None:
            name = _json_object(request).get("name")
            if not isinstance(name, str):
                raise _BadRequest('body must be {"name": <replica>}')
            if name not in router.pool.replicas:
                raise _BadRequest(f"unknown replica {name!r}")
        if name not in router.pool.replicas:
            return json_error(404, f"unknown replica {name!r}")
        return json_response(_replica_json(router.remove_replica(name)))

    async def drain(self, request: Request, _: str | None) -> Response:
        data = _json_object(request)
        name = data.get("replica", data.get("name"))
        if not isinstance(name, str) or name not in self.router.pool.replicas:
            raise _BadRequest(f"unknown replica {name!r}")
        return json_response(_replica_json(self.router.drain(name)))
