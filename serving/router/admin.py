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
from typing import TYPE_CHECKING, Any

from aiohttp import web

from serving.router.proxy import json_error

if TYPE_CHECKING:
    from serving.router.server import Router

__all__ = ["add_admin_routes"]


class _BadRequest(Exception):
    """Client error; the message becomes the JSON ``error``."""


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest("body must be a JSON object")
    return data


def _replica_json(r: Any) -> dict[str, Any]:
    return {"name": r.name, "url": r.url, "weight": r.weight, "healthy": r.healthy,
            "ejected": r.ejected, "outstanding": r.outstanding}


def add_admin_routes(app: web.Application, router: Router) -> None:
    """Register ``/admin/...`` on ``app``; every handler answers JSON, errors included."""

    def guarded(handler: Any) -> Any:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _BadRequest as exc:
                router.metrics.count_rejection("admin_bad_request")
                return json_error(400, str(exc))
            except ValueError as exc:
                router.metrics.count_rejection("admin_bad_request")
                return json_error(400, str(exc))
        return wrapper

    async def state(request: web.Request) -> web.Response:
        return web.json_response(router.state())

    async def weights(request: web.Request) -> web.Response:
        data = await _json_object(request)
        if not data:
            raise _BadRequest("body must map at least one replica name to a weight")
        return web.json_response({"weights": router.set_weights(data)})

    async def variant_split(request: web.Request) -> web.Response:
        data = await _json_object(request)
        model, fraction = data.get("model"), data.get("fraction")
        if not isinstance(model, str):
            raise _BadRequest('body must be {"model": <name>, "fraction": <0..1>}')
        router.set_variant_split(model, fraction)
        return web.json_response({"variant_split": router.splitter.fractions()})

    async def policy(request: web.Request) -> web.Response:
        data = await _json_object(request)
        name = data.get("policy")
        if not isinstance(name, str):
            raise _BadRequest('body must be {"policy": <name>}')
        return web.json_response({"policy": router.set_policy(name)})

    async def add_replica(request: web.Request) -> web.Response:
        data = await _json_object(request)
        unknown = sorted(set(data) - {"name", "url", "weight"})
        if unknown:
            raise _BadRequest(f"unknown keys {unknown}; expected name, url, weight")
        if "name" not in data or "url" not in data:
            raise _BadRequest('body must be {"name": ..., "url": "http://host:port", "weight": 1}')
        if data["name"] in router.pool.replicas:
            return json_error(409, f"replica {data['name']!r} already exists")
        replica = await router.add_replica(data["name"], data["url"], data.get("weight", 1.0))
        return web.json_response(_replica_json(replica), status=201)

    async def remove_replica(request: web.Request) -> web.Response:
        name = request.match_info.get("name")
        if name is None:
            name = (await _json_object(request)).get("name")
            if not isinstance(name, str):
                raise _BadRequest('body must be {"name": <replica>}')
            if name not in router.pool.replicas:
                raise _BadRequest(f"unknown replica {name!r}")
        if name not in router.pool.replicas:
            return json_error(404, f"unknown replica {name!r}")
        return web.json_response(_replica_json(router.remove_replica(name)))

    async def drain(request: web.Request) -> web.Response:
        data = await _json_object(request)
        name = data.get("replica", data.get("name"))
        if not isinstance(name, str) or name not in router.pool.replicas:
            raise _BadRequest(f"unknown replica {name!r}")
        return web.json_response(_replica_json(router.drain(name)))

    add = app.router.add_route
    add("GET", "/admin/state", guarded(state))
    for method in ("PUT", "POST"):
        add(method, "/admin/weights", guarded(weights))
        add(method, "/admin/variant_split", guarded(variant_split))
        add(method, "/admin/policy", guarded(policy))
    add("POST", "/admin/replicas", guarded(add_replica))
    add("DELETE", "/admin/replicas", guarded(remove_replica))
    add("DELETE", "/admin/replicas/{name}", guarded(remove_replica))
    add("POST", "/admin/drain", guarded(drain))
