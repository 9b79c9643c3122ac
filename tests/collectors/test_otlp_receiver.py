"""The OTLP/HTTP receiver over real HTTP: good bodies, bad bodies, auth, limits, pipeline."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client import CollectorRegistry

from collectors.chains import ChainJoiner
from collectors.self_metrics import WardenMetrics, serve_metrics
from collectors.trace_pipeline import TracePipeline
from collectors.traces import OtlpReceiver
from warden.records import Span
from warden.store import Store

FIX = Path(__file__).parents[1] / "fixtures" / "triton"
TRITON_JSON = (FIX / "otlp_06.json").read_bytes()
PYTRITON_PB = (FIX / "otlp_07.pb").read_bytes()
PB = "application/x-protobuf"
JS = "application/json"


class Sink:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    def __call__(self, spans: list[Span]) -> None:
        with self.lock:
            self.spans.extend(spans)


@pytest.fixture
def metrics():
    return WardenMetrics(CollectorRegistry())


@pytest.fixture
def rx(metrics):
    sink = Sink()
    with OtlpReceiver(sink, metrics=metrics, max_body_bytes=64 * 1024) as r:
        r.test_sink = sink  # type: ignore[attr-defined]
        with httpx.Client(base_url=f"http://127.0.0.1:{r.port}", timeout=5) as client:
            r.client = client  # type: ignore[attr-defined]
            yield r


def post(rx, body: bytes, ctype: str, **headers: str) -> httpx.Response:
    return rx.client.post("/v1/traces", content=body, headers={"Content-Type": ctype, **headers})


def rejected(metrics, reason: str) -> float:
    return metrics.value("warden_spans_rejected_total", {"reason": reason})


def test_real_json_and_protobuf_bodies_accepted(rx, metrics) -> None:
    r1 = post(rx, TRITON_JSON, JS)
    r2 = post(rx, PYTRITON_PB, PB)
    assert r1.status_code == 200 and r1.json() == {}
    assert r2.status_code == 200 and r2.headers["content-type"] == PB
    ExportTraceServiceResponse().ParseFromString(r2.content)
    assert len(rx.test_sink.spans) == 9 + 6
    assert metrics.value("warden_spans_received_total", {"encoding": "json"}) == 9
    assert metrics.value("warden_spans_received_total", {"encoding": "protobuf"}) == 6


def test_gzip_bodies(rx) -> None:
    r = post(rx, gzip.compress(PYTRITON_PB), PB, **{"Content-Encoding": "gzip"})
    assert r.status_code == 200 and len(rx.test_sink.spans) == 6
    r = post(rx, gzip.compress(TRITON_JSON)[:-12], JS, **{"Content-Encoding": "gzip"})
    assert r.status_code == 400  # truncated gzip stream


@pytest.mark.parametrize("body,ctype,reason", [
    (PYTRITON_PB[: len(PYTRITON_PB) // 2], PB, "malformed"),      # truncated protobuf
    (TRITON_JSON[:-40], JS, "malformed"),                          # truncated JSON
    (TRITON_JSON, PB, "malformed"),                                # JSON sent as protobuf
    (PYTRITON_PB, JS, "malformed"),                                # protobuf sent as JSON
    (b'{"resourceSpans": {"not": "a list"}}', JS, "malformed"),    # wrong-typed field
    (b"[1, 2, 3]", JS, "malformed"),                               # wrong top-level type
    (b"\xff\xfe garbage", PB, "malformed"),
    (b"hello", "text/plain", "unsupported_type"),
    (b"x" * 70_000, JS, "too_large"),
])
def test_malformed_bodies_get_4xx_and_are_counted(rx, metrics, body, ctype, reason) -> None:
    r = post(rx, body, ctype)
    assert r.status_code in (400, 413, 415)
    assert rejected(metrics, reason) == 1
    assert rx.test_sink.spans == []
    # and the server still works afterwards
    assert post(rx, TRITON_JSON, JS).status_code == 200


def test_json_reply_is_not_held_back_by_nagle(rx) -> None:
    """A kept-alive exporter (the lean recorder's ``http.client``, Triton's) waited 40 ms per
    POST for a JSON reply sent as two writes (headers, then the 2-byte body) under Nagle's
    algorithm and the client's delayed ACK."""
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    took = []
    try:
        for _ in range(9):
            started = time.perf_counter()
            conn.request("POST", "/v1/traces", TRITON_JSON, {"Content-Type": JS})
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b"{}"
            took.append(time.perf_counter() - started)
    finally:
        conn.close()
    assert sorted(took)[4] < 0.02


