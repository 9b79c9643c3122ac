"""The router's edges over real HTTP: admin API, errors, tracing, metrics, tritonclient."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from router_helpers import INFER_BODY, fire, replica_state, start_router, wait_for

from serving.router.tracing import make_tracer_provider
from serving.router.upstream import EchoUpstream

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def ups() -> Iterator[list[EchoUpstream]]:
    servers = [EchoUpstream(f"r{i}") for i in range(2)]
    yield servers
    for s in servers:
        s.close()


# -- admin API -------------------------------------------------------------------------------
BAD_ADMIN_REQUESTS: list[tuple[str, bytes]] = [
    ("/admin/weights", b"{not json"),
    ("/admin/weights", b"[1, 2]"),
    ("/admin/weights", b"{}"),
    ("/admin/weights", json.dumps({"r0": -1}).encode()),
    ("/admin/weights", b'{"r0": NaN}'),
    ("/admin/weights", b'{"r0": Infinity}'),
    ("/admin/weights", json.dumps({"r0": "2"}).encode()),
    ("/admin/weights", json.dumps({"r0": True}).encode()),
    ("/admin/weights", json.dumps({"r0": 2, "nope": 1}).encode()),
    ("/admin/variant_split", json.dumps({"model": "mlp", "fraction": 1.5}).encode()),
    ("/admin/variant_split", json.dumps({"model": "mlp", "fraction": -0.1}).encode()),
    ("/admin/variant_split", json.dumps({"model": "mlp"}).encode()),
    ("/admin/variant_split", json.dumps({"model": "synth", "fraction": 0.5}).encode()),
    ("/admin/variant_split", json.dumps({"fraction": 0.5}).encode()),
    ("/admin/policy", json.dumps({"policy": "random"}).encode()),
    ("/admin/policy", json.dumps({"policy": 3}).encode()),
    ("/admin/replicas", json.dumps({"name": "r9"}).encode()),
    ("/admin/replicas", json.dumps({"name": "r9", "url": "not a url"}).encode()),
    ("/admin/replicas", json.dumps({"name": "bad name", "url": "http://127.0.0.1:1"}).encode()),
    ("/admin/replicas", json.dumps({"name": "r9", "url": "http://127.0.0.1:1",
                                    "weight": -3}).encode()),
    ("/admin/drain", json.dumps({"replica": "nope"}).encode()),
]


def test_admin_rejects_bad_input_with_400(ups: list[EchoUpstream]) -> None:
    """One router takes every bad request in turn (starting one per case would be slow)."""
    with start_router(ups, lite_models=["mlp"]) as h, httpx.Client() as c:
        for path, body in BAD_ADMIN_REQUESTS:
            resp = c.post(h.url + path, content=body)
            assert resp.status_code == 400, (path, body, resp.text)
            assert isinstance(resp.json()["error"], str) and resp.json()["error"], (path, body)
            state = c.get(h.url + "/admin/state").json()
            assert [r["weight"] for r in state["replicas"]] == [1.0, 1.0], "nothing half-applied"
            assert state["variant_split"] == {"mlp": 0.0} and state["policy"] == "round_robin"
            assert [r["name"] for r in state["replicas"]] == ["r0", "r1"]
        assert fire(h.url, 2)[0][0] == 200, "router keeps serving"
        text = c.get(h.url + "/metrics").text
    assert (f'warden_router_rejections_total{{reason="admin_bad_request"}} '
            f'{float(len(BAD_ADMIN_REQUESTS))}') in text


def test_admin_state_policy_add_remove_drain(ups: list[EchoUpstream]) -> None:
    extra = EchoUpstream("r2")
    try:
        with start_router(ups, health_interval_s=0.2) as h:
            state = httpx.get(h.url + "/admin/state").json()
            assert state["policy"] == "round_robin"
            assert {"url", "weight", "healthy", "ejected_until", "outstanding", "ewma"} <= set(
                state["replicas"][0])
            assert httpx.put(h.url + "/admin/policy",
                             json={"policy": "least_outstanding"}).json() == {
                "policy": "least_outstanding"}
            resp = httpx.post(h.url + "/admin/replicas", json={"name": "r2", "url": extra.url})
            assert resp.status_code == 201 and resp.json()["healthy"] is True
            dup = httpx.post(h.url + "/admin/replicas", json={"name": "r2", "url": extra.url})
            assert dup.status_code == 409
            fire(h.url, 60)
            assert extra.total() > 5
            drained = httpx.post(h.url + "/admin/drain", json={"replica": "r2"}).json()
            assert drained["weight"] == 0 and drained["outstanding"] == 0
            before = extra.total()
            fire(h.url, 20)
            assert extra.total() == before
            assert httpx.delete(h.url + "/admin/replicas/r2").status_code == 200
            assert httpx.delete(h.url + "/admin/replicas/r2").status_code == 404
            names = [r["name"] for r in httpx.get(h.url + "/admin/state").json()["replicas"]]
            assert names == ["r0", "r1"]
            assert "replica=\"r2\"" not in httpx.get(h.url + "/metrics").text.split(
                "warden_router_upstream_outstanding")[-1].split("# HELP")[0]
    finally:
        extra.close()


def test_added_replica_that_is_down_gets_no_traffic(ups: list[EchoUpstream]) -> None:
    with start_router(ups, health_interval_s=0.2) as h:
        resp = httpx.post(h.url + "/admin/replicas", json={"name": "r9",
                                                           "url": "http://127.0.0.1:1"})
        assert resp.status_code == 201 and resp.json()["healthy"] is False
        results = fire(h.url, 20)
        assert all(s == 200 for s, _, _ in results) and "r9" not in {w for _, _, w in results}


def test_outstanding_is_exposed_while_requests_are_in_flight(ups: list[EchoUpstream]) -> None:
    import threading

    ups[0].hold()
    with start_router(ups[:1]) as h:
        t = threading.Thread(target=fire, args=(h.url, 3), kwargs={"concurrency": 3})
        t.start()
        try:
            assert wait_for(lambda: replica_state(h, "r0")["outstanding"] == 3, 5)
            metrics = httpx.get(h.url + "/metrics").text
            assert 'warden_router_upstream_outstanding{replica="r0"} 3.0' in metrics
        finally:
            ups[0].release()
            t.join()
        assert replica_state(h, "r0")["outstanding"] == 0


# -- errors ----------------------------------------------------------------------------------
def test_oversized_body_413_and_router_keeps_serving(ups: list[EchoUpstream]) -> None:
    with start_router(ups, max_body_bytes=2048) as h, httpx.Client() as c:
        big = json.dumps({"inputs": [{"data": [0.0] * 2000}]}).encode()
        resp = c.post(h.url + "/v2/models/mlp/infer", content=big)
        assert resp.status_code == 413 and "limit" in resp.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the read itself must stop it
            for _ in range(10):
                yield b" " * 1024

        resp = c.post(h.url + "/v2/models/mlp/infer", content=chunks())
        assert resp.status_code == 413 and "error" in resp.json()
        assert sum(u.total() for u in ups) == 0
        assert fire(h.url, 2)[0][0] == 200


def test_no_healthy_replica_503(ups: list[EchoUpstream]) -> None:
    with start_router(ups, health_interval_s=0.05, unhealthy_threshold=1) as h:
        for u in ups:
            u.ready = False
        assert wait_for(lambda: not any(r["healthy"] for r in
                                        httpx.get(h.url + "/admin/state").json()["replicas"]))
        resp = httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY)
        assert resp.status_code == 503 and "no healthy replica" in resp.json()["error"]
        assert httpx.get(h.url + "/v2/health/ready").status_code == 503
        for u in ups:
            u.ready = True
        assert wait_for(lambda: fire(h.url, 1)[0][0] == 200)


def test_all_weights_zero_503_and_all_down_502(ups: list[EchoUpstream]) -> None:
    with start_router(ups, max_retries=3) as h:
        httpx.put(h.url + "/admin/weights", json={"r0": 0, "r1": 0})
        assert httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY).status_code == 503
        httpx.put(h.url + "/admin/weights", json={"r0": 1, "r1": 1})
        for u in ups:
            u.stop_listening()
        resp = httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY)
        assert resp.status_code == 502 and "connect" in resp.json()["error"]
        for u in ups:
            u.start_listening()
        assert fire(h.url, 1)[0][0] == 200


def test_paths_malformed_json_and_passthrough(ups: list[EchoUpstream]) -> None:
    with start_router(ups) as h, httpx.Client() as c:
        for method, path in [("GET", "/nope"), ("POST", "/v2/models/mlp/predict"),
                             ("GET", "/v2/models/mlp/infer"), ("POST", "/v2/health/ready")]:
            resp = c.request(method, h.url + path)
            assert resp.status_code == 404 and "error" in resp.json(), (method, path)
        assert c.get(h.url + "/v2/health/live").status_code == 200
        assert c.get(h.url + "/v2/models/mlp/ready").status_code == 200
        assert c.get(h.url + "/v2/models/mlp").json()["name"] == "mlp"
        assert fire(h.url, 2)[0][0] == 200


MALFORMED_INFERS: list[tuple[bytes, dict[str, str]]] = [
    (b"{broken", {}),
    (b"[1, 2]", {}),
    (b"\xff\xfe", {}),
    (b'{"inputs": []}' + b"\x00" * 8, {"Inference-Header-Content-Length": "99"}),
    (b'{"inputs": []}' + b"\x00" * 8, {"Inference-Header-Content-Length": "x"}),
    (b'{"inputs": ]' + b"\x00" * 8, {"Inference-Header-Content-Length": "12"}),
]


def test_malformed_json_rejected_400_by_the_router(ups: list[EchoUpstream]) -> None:
    """Triton answers malformed JSON with 500, which would eject a healthy replica: stop it here."""
    ejection = {"consecutive_failures": 1, "max_ejection_percent": 100}
    with start_router(ups[:1], ejection=ejection) as h, httpx.Client() as c:
        for body, headers in MALFORMED_INFERS:
            resp = c.post(h.url + "/v2/models/mlp/infer", content=body, headers=headers)
            assert resp.status_code == 400 and resp.json()["error"], (body, headers)
        assert ups[0].total() == 0 and not replica_state(h, "r0")["ejected"]
        assert fire(h.url, 2)[0][0] == 200


def test_json_too_big_to_check_is_forwarded(ups: list[EchoUpstream]) -> None:
    with start_router(ups[:1], validate_json_max_bytes=16) as h, httpx.Client() as c:
        resp = c.post(h.url + "/v2/models/mlp/infer", content=b'{"inputs": [1, 2, 3], broken')
        assert resp.status_code == 400 and "parse" in resp.json()["error"]  # the replica's answer


def test_binary_body_and_headers_forwarded_verbatim(ups: list[EchoUpstream]) -> None:
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    raw = np.arange(4, dtype=np.float32).tobytes()
    with start_router(ups[:1]) as h:
        resp = httpx.post(h.url + "/v2/models/mlp/infer", content=header + raw,
                          headers={"Inference-Header-Content-Length": str(len(header)),
                                   "Content-Type": "application/octet-stream",
                                   "X-Custom": "kept"})
    assert resp.status_code == 200
    seen = ups[0].seen_headers[-1]
    assert ups[0].seen_bodies[-1] == header + raw
    assert seen["Inference-Header-Content-Length"] == str(len(header))
    assert seen["Content-Type"] == "application/octet-stream" and seen["X-Custom"] == "kept"


def test_gzip_request_body_forwarded_compressed(ups: list[EchoUpstream]) -> None:
    import gzip

    raw = json.dumps(INFER_BODY).encode()
    packed = gzip.compress(raw)
    with start_router(ups[:1]) as h:
        resp = httpx.post(h.url + "/v2/models/mlp/infer", content=packed,
                          headers={"Content-Encoding": "gzip",
                                   "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text  # the upstream (aiohttp) inflated it itself
    assert ups[0].seen_bodies[-1] == raw
    assert ups[0].seen_headers[-1]["Content-Encoding"] == "gzip"


def test_tritonclient_through_the_router(ups: list[EchoUpstream]) -> None:
    import tritonclient.http as httpclient

    with start_router(ups) as h:
        client = httpclient.InferenceServerClient(h.url.removeprefix("http://"))
        try:
            assert client.is_server_ready()
            inp = httpclient.InferInput("x", [1, 4], "FP32")
            inp.set_data_from_numpy(np.ones((1, 4), dtype=np.float32), binary_data=True)
            names = {client.infer("mlp", [inp]).as_numpy("replica")[0] for _ in range(4)}
        finally:
            client.close()
    assert {n.decode() if isinstance(n, bytes) else n for n in names} == {"r0", "r1"}
    assert "Inference-Header-Content-Length" in ups[0].seen_headers[-1]


# -- tracing and metrics ---------------------------------------------------------------------
def _traceparent_parts(value: str) -> tuple[str, str]:
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00" and int(flags, 16) & 1, value  # sampled (newer SDKs add 0x02: random id)
    return trace_id, span_id


def test_traceparent_continued_and_started(ups: list[EchoUpstream]) -> None:
    exporter = InMemorySpanExporter()
    provider = make_tracer_provider(exporter, batch=False)
    with start_router(ups[:1], tracer_provider=provider, lite_models=["mlp"],
                      variant_split={"mlp": 1.0}) as h:
        incoming = f"00-{TRACE_ID}-{PARENT_ID}-01"
        resp = httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY,
                          headers={"traceparent": incoming})
        assert resp.status_code == 200
        sent_trace, sent_parent = _traceparent_parts(ups[0].seen_headers[-1]["traceparent"])
        (span,) = exporter.get_finished_spans()
        assert span.name == "warden.router"
        assert span.resource.attributes["service.name"] == "warden-router"
        assert format(span.context.trace_id, "032x") == TRACE_ID == sent_trace
        assert format(span.parent.span_id, "016x") == PARENT_ID
        assert sent_parent == format(span.context.span_id, "016x")
        assert dict(span.attributes) == {"warden.model": "mlp", "warden.variant": "lite",
                                         "warden.replica": "r0", "http.status_code": 200,
                                         "retries": 0, "warden.deep": True}
        exporter.clear()
        httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY)
        (span,) = exporter.get_finished_spans()
        assert span.parent is None
        sent_trace, sent_parent = _traceparent_parts(ups[0].seen_headers[-1]["traceparent"])
        assert sent_trace == format(span.context.trace_id, "032x") != TRACE_ID
        assert sent_parent == format(span.context.span_id, "016x")
        exporter.clear()
        ups[0].fail = True
        httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY)
        (span,) = exporter.get_finished_spans()
        assert span.status.status_code.name == "ERROR"
        assert span.attributes["http.status_code"] == 500


def test_malformed_traceparent_starts_a_new_trace(ups: list[EchoUpstream]) -> None:
    exporter = InMemorySpanExporter()
    with start_router(ups[:1], tracer_provider=make_tracer_provider(exporter, batch=False)) as h:
        resp = httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY,
                          headers={"traceparent": "00-zz-not-a-trace"})
    assert resp.status_code == 200
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    sent_trace, _ = _traceparent_parts(ups[0].seen_headers[-1]["traceparent"])
    assert sent_trace == format(span.context.trace_id, "032x")


def test_tracing_off_passes_traceparent_untouched(ups: list[EchoUpstream]) -> None:
    with start_router(ups[:1]) as h:
        incoming = f"00-{TRACE_ID}-{PARENT_ID}-01"
        httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY,
                   headers={"traceparent": incoming})
    assert ups[0].seen_headers[-1]["traceparent"] == incoming


def test_metrics_per_replica_series(ups: list[EchoUpstream]) -> None:
    registry = CollectorRegistry()
    with start_router(ups, registry=registry) as h:
        fire(h.url, 10)
        httpx.get(h.url + "/nope")
        text = httpx.get(h.url + "/metrics").text
    for replica in ("r0", "r1"):
        assert f'warden_router_upstream_outstanding{{replica="{replica}"}} 0.0' in text
        assert f'warden_router_replica_healthy{{replica="{replica}"}} 1.0' in text
        assert registry.get_sample_value("warden_router_upstream_request_duration_seconds_count",
                                         {"replica": replica}) == 5
        assert f'warden_router_replica_ewma_seconds{{replica="{replica}"}}' in text
    assert registry.get_sample_value("warden_router_requests_total",
                                     {"model": "mlp", "variant": "full"}) == 10
    assert registry.get_sample_value("warden_router_rejections_total",
                                     {"reason": "not_found"}) == 1
    assert 'le="0.001"' in text and 'le="5.0"' in text


@pytest.mark.slow
def test_router_process_serves_and_stops(ups: list[EchoUpstream]) -> None:
    from serving.router import RouterConfig, RouterProcess

    cfg = RouterConfig(replicas=[{"name": u.name, "url": u.url} for u in ups],
                       policy="round_robin", health_interval_s=0)
    with RouterProcess(cfg) as proc:
        results = fire(proc.url, 4)
        assert [w for _, _, w in results] == ["r0", "r1", "r0", "r1"]
        assert httpx.put(proc.url + "/admin/weights", json={"r1": 0}).status_code == 200
        assert {w for _, _, w in fire(proc.url, 3)} == {"r0"}
    assert proc._proc.poll() is not None  # the child exited
    with pytest.raises(httpx.ConnectError):
        httpx.get(proc.url + "/v2/health/live")


def test_cli_config_from_flags_and_yaml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import argparse

    from serving.router.cli import build_config, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    cfg_file = tmp_path / "warden.yaml"
    cfg_file.write_text("router:\n  policy: least_outstanding\n  timeout_s: 3\n"
                        "  replicas: [{name: a, url: 'http://127.0.0.1:1'}]\n")
    args = parser.parse_args(["router", "--config", str(cfg_file), "--replica",
                              "r0=http://127.0.0.1:8000@2", "--lite-models", "mlp,synth"])
    cfg = build_config(args)
    assert cfg.policy == "least_outstanding" and cfg.timeout_s == 3
    assert [(r.name, r.url, r.weight) for r in cfg.replicas] == [("r0", "http://127.0.0.1:8000", 2.0)]
    assert cfg.lite_models == {"mlp", "synth"}
    assert args.func(parser.parse_args(["router", "--replica", "nourl"])) == 2


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_cli_serves_until_sigterm(ups: list[EchoUpstream], loop: str) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "serving.router.cli", "--port", "0",
                             "--replica", f"r0={ups[0].url}", "--loop", loop],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("warden router listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert fire(url, 2)[0][2] == "r0"
        proc.terminate()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
