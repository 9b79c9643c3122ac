"""PyTriton's stub and proxy spans on the lean recorder: same names, same parents, sampled only.

Without Triton: the proxy files PyTriton sends Triton are written out and imported as the stub
imports them (``<version>.data``, which imports ``<version>.telemetry``), and fake Triton
requests carry the context Triton hands the stub. ``tests/serving/test_replica_tracing.py``
runs the real thing.
"""

from __future__ import annotations

import base64
import importlib
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from otlp_sink import Received
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

import pytriton.proxy.data as data_module
import pytriton.proxy.telemetry as pytriton_telemetry
from serving.faults import ModelFaultState
from serving.models import CpuDevice, build_model_specs
from serving.pytriton_spans import (
    stub_recorder_config,
    use_lean_stub_spans,
    use_recorder_for_proxy,
)
from serving.spans import LiteSpan, SpanRecorder

TRACE_CONFIG = ["mode=opentelemetry", "rate=0", "level=TIMESTAMPS",
                "opentelemetry,url=URL", "opentelemetry,resource=service.name=triton-r7",
                "opentelemetry,bsp_schedule_delay=200"]


@pytest.fixture()
def stub_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """The stub's ``telemetry`` and ``data`` modules, from the files PyTriton would send."""
    from pytriton.models.model import Model

    monkeypatch.setattr(Model, "get_proxy_model_files", Model.get_proxy_model_files)
    use_lean_stub_spans()
    use_lean_stub_spans()  # idempotent: one patch appended
    files = Model.get_proxy_model_files(
        SimpleNamespace(SCRIPT_FILES_TO_COPY=Model.SCRIPT_FILES_TO_COPY, model_version=1))
    assert files["file:1/telemetry.py"].count(b"\n_warden_lean_spans()\n") == 1
    assert files["file:1/data.py"] == Path(data_module.__file__).read_bytes()
    pkg = f"v{secrets.token_hex(4)}"
    for key, content in files.items():
        path = tmp_path / pkg / key.split("/", 1)[1]
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = importlib.import_module(f"{pkg}.data")
    yield sys.modules[f"{pkg}.telemetry"], data
    for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
        sys.modules.pop(name, None)


class _Trace:
    def __init__(self, context: str | None) -> None:
        self.context = context

    def get_context(self) -> str | None:
        return self.context


class _TritonRequest:
    """What the stub's ``TracableModel`` reads of a Triton request."""

    def __init__(self, traceparent: str | None) -> None:
        self._trace = _Trace(json.dumps({"traceparent": traceparent}) if traceparent else None)

    def trace(self) -> _Trace:
        return self._trace


def _tp(trace_id: int, span_id: int, flags: str = "01") -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags}"


def test_stub_spans_are_lean_children_of_tritons_traced_requests_only(
        stub_modules: tuple[Any, Any], received: Received) -> None:
    telemetry, data = stub_modules
    assert data.get_span_dict is telemetry.get_span_dict  # patched before data took it
    model = telemetry.TracableModel()
    config = [c.replace("URL", received.receiver.url) for c in TRACE_CONFIG]
    model.configure_tracing(base64.b64encode(json.dumps(config).encode()).decode())
    recorder = model._open_telemetry_tracer
    assert isinstance(recorder, SpanRecorder) and recorder.service_name == "triton-r7"
    traced, untraced_flag = (secrets.randbits(127) + 1, 0xAB), (secrets.randbits(127) + 1, 0xCD)
    requests = [_TritonRequest(_tp(*traced)), _TritonRequest(None),
                _TritonRequest(_tp(*untraced_flag, flags="00")), _TritonRequest("garbage")]
    try:
        spans = model.start_requests_spans(requests)
        assert spans is not None and len(spans) == 4  # one entry per request
        assert spans[1:] == [None, None, None]
        span = spans[0]
        assert isinstance(span, LiteSpan) and (span.trace_id, span.parent_span_id) == traced
        assert data.get_span_dict(span) == {"traceparent": _tp(traced[0], span.span_id)}
        model.end_requests_spans(spans, RuntimeError("model failed"))
        recorder.force_flush()
        got = received.wait_for(1)
    finally:
        recorder.shutdown()
    assert [(s.name, s.trace_id, s.parent_span_id, s.service, s.status_error) for s in got] == [
        ("python_backend_execute", f"{traced[0]:032x}", f"{traced[1]:016x}", "triton-r7", True)]


