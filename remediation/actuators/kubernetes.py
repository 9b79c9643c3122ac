""":class:`Kubernetes`: the actuator for a real cluster, through the official ``kubernetes`` client.

Mechanism (see ``remediation/k8s/README.md`` and the manifests beside it):

* **Replicas**: each model has a Deployment; ``scale`` patches its ``scale`` subresource
  (``AppsV1Api.patch_namespaced_deployment_scale``), as ``kubectl scale`` and the HPA do.
* **Weights and the variant split**: each model has a Gateway API ``HTTPRoute``. Its one rule's
  ``backendRefs`` name a Service per *replica group* (a Deployment + Service; Warden's "replica"
  in Kubernetes terms, since single pods behind a Service cannot be weighted) and one Service for
  the lite variant. Warden keeps its intent in two annotations on the route
  (``warden.dev/weights``: ``{group: weight}``; ``warden.dev/lite-fraction``) and writes the
  integer ``backendRefs[].weight`` values derived from both, so gateway controllers (Envoy
  Gateway, Istio, Cilium...) apply the split within seconds. Each write is a JSON Patch that
  starts with a ``test`` of ``metadata.resourceVersion``: a concurrent edit fails the patch
  instead of being overwritten, and the actuator re-reads and retries.
* **Restart** of a replica group: the annotation ``kubectl rollout restart`` sets on the pod
  template (``kubectl.kubernetes.io/restartedAt``), a strategic-merge patch of the Deployment.

RBAC (``k8s/rbac.yaml``): ``get, patch`` on ``deployments/scale``; ``get, patch`` on the named
``deployments`` (restart, health); ``get, patch`` on the named ``httproutes``. Nothing else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediation.changes import FleetState, ModelState
from remediation.errors import ActuatorError

__all__ = ["Kubernetes", "KubernetesConfig", "ModelTarget", "WEIGHTS_ANNOTATION",
           "LITE_ANNOTATION", "backend_weights"]

WEIGHTS_ANNOTATION = "warden.dev/weights"
LITE_ANNOTATION = "warden.dev/lite-fraction"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"
WEIGHT_SCALE = 1000  # backendRef weights are integers; 1000 gives 0.1% resolution


class ModelTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str
    route: str
    groups: list[str] = Field(..., min_length=1, description="replica-group Deployments/Services")
    lite_service: str | None = None


class KubernetesConfig(BaseModel):
    """The ``remediation.kubernetes`` section: namespace and, per model, what to drive."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = "warden"
    models: dict[str, ModelTarget]
    cold_start_s: float = Field(30.0, gt=0, description="measured pod start to ready")
    conflict_retries: int = Field(3, ge=0)


def backend_weights(weights: Mapping[str, float], lite_fraction: float,
                    lite_service: str | None) -> dict[str, int]:
    """Integer backendRef weights for replica-group ``weights`` and a lite share.

    Full-variant groups share ``1 - lite_fraction`` in proportion to their weights; with every
    group at weight 0 the full share has nowhere to go, which the guards never allow.
    """
    total = sum(max(w, 0.0) for w in weights.values())
    full = 1.0 - (lite_fraction if lite_service else 0.0)
    out = {g: int(round(WEIGHT_SCALE * full * max(w, 0.0) / total)) if total > 0 else 0
           for g, w in weights.items()}
    if lite_service:
        out[lite_service] = int(round(WEIGHT_SCALE * lite_fraction))
    return out