def test_a_refusal_that_closes_the_connection_says_so(rx) -> None:
    """The body over the limit is not read, so the server closes; without ``Connection: close``
    the client reused the socket and its next request failed ("server disconnected")."""
    r = post(rx, b"x" * 70_000, JS)
    assert r.status_code == 413 and r.headers.get("connection") == "close"
    ok = post(rx, TRITON_JSON, JS)
    assert ok.status_code == 200 and ok.headers.get("connection") != "close"  # keep-alive


def test_gzip_bomb_refused(rx, metrics) -> None:
    bomb = gzip.compress(b"{" + b" " * 1_000_000 + b"}")
    r = post(rx, bomb, JS, **{"Content-Encoding": "gzip"})
    assert r.status_code == 413 and rejected(metrics, "too_large") == 1


def test_partially_bad_spans_are_skipped_and_reported(rx, metrics) -> None:
    doc = json.loads(TRITON_JSON)
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"] = "not-hex"
    spans[1]["startTimeUnixNano"] = {"oops": 1}
    spans[2]["endTimeUnixNano"] = "1"  # ends before it starts
    r = post(rx, json.dumps(doc).encode(), JS)
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == 3
    assert len(rx.test_sink.spans) == 6 and rejected(metrics, "invalid_span") == 3


def test_bearer_token(metrics) -> None:
    sink = Sink()
    with OtlpReceiver(sink, metrics=metrics, bearer_token="s3cret") as r:
        url = r.url
        assert httpx.post(url, content=TRITON_JSON, headers={"Content-Type": JS}).status_code == 401
        bad = httpx.post(url, content=TRITON_JSON,
                         headers={"Content-Type": JS, "Authorization": "Bearer nope"})
        ok = httpx.post(url, content=TRITON_JSON,
                        headers={"Content-Type": JS, "Authorization": "Bearer s3cret"})
    assert bad.status_code == 401 and ok.status_code == 200
    assert rejected(metrics, "unauthorized") == 2 and len(sink.spans) == 9


def test_wrong_path_and_sink_failure(metrics) -> None:
    def broken(spans: list[Span]) -> None:
        raise RuntimeError("disk full")

    with OtlpReceiver(broken, metrics=metrics) as r:
        base = f"http://127.0.0.1:{r.port}"
        assert httpx.post(base + "/v1/metrics", content=b"{}",
                          headers={"Content-Type": JS}).status_code == 404
        assert httpx.post(r.url, content=TRITON_JSON,
                          headers={"Content-Type": JS}).status_code == 503
    assert rejected(metrics, "sink_error") == 9


def test_sdk_exporter_talks_to_receiver(rx) -> None:
    """The real OTel SDK exporter (protobuf) as a client."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource({"service.name": "warden-router"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=rx.url)))
    with provider.get_tracer("t").start_as_current_span("warden.router",
                                                         attributes={"warden.replica": "r3"}):
        pass
    provider.shutdown()
    (s,) = rx.test_sink.spans
    assert s.name == "warden.router" and s.service == "warden-router"
    assert s.attributes["warden.replica"] == "r3" and s.parent_span_id == ""


def test_pipeline_writes_chains_and_whole_spans_to_store(tmp_path, metrics) -> None:
    store = Store(tmp_path / "t.db")
    joiner = ChainJoiner(settle_s=0.0, sample_rate=0.0, slow_threshold_s=0.02)
    with TracePipeline(store, metrics=metrics, joiner=joiner, poll_interval_s=0.05) as p:
        for f in sorted(FIX.glob("otlp_*")):
            ctype = JS if f.suffix == ".json" else PB
            assert httpx.post(p.url, content=f.read_bytes(),
                              headers={"Content-Type": ctype}).status_code == 200
    # stop() drained and flushed
    chains = store.chains()
    assert len(chains) == 3 and set(chains["replica"]) == {"r0"}
    slow = chains[chains["latency_s"] > 0.02]["trace_id"].tolist()
    for tid in chains["trace_id"]:
        n = len(store.spans(tid))
        assert n == (8 if tid in slow else 0)
    assert metrics.value("warden_chains_total", {"kept": "whole"}) >= len(slow)
    metrics.track_store_size(store.size_bytes)
    port = serve_metrics(metrics.registry)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "warden_store_size_bytes" in text and "warden_spans_received_total" in text
    assert metrics.value("warden_store_size_bytes") > 0
    store.close()


def test_request_proto_roundtrip_many_spans(rx) -> None:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    ss = rs.scope_spans.add()
    for i in range(500):
        s = ss.spans.add()
        s.trace_id = (i + 1).to_bytes(16, "big")
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = "x"
        s.start_time_unix_nano = 1
        s.end_time_unix_nano = 2
    assert post(rx, req.SerializeToString(), PB).status_code == 200
    assert len(rx.test_sink.spans) == 500