def test_stub_without_trace_config_starts_no_span(stub_modules: tuple[Any, Any]) -> None:
    telemetry, _ = stub_modules
    model = telemetry.TracableModel()
    assert model.start_requests_spans([_TritonRequest(_tp(5, 6))]) is None
    model.end_requests_spans(None, None)


def test_stub_config_needs_a_url() -> None:
    assert stub_recorder_config(["opentelemetry,url=http://h:1/v1/traces"]) == (
        "http://h:1/v1/traces", "pytriton-stub")
    with pytest.raises(ValueError, match="url"):
        stub_recorder_config(["mode=opentelemetry"])


def test_patch_leaves_the_replicas_own_pytriton_alone(stub_modules: tuple[Any, Any]) -> None:
    assert not getattr(pytriton_telemetry.TracableModel, "_warden_lean", False)
    assert data_module.get_span_dict is pytriton_telemetry.get_span_dict


def test_proxy_and_model_spans_chain_under_the_stub_span(
        monkeypatch: pytest.MonkeyPatch, received: Received) -> None:
    data = data_module
    monkeypatch.setattr(data, "start_span_from_remote", data.start_span_from_remote)
    monkeypatch.setattr(pytriton_telemetry, "_open_telemetry_tracer", None)
    recorder = SpanRecorder(received.receiver.url, "warden-replica-r7", interval_s=3600)
    try:
        use_recorder_for_proxy(recorder)
        assert pytriton_telemetry.get_telemetry_tracer() is recorder
        trace_id = secrets.randbits(127) + 1
        proxy = data.start_span_from_remote({"traceparent": _tp(trace_id, 0x77)},
                                            "proxy_inference_callable")
        assert data.start_span_from_remote({"traceparent": _tp(trace_id, 0x78, "00")},
                                           "proxy_inference_callable") is None
        assert data.start_span_from_remote({}, "proxy_inference_callable") is None

        class Req(dict):
            span: Any = None

        traced, untraced = Req(x=np.ones((1, 4), np.float32)), Req(x=np.ones((2, 4), np.float32))
        traced.span = proxy
        untraced.span = recorder.start_span("proxy_inference_callable", parent=(9, 9),
                                            sampled=False)
        spec = next(s for s in build_model_specs(
            ["synth"], replica="r7", model_dir=Path("."), device=CpuDevice(),
            faults=ModelFaultState(), tracer=recorder, synth_cost=_cheap())
            if s.name == "synth")
        out = spec.infer_func([traced, untraced])
        assert [o["y"].shape for o in out] == [(1, 4), (2, 4)]
        pytriton_telemetry.end_span(proxy)  # what PyTriton's inference handler does
        recorder.force_flush()
        got = {s.name: s for s in received.wait_for(2)}
    finally:
        recorder.shutdown()
    assert set(got) == {"proxy_inference_callable", "warden.model"}
    assert got["proxy_inference_callable"].parent_span_id == f"{0x77:016x}"
    model = got["warden.model"]
    assert model.trace_id == f"{trace_id:032x}"
    assert model.parent_span_id == got["proxy_inference_callable"].span_id
    assert model.attributes["warden.replica"] == "r7" and model.attributes["warden.batch_size"] == 3
    assert model.attributes["warden.device"] == "cpu"


def _cheap() -> Any:
    from serving.models import SynthCost

    return SynthCost(per_batch_ms=0.1, per_item_ms=0.0)


def test_recorder_reads_an_otel_context_as_the_sdk_does() -> None:
    recorder = SpanRecorder("http://127.0.0.1:9/v1/traces", "t", interval_s=3600)
    try:
        for flags, sampled in ((TraceFlags.SAMPLED, True), (TraceFlags.DEFAULT, False)):
            parent = SpanContext(123, 456, is_remote=True, trace_flags=TraceFlags(flags))
            span = recorder.start_span("c", context=set_span_in_context(NonRecordingSpan(parent)))
            assert (span.trace_id, span.parent_span_id, span.sampled) == (123, 456, sampled)
            assert span.context.span_id == span.span_id  # the SDK span's attribute
        root = recorder.start_span("r", context=set_span_in_context(NonRecordingSpan(
            SpanContext(0, 0, is_remote=False))))
        assert root.parent_span_id == 0 and root.trace_id
    finally:
        recorder.shutdown()