class Kubernetes:
    """Actuator over the Kubernetes API.

    Args:
        config: namespace and per-model targets.
        api_client: a ``kubernetes.client.ApiClient`` (from kubeconfig, in-cluster config, or
            pointed at an emulated API server in tests).
        clock: for the restart annotation's timestamp.
    """

    name = "kubernetes"

    def __init__(self, config: KubernetesConfig, api_client: Any, *,
                 clock: Callable[[], float] = time.time) -> None:
        from kubernetes import client

        self.config = config
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.clock = clock
        self._ApiException = client.ApiException

    @classmethod
    def from_kubeconfig(cls, config: KubernetesConfig, *, context: str | None = None
                        ) -> Kubernetes:
        """Load ``$KUBECONFIG`` (or in-cluster config when running in a pod)."""
        from kubernetes import client
        from kubernetes import config as kconfig

        try:
            kconfig.load_incluster_config()
            api = client.ApiClient()
        except kconfig.ConfigException:
            api = kconfig.new_client_from_config(context=context)
        return cls(config, api)

    # -- plumbing ---------------------------------------------------------------------------------

    def _target(self, model: str) -> ModelTarget:
        try:
            return self.config.models[model]
        except KeyError:
            raise ActuatorError(f"no Kubernetes target for model {model!r}; configured: "
                                f"{sorted(self.config.models)}") from None

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except self._ApiException as exc:
            raise ActuatorError(f"{what}: {exc.status} {exc.reason}: {_message(exc)}") from exc
        except Exception as exc:  # urllib3 errors: API server unreachable
            raise ActuatorError(f"{what}: {type(exc).__name__}: {exc}") from exc

    def _route(self, t: ModelTarget) -> dict[str, Any]:
        return self._call(f"get httproute {t.route}", self.custom.get_namespaced_custom_object,
                          GATEWAY_GROUP, GATEWAY_VERSION, self.config.namespace, "httproutes",
                          t.route)

    def _intent(self, t: ModelTarget, route: dict[str, Any]) -> tuple[dict[str, float], float]:
        ann = route.get("metadata", {}).get("annotations") or {}
        weights = {g: 1.0 for g in t.groups}
        try:
            weights.update({str(k): float(v) for k, v in
                            json.loads(ann.get(WEIGHTS_ANNOTATION, "{}")).items()})
            lite = float(ann.get(LITE_ANNOTATION, 0.0))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ActuatorError(f"httproute {t.route}: unreadable warden annotations: {exc}"
                                ) from exc
        return weights, lite

    def _write_route(self, model: str, weights: Mapping[str, float] | None = None,
                     lite: float | None = None) -> None:
        t = self._target(model)
        for attempt in range(self.config.conflict_retries + 1):
            route = self._route(t)
            cur_w, cur_lite = self._intent(t, route)
            new_w = {**cur_w, **(weights or {})}
            unknown = set(new_w) - set(t.groups)
            if unknown:
                raise ActuatorError(f"unknown replica groups {sorted(unknown)} for {model}; "
                                    f"groups: {t.groups}")
            new_lite = cur_lite if lite is None else lite
            wanted = backend_weights(new_w, new_lite, t.lite_service)
            rules = route.get("spec", {}).get("rules") or []
            if not rules:
                raise ActuatorError(f"httproute {t.route} has no rules")
            ops: list[dict[str, Any]] = [
                {"op": "test", "path": "/metadata/resourceVersion",
                 "value": route["metadata"].get("resourceVersion", "")}]
            if not route["metadata"].get("annotations"):
                ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
            ops += [{"op": "add", "path": "/metadata/annotations/" + _escape(WEIGHTS_ANNOTATION),
                     "value": json.dumps(new_w, sort_keys=True)},
                    {"op": "add", "path": "/metadata/annotations/" + _escape(LITE_ANNOTATION),
                     "value": f"{new_lite:g}"}]
            refs = rules[0].get("backendRefs") or []
            seen = set()
            for i, ref in enumerate(refs):
                if ref.get("name") in wanted:
                    seen.add(ref["name"])
                    ops.append({"op": "add", "path": f"/spec/rules/0/backendRefs/{i}/weight",
                                "value": wanted[ref["name"]]})
            missing = set(wanted) - seen
            if missing:
                raise ActuatorError(f"httproute {t.route} has no backendRefs for "
                                    f"{sorted(missing)}")
            try:
                self.custom.patch_namespaced_custom_object(
                    GATEWAY_GROUP, GATEWAY_VERSION, self.config.namespace, "httproutes",
                    t.route, ops, _content_type="application/json-patch+json")
                return
            except self._ApiException as exc:
                if exc.status in (409, 422) and attempt < self.config.conflict_retries:
                    continue  # someone else changed the route: re-read and retry
                raise ActuatorError(f"patch httproute {t.route}: {exc.status} {exc.reason}: "
                                    f"{_message(exc)}") from exc

    # -- Actuator ---------------------------------------------------------------------------------

    def replicas(self, model: str) -> int:
        t = self._target(model)
        scale = self._call(f"get scale of {t.deployment}",
                           self.apps.read_namespaced_deployment_scale, t.deployment,
                           self.config.namespace)
        return int(scale.spec.replicas or 0)

    def scale(self, model: str, n: int) -> None:
        t = self._target(model)
        if n < 0:
            raise ActuatorError(f"refusing to scale {model} to {n}")
        self._call(f"scale {t.deployment} to {n}", self.apps.patch_namespaced_deployment_scale,
                   t.deployment, self.config.namespace, {"spec": {"replicas": int(n)}})

    def set_weights(self, model: str, weights: Mapping[str, float]) -> None:
        self._write_route(model, weights=dict(weights))

    def set_variant(self, model: str, variant: str, fraction: float) -> None:
        if variant != "lite":
            raise ActuatorError(f"only the 'lite' variant can take a share, not {variant!r}")
        if self._target(model).lite_service is None:
            raise ActuatorError(f"model {model} has no lite_service configured")
        self._write_route(model, lite=float(fraction))

    def restart(self, replica: str) -> None:
        if not any(replica in t.groups for t in self.config.models.values()):
            raise ActuatorError(f"unknown replica group {replica!r}")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        self._call(f"restart {replica}", self.apps.patch_namespaced_deployment, replica,
                   self.config.namespace, body)

    def state(self) -> FleetState:
        models = {}
        for model, t in self.config.models.items():
            weights, lite = self._intent(t, self._route(t))
            healthy, available = [], 0
            for g in t.groups:
                dep = self._call(f"get deployment {g}", self.apps.read_namespaced_deployment, g,
                                 self.config.namespace)
                n = int(getattr(dep.status, "available_replicas", 0) or 0)
                if n > 0:
                    healthy.append(g)
                if g == t.deployment:
                    available = n
            # healthy counts pods of the scaled Deployment (what a scale-in removes);
            # healthy_replicas names groups (what weights and restarts address)
            models[model] = ModelState(replicas=self.replicas(model), healthy=available,
                                       weights=weights, healthy_replicas=tuple(healthy),
                                       lite_fraction=lite)
        return FleetState(models=models, cold_start_s=self.config.cold_start_s)


def _escape(key: str) -> str:
    """JSON Pointer escaping (RFC 6901) for an annotation key with ``/``."""
    return key.replace("~", "~0").replace("/", "~1")


def _message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (TypeError, ValueError, AttributeError):
        return str(getattr(exc, "body", "") or "")
