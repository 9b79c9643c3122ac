""":class:`EmulatedKubeApi`: an aiohttp emulation of exactly the API-server endpoints Warden uses.

Why not a real API server: none runs here. Why not ``kmock`` (PyPI, by kopf's author; tried at
0.8): its pytest plugin imports ``pytest_asyncio`` at collection time, which broke every pytest
run in a venv without it, and its emulator merges patches as plain dicts (no JSON Patch
``test``, no subresources). This emulation serves the real JSON shapes for:

* ``GET|PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}`` (strategic merge as a recursive
  merge, enough for annotations and ``spec.replicas``);
* ``GET|PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`` (``autoscaling/v1`` Scale);
* ``GET|PATCH /apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{name}`` (JSON Patch
  with ``test``, merge patch);

with ``resourceVersion`` bumped on every write, ``Status`` objects for errors (404, 415, 422),
and RBAC enforced from a Role manifest: a request the Role does not allow answers 403, so the
tests prove the manifests' least privilege is enough. The emulated controller makes a Deployment's
``availableReplicas`` follow ``spec.replicas`` at once unless a test pins it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Mapping
from typing import Any

import jsonpatch
from aiohttp import web

__all__ = ["EmulatedKubeApi"]

_VERBS = {"GET": "get", "PATCH": "patch", "PUT": "update", "DELETE": "delete", "POST": "create"}


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "message": message, "reason": reason,
                              "code": code}, status=code)


def _merge(dst: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, Mapping) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


class EmulatedKubeApi:
    """An emulated Kubernetes API server on 127.0.0.1, run in a thread (``with`` starts/stops it).

    Args:
        role_rules: the ``rules`` of the Role bound to the caller; ``None`` allows everything.
    """

    def __init__(self, *, role_rules: list[dict[str, Any]] | None = None) -> None:
        self.role_rules = role_rules
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, content-type)
        self.pinned_available: dict[tuple[str, str], int] = {}
        self._rv = 100
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- objects ----------------------------------------------------------------------------------

    def _bump(self, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)

    def add_deployment(self, ns: str, name: str, replicas: int, *, image: str = "triton") -> None:
        obj = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}",
                            "labels": {"app": name}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": [{"name": "triton",
                                                              "image": image}]}}},
               "status": {}}
        with self._lock:
            self._bump(obj)
            self.objects[("deployments", ns, name)] = obj
            self._controller(ns, name)

    def add_object(self, resource: str, ns: str, obj: dict[str, Any]) -> None:
        with self._lock:
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {}).setdefault("namespace", ns)
            self._bump(obj)
            self.objects[(resource, ns, obj["metadata"]["name"])] = obj

    def get(self, resource: str, ns: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.objects[(resource, ns, name)])

    def pin_available(self, ns: str, name: str, n: int | None) -> None:
        with self._lock:
            if n is None:
                self.pinned_available.pop((ns, name), None)
            else:
                self.pinned_available[(ns, name)] = n
            self._controller(ns, name)

    def _controller(self, ns: str, name: str) -> None:
        obj = self.objects[("deployments", ns, name)]
        n = int(obj["spec"].get("replicas", 0))
        avail = self.pinned_available.get((ns, name), n)
        obj["status"] = {"replicas": n, "readyReplicas": avail, "availableReplicas": avail,
                         "updatedReplicas": n, "observedGeneration": 1}

    # -- RBAC ---------------------------------------------------------------------------------------

    def _allowed(self, verb: str, group: str, resource: str, name: str) -> bool:
        if self.role_rules is None:
            return True
        for rule in self.role_rules:
            if (group in rule.get("apiGroups", []) and resource in rule.get("resources", [])
                    and verb in rule.get("verbs", [])
                    and (not rule.get("resourceNames") or name in rule["resourceNames"])):
                return True
        return False

    # -- HTTP ---------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        info = request.match_info
        group = info.get("group", "apps")
        ns, resource, name = info["ns"], info["resource"], info["name"]
        sub = info.get("sub", "")
        rbac_resource = f"{resource}/{sub}" if sub else resource
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        self.requests.append((request.method, request.path, ctype))
        verb = _VERBS.get(request.method, "")
        if not self._allowed(verb, group, rbac_resource, name):
            return _status(403, "Forbidden",
                           f'{rbac_resource} "{name}" is forbidden: cannot {verb} '
                           f'resource "{rbac_resource}" in API group "{group}" in the '
                           f'namespace "{ns}"')
        body = await request.read() if request.method == "PATCH" else b""
        with self._lock:
            key = (resource, ns, name)
            obj = self.objects.get(key)
            if obj is None:
                return _status(404, "NotFound", f'{resource}.{group} "{name}" not found')
            if request.method == "PATCH":
                try:
                    patch = json.loads(body)
                except ValueError as exc:
                    return _status(400, "BadRequest", f"body is not JSON: {exc}")
                err = self._patch(obj, sub, ctype, patch, resource)
                if err is not None:
                    return err
            if sub == "scale":
                return web.json_response(self._scale_json(obj))
            return web.json_response(obj)

    def _patch(self, obj: dict[str, Any], sub: str, ctype: str, patch: Any, resource: str
               ) -> web.Response | None:
        if sub == "scale":
            if ctype == "application/json-patch+json":
                return _status(415, "UnsupportedMediaType", "emulation: scale takes merge patch")
            replicas = (patch.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                return _status(422, "Invalid", f"spec.replicas: Invalid value: {replicas!r}")
            obj["spec"]["replicas"] = replicas
        elif ctype == "application/json-patch+json":
            try:
                new = jsonpatch.apply_patch(obj, patch)
            except jsonpatch.JsonPatchTestFailed as exc:
                return _status(422, "Invalid", f"the server rejected our request: {exc}")
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                return _status(422, "Invalid", f"bad JSON Patch: {exc}")
            obj.clear()
            obj.update(new)
        elif ctype == "application/strategic-merge-patch+json" and resource != "deployments":
            return _status(415, "UnsupportedMediaType",
                           "strategic merge patch is not supported for custom resources")
        elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(patch, dict):
                return _status(400, "BadRequest", "merge patch must be an object")
            _merge(obj, patch)
        else:
            return _status(415, "UnsupportedMediaType", f"unsupported patch type {ctype!r}")
        self._bump(obj)
        if resource == "deployments":
            self._controller(obj["metadata"]["namespace"], obj["metadata"]["name"])
        return None

    @staticmethod
    def _scale_json(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                             "uid": meta.get("uid", ""), "resourceVersion": meta["resourceVersion"]},
                "spec": {"replicas": obj["spec"].get("replicas", 0)},
                "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in
                                                obj["spec"]["selector"]["matchLabels"].items())}}

    def _app(self) -> web.Application:
        app = web.Application()
        base = "/apis/apps/v1/namespaces/{ns}/{resource:deployments}/{name}"
        custom = "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}"
        for method in ("GET", "PATCH"):
            app.router.add_route(method, base + "/{sub:scale}", self._handle)
            app.router.add_route(method, base, self._handle)
            app.router.add_route(method, custom, self._handle)
        return app

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> EmulatedKubeApi:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._runner = web.AppRunner(self._app(), access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="emulated-kube-api", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("emulated API server did not start")
        return self

    def stop(self) -> None:
        """Stop serving; idempotent (a test may stop it early to see the API go away)."""
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> EmulatedKubeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
