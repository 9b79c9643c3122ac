"""The Kubernetes actuator over the real ``kubernetes`` client, against EmulatedKubeApi (with the
manifests' Role enforced) and, when KUBECONFIG is set, against a real cluster."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

kubernetes = pytest.importorskip("kubernetes")

from remediation.actuators.emulated_kube import EmulatedKubeApi  # noqa: E402
from remediation.actuators.kubernetes import (  # noqa: E402
    LITE_ANNOTATION,
    WEIGHTS_ANNOTATION,
    Kubernetes,
    KubernetesConfig,
    backend_weights,
)
from remediation.errors import ActuatorError  # noqa: E402

K8S = Path(__file__).resolve().parents[2] / "remediation" / "k8s"
NS = "warden"


def manifests(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def role_rules() -> list[dict]:
    [role] = [d for d in manifests("rbac.yaml") if d["kind"] == "Role"]
    return role["rules"]


def config() -> KubernetesConfig:
    return KubernetesConfig(namespace=NS, models={"synth": {
        "deployment": "triton-synth", "route": "warden-synth",
        "groups": ["triton-synth", "triton-synth-b"], "lite_service": "triton-synth-lite"}})


@pytest.fixture()
def api():
    with EmulatedKubeApi(role_rules=role_rules()) as emu:
        for doc in manifests("serving.yaml"):
            if doc["kind"] == "Deployment":
                emu.add_deployment(NS, doc["metadata"]["name"], doc["spec"]["replicas"])
            elif doc["kind"] == "HTTPRoute":
                emu.add_object("httproutes", NS, doc)
        yield emu


@pytest.fixture()
def k8s(api: EmulatedKubeApi) -> Kubernetes:
    cfg = kubernetes.client.Configuration()
    cfg.host = api.url
    return Kubernetes(config(), kubernetes.client.ApiClient(cfg), clock=lambda: 1.8e9)


def route_weights(api: EmulatedKubeApi) -> dict[str, int]:
    route = api.get("httproutes", NS, "warden-synth")
    return {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}


def test_scale_uses_the_scale_subresource(api, k8s):
    assert k8s.replicas("synth") == 2
    k8s.scale("synth", 4)
    assert api.get("deployments", NS, "triton-synth")["spec"]["replicas"] == 4
    assert k8s.replicas("synth") == 4
    assert ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/triton-synth/scale",
            "application/strategic-merge-patch+json") in api.requests


def test_weights_and_lite_split_go_to_httproute_backendrefs(api, k8s):
    k8s.set_weights("synth", {"triton-synth-b": 0.0})
    assert route_weights(api) == {"triton-synth": 1000, "triton-synth-b": 0,
                                  "triton-synth-lite": 0}
    k8s.set_variant("synth", "lite", 0.3)
    assert route_weights(api) == {"triton-synth": 700, "triton-synth-b": 0,
                                  "triton-synth-lite": 300}
    ann = api.get("httproutes", NS, "warden-synth")["metadata"]["annotations"]
    assert json.loads(ann[WEIGHTS_ANNOTATION]) == {"triton-synth": 1.0, "triton-synth-b": 0.0}
    assert ann[LITE_ANNOTATION] == "0.3"
    state = k8s.state().model("synth")
    assert state.weights["triton-synth-b"] == 0.0 and state.lite_fraction == pytest.approx(0.3)
    # JSON Patch with a resourceVersion test: the only patch type a CRD accepts besides merge
    assert all(ct == "application/json-patch+json" for m, p, ct in api.requests
               if m == "PATCH" and "httproutes" in p)


def test_restart_sets_the_rollout_annotation(api, k8s):
    k8s.restart("triton-synth-b")
    tmpl = api.get("deployments", NS, "triton-synth-b")["spec"]["template"]["metadata"]
    assert tmpl["annotations"]["kubectl.kubernetes.io/restartedAt"] == "2027-01-15T08:00:00Z"


def test_state_reads_health_from_available_replicas(api, k8s):
    api.pin_available(NS, "triton-synth-b", 0)
    s = k8s.state().model("synth")
    assert s.healthy_replicas == ("triton-synth",) and s.replicas == 2 and s.healthy == 2


def test_role_is_enforced_and_least_privilege_suffices(api, k8s):
    # everything the actuator does passed with only the Role's rules; a name outside them fails
    bad = Kubernetes(KubernetesConfig(namespace=NS, models={"synth": {
        "deployment": "some-other-deployment", "route": "warden-synth",
        "groups": ["triton-synth"]}}), k8s.apps.api_client)
    api.add_deployment(NS, "some-other-deployment", 1)
    with pytest.raises(ActuatorError, match="403"):
        bad.scale("synth", 3)


def test_concurrent_route_edit_is_retried_not_overwritten(api, k8s):
    orig = k8s.custom.patch_namespaced_custom_object
    calls = {"n": 0}

    def racing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 1:  # someone edits the route between our read and our patch
            route = api.get("httproutes", NS, "warden-synth")
            route["metadata"]["labels"] = {"edited": "by-someone"}
            api.add_object("httproutes", NS, route)
        return orig(*args, **kw)

    k8s.custom.patch_namespaced_custom_object = racing
    k8s.set_variant("synth", "lite", 0.5)
    assert calls["n"] == 2
    route = api.get("httproutes", NS, "warden-synth")
    assert route["metadata"]["labels"] == {"edited": "by-someone"}
    assert route_weights(api)["triton-synth-lite"] == 500


def test_errors_are_actuator_errors_not_crashes(api, k8s):
    with pytest.raises(ActuatorError, match="no Kubernetes target"):
        k8s.scale("mlp", 2)
    with pytest.raises(ActuatorError, match="unknown replica groups"):
        k8s.set_weights("synth", {"nope": 1.0})
    api.stop()
    with pytest.raises(ActuatorError):
        k8s.replicas("synth")


def test_backend_weights_split():
    assert backend_weights({"a": 1, "b": 3}, 0.2, "lite") == {"a": 200, "b": 600, "lite": 200}
    assert backend_weights({"a": 1}, 0.5, None) == {"a": 1000}


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                    reason="no KUBECONFIG: no real cluster here; apply remediation/k8s/*.yaml "
                           "to one and set KUBECONFIG to run this")
def test_against_a_real_cluster():  # pragma: no cover - needs a cluster
    ns = os.environ.get("WARDEN_K8S_NAMESPACE", NS)
    cfg = config().model_copy(update={"namespace": ns})
    k8s = Kubernetes.from_kubeconfig(cfg)
    before = k8s.replicas("synth")
    k8s.scale("synth", before + 1)
    try:
        assert k8s.replicas("synth") == before + 1
        k8s.set_variant("synth", "lite", 0.25)
        assert k8s.state().model("synth").lite_fraction == pytest.approx(0.25)
    finally:
        k8s.set_variant("synth", "lite", 0.0)
        k8s.scale("synth", before)
