"""Which requests are traced how deep: the lean span recorder, the router's deep ratio, and the
parent-based choices, over real HTTP (router, echo upstream, the collectors' OTLP receiver)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_sink import Received
from router_helpers import INFER_BODY, start_router

from collectors.chains import keep_by_trace_id
from serving.router.tracing import goes_deep, make_tracer_provider
from serving.spans import SpanRecorder, parse_traceparent
from serving.router.upstream import EchoUpstream

PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def up() -> Iterator[EchoUpstream]:
    server = EchoUpstream("r0")
    yield server
    server.close()


def _tp(trace_id: str, flags: str = "01") -> str:
    return f"00-{trace_id}-{PARENT_ID}-{flags}"


def test_parse_traceparent_follows_the_spec() -> None:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parse_traceparent(_tp(tid)) == (int(tid, 16), int(PARENT_ID, 16), True)
    assert parse_traceparent(_tp(tid, "00")) == (int(tid, 16), int(PARENT_ID, 16), False)
    assert parse_traceparent(f"01-{tid}-{PARENT_ID}-01-future")[2] is True  # later versions
    for bad in (None, "", "00-zz-not-a-trace", _tp("0" * 32), f"00-{tid}-{'0' * 16}-01",
                f"ff-{tid}-{PARENT_ID}-01", _tp(tid) + "-extra", _tp(tid.upper())):
        assert parse_traceparent(bad) is None, bad


def test_goes_deep_is_the_joiners_rule() -> None:
    for _ in range(500):
        tid = secrets.token_hex(16)
        for ratio in (0.0, 1 / 16, 0.5, 1.0):
            assert goes_deep(int(tid, 16), ratio) == keep_by_trace_id(tid, ratio)


def test_lean_router_span_arrives_like_the_sdk_one(up: EchoUpstream, received: Received) -> None:
    recorder = SpanRecorder(received.receiver.url, "warden-router", interval_s=0.05)
    tid = secrets.token_hex(16)
    try:
        with start_router([up], tracer_provider=recorder, lite_models=["mlp"],
                          variant_split={"mlp": 1.0}) as h:
            assert httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY,
                              headers={"traceparent": _tp(tid), "tracestate": "k=v"}
                              ).status_code == 200
            up.fail = True
            httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY)
            spans = received.wait_for(2)
    finally:
        recorder.shutdown()
    ok, failed = sorted(spans, key=lambda s: s.start_ns)
    assert (ok.name, ok.service, ok.trace_id, ok.parent_span_id) == (
        "warden.router", "warden-router", tid, PARENT_ID)
    assert ok.attributes == {"warden.model": "mlp", "warden.variant": "lite",
                             "warden.replica": "r0", "http.status_code": 200, "retries": 0,
                             "warden.deep": True}
    assert not ok.status_error and 0 < ok.end_ns - ok.start_ns < 5e9
    forwarded = up.seen_headers[0]
    assert forwarded["traceparent"] == f"00-{tid}-{ok.span_id}-01"
    assert forwarded["tracestate"] == "k=v"
    assert failed.status_error and failed.parent_span_id == ""  # a new trace, an error
    assert failed.attributes["http.status_code"] == 500
    assert recorder.sent == 2 and recorder.dropped == 0


def test_deep_ratio_forwards_the_context_for_deep_traces_only(up: EchoUpstream,
                                                              received: Received) -> None:
    recorder = SpanRecorder(received.receiver.url, "warden-router", interval_s=0.05)
    tids = [secrets.token_hex(16) for _ in range(120)]
    try:
        with start_router([up], tracer_provider=recorder, trace_deep_ratio=0.25) as h, \
                httpx.Client() as c:
            for tid in tids:
                c.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY,
                       headers={"traceparent": _tp(tid)})
            spans = received.wait_for(len(tids))
    finally:
        recorder.shutdown()
    assert sorted(s.trace_id for s in spans) == sorted(tids)  # every request: a router span
    forwarded = [h.get("traceparent") for h in up.seen_headers]
    deep = [tid for tid in tids if goes_deep(int(tid, 16), 0.25)]
    assert 10 < len(deep) < 60
    assert [f is not None for f in forwarded] == [tid in deep for tid in tids]
    assert all(f.split("-")[1] == tid for f, tid in zip(forwarded, tids) if f)


def test_unsampled_parent_is_neither_recorded_nor_forwarded(up: EchoUpstream,
                                                            received: Received) -> None:
    recorder = SpanRecorder(received.receiver.url, "warden-router", interval_s=0.05)
    try:
        with start_router([up], tracer_provider=recorder) as h:
            httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY,
                       headers={"traceparent": _tp(secrets.token_hex(16), "00")})
            recorder.force_flush()
    finally:
        recorder.shutdown()
    assert "traceparent" not in up.seen_headers[0]  # Triton would trace it whatever the flag
    assert received.wait_for(1, timeout_s=0.3) == [] and recorder.sent == 0


def test_sdk_router_tracer_keeps_its_span_but_withholds_the_context(up: EchoUpstream) -> None:
    exporter = InMemorySpanExporter()
    with start_router([up], tracer_provider=make_tracer_provider(exporter, batch=False),
                      trace_deep_ratio=0.0) as h:
        httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY,
                   headers={"traceparent": _tp(secrets.token_hex(16))})
        httpx.post(h.url + "/v2/models/mlp/infer", json=INFER_BODY,
                   headers={"traceparent": _tp(secrets.token_hex(16), "00")})
    assert len(exporter.get_finished_spans()) == 1  # the unsampled one is not recorded
    assert all("traceparent" not in seen for seen in up.seen_headers)


def test_recorder_head_sampling_and_a_dead_receiver(received: Received) -> None:
    recorder = SpanRecorder(received.receiver.url, "warden-loadgen", interval_s=0.05,
                            sample_ratio=0.25)
    try:
        spans = [recorder.start_span("warden.client", attributes={"warden.model": "synth"})
                 for _ in range(400)]
        for s in spans:
            s.end()
        sampled = [s for s in spans if s.get_span_context().trace_flags.sampled]
        assert 60 < len(sampled) < 140
        assert all(goes_deep(s.trace_id, 0.25) for s in sampled)
        got = received.wait_for(len(sampled))
        assert sorted(s.trace_id for s in got) == sorted(f"{s.trace_id:032x}" for s in sampled)
    finally:
        recorder.shutdown()
    dead = SpanRecorder("http://127.0.0.1:9/v1/traces", "x", interval_s=0.05, timeout_s=0.5)
    try:
        dead.start_span("warden.client").end()
        dead.force_flush()  # never raises: counted as dropped
        assert dead.dropped == 1 and dead.failed_posts == 1 and dead.sent == 0
    finally:
        dead.shutdown()
    with pytest.raises(ValueError):
        SpanRecorder("grpc://127.0.0.1:4317", "x")
