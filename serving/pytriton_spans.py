"""PyTriton's spans on the lean recorder: the proxy span in the replica, the stub's in the stub.

A deep-traced request gets two spans from PyTriton besides Triton's own:
``python_backend_execute`` in the Python-backend stub (a child of Triton's ``compute``) and
``proxy_inference_callable`` in the replica process (its child), under which the model code
starts ``warden.model``. PyTriton makes them with the OpenTelemetry SDK: a ``TracerProvider``
with a ``BatchSpanProcessor`` and the protobuf exporter in each process, a propagator round trip
(with baggage) per request to carry the context from the stub to the proxy. On the same
recorder as the router's spans (:class:`~serving.spans.SpanRecorder`), the replica's CPU for
a deep-traced request fell by about three quarters with a 4 ms model (+0.45 to +0.12 ms
against a request the replica does not trace), and the stub's and replica process's share by
half at 45 req/s (+0.57 to +0.25 ms); ``benchmarks/results/telemetry_overhead.txt``.

Two entry points:

* :func:`use_recorder_for_proxy` (replica process): PyTriton's tracer is the recorder, and the
  proxy starts its span straight from the ``traceparent`` the stub sent, only when sampled
  (``None``, PyTriton's own "no span", otherwise: nothing for an untraced request).
* :func:`use_lean_stub_spans` (replica process, before ``triton.bind``): the stub runs
  PyTriton's proxy modules from copies that PyTriton sends Triton with each model
  (``Model.get_proxy_model_files``), imported as ``<version>.telemetry``, in an interpreter
  started in isolated mode (it ignores ``PYTHONPATH``: seen with strace). So the one way in
  that leaves the virtual environment alone is the copy itself: a few lines appended to
  ``telemetry.py`` call :func:`patch_stub_telemetry` on the module as it finishes executing,
  before ``data`` imports ``get_span_dict`` from it. The stub's ``TracableModel`` then records
  on a recorder posting to the trace config's URL, and the context goes to the proxy as one
  ``traceparent``. If the patch fails (``serving`` not importable there) the stub logs it and
  keeps PyTriton's SDK spans: slower, same spans.

Span names, parents and the sampled-only rule are unchanged, so chains join as before.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from opentelemetry.trace import Status, StatusCode

from serving.spans import LiteSpan, SpanRecorder, parse_traceparent

__all__ = [
    "STUB_PATCH",
    "patch_stub_telemetry",
    "stub_recorder_config",
    "use_lean_stub_spans",
    "use_recorder_for_proxy",
]

logger = logging.getLogger(__name__)

PROXY_SPAN = "proxy_inference_callable"
STUB_SPAN = "python_backend_execute"
#: How often a stub's recorder posts (PyTriton's SDK exporter was set to the same 200 ms).
STUB_EXPORT_INTERVAL_S = 0.2


def _child_of(recorder: SpanRecorder, name: str, traceparent: str | None) -> LiteSpan | None:
    parent = parse_traceparent(traceparent)
    if parent is None or not parent[2]:
        return None
    return recorder.start_span(name, parent=(parent[0], parent[1]))


def use_recorder_for_proxy(recorder: SpanRecorder) -> None:
    """Make PyTriton's proxy (this process) start ``proxy_inference_callable`` on ``recorder``,
    as the child of the stub's span, and only under a sampled one.

    Why only sampled: PyTriton starts a span for every request that brought a context, traced
    or not (a non-recording one when not sampled); with most requests untraced that bookkeeping
    was most of what tracing still cost the replica (+0.2 to 0.4 ms CPU per request, measured).
    """
    import pytriton.proxy.data as data
    from pytriton.proxy.telemetry import get_telemetry_tracer, set_telemetry_tracer

    if get_telemetry_tracer() is None:
        set_telemetry_tracer(recorder)  # batch decorator's and traced_span's tracer

    def start_span_from_remote(span_dict: Any, name: str) -> LiteSpan | None:
        carrier = span_dict if isinstance(span_dict, dict) else {}
        return _child_of(recorder, name, carrier.get("traceparent"))

    data.start_span_from_remote = start_span_from_remote


def stub_recorder_config(trace_config: Sequence[str]) -> tuple[str, str]:
    """``(url, service.name)`` from PyTriton's trace config list (what ``triton.bind`` got).

    Raises:
        ValueError: no ``opentelemetry,url=`` entry, as PyTriton's own parser.
    """
    url = next((c.split("opentelemetry,url=", 1)[1] for c in trace_config
                if c.startswith("opentelemetry,url=")), None)
    if not url:
        raise ValueError("opentelemetry,url is required")
    service = "pytriton-stub"
    for c in trace_config:
        if c.startswith("opentelemetry,resource="):
            for part in c.split("=", 1)[1].split(","):
                key, _, val = part.partition("=")
                if key == "service.name" and val:
                    service = val
    return url, service


def patch_stub_telemetry(telemetry: ModuleType) -> None:
    """Patch a PyTriton ``telemetry`` module (the stub's copy) to record on the lean recorder.

    ``TracableModel`` keeps its contract (``configure_tracing``, ``start_requests_spans`` ->
    one entry per request, ``end_requests_spans``), with ``None`` for a request Triton did not
    trace; ``get_span_dict`` gives the proxy a ``traceparent`` only (PyTriton also sent a
    ``baggage`` entry nobody reads). Must run before ``data`` imports ``get_span_dict``.
    """
    model_cls = telemetry.TracableModel
    if getattr(model_cls, "_warden_lean", False):
        return
    original_get_span_dict = telemetry.get_span_dict

    def configure_tracing(self: Any, trace_config: str) -> None:
        try:
            config = json.loads(base64.b64decode(trace_config).decode("utf-8"))
            url, service = stub_recorder_config(config)
            self._open_telemetry_tracer = SpanRecorder(url, service,
                                                       interval_s=STUB_EXPORT_INTERVAL_S)
        except Exception as exc:
            raise ValueError(f"Failed to configure tracing: {exc}") from exc

    def start_requests_spans(self: Any, triton_requests: Sequence[Any]) -> list[Any] | None:
        recorder = self._open_telemetry_tracer
        if recorder is None:
            return None
        spans: list[Any] = []
        for request in triton_requests:
            context = request.trace().get_context()
            traceparent = json.loads(context).get("traceparent") if context else None
            spans.append(_child_of(recorder, STUB_SPAN, traceparent))
        return spans

    def end_requests_spans(self: Any, spans: Sequence[Any] | None, result: Any) -> None:
        if not spans:
            return
        error = str(result) if isinstance(result, Exception) else None
        for span in spans:
            if span is not None:
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, error))
                span.end()

    def get_span_dict(span: Any) -> dict[str, str]:
        if isinstance(span, LiteSpan):
            return {"traceparent": f"00-{span.trace_id:032x}-{span.span_id:016x}-"
                                   f"{'01' if span.sampled else '00'}"}
        return original_get_span_dict(span)  # type: ignore[no-any-return]

    model_cls.configure_tracing = configure_tracing
    model_cls.start_requests_spans = start_requests_spans
    model_cls.end_requests_spans = end_requests_spans
    model_cls._warden_lean = True
    telemetry.get_span_dict = get_span_dict


#: Appended to the stub's copy of PyTriton's ``telemetry.py`` (``{root}``: where ``serving``
#: lives, for a stub that cannot import it otherwise; appended, so an installed copy wins).
STUB_PATCH = """

# -- appended by Warden (serving.pytriton_spans.use_lean_stub_spans) ------------------------
def _warden_lean_spans():
    import sys as _sys

    if {root!r} not in _sys.path:
        _sys.path.append({root!r})
    try:
        from serving.pytriton_spans import patch_stub_telemetry

        patch_stub_telemetry(_sys.modules[__name__])
    except Exception as exc:  # noqa: BLE001 - PyTriton's own spans then
        LOGGER.warning("Warden's lean stub spans not installed: %r", exc)


_warden_lean_spans()
"""


def use_lean_stub_spans() -> None:
    """Make the stubs PyTriton starts from now on record on the lean recorder (idempotent).

    Wraps ``pytriton.models.model.Model.get_proxy_model_files`` so the ``telemetry.py`` it
    sends Triton ends with :data:`STUB_PATCH`.
    """
    from pytriton.models.model import Model

    original = Model.get_proxy_model_files
    if getattr(original, "_warden_lean", False):
        return
    patch = STUB_PATCH.format(root=str(Path(__file__).resolve().parent.parent)).encode()

    def get_proxy_model_files(self: Any) -> dict[str, bytes]:
        files: dict[str, bytes] = original(self)
        return {k: v + patch if k.endswith("/telemetry.py") else v for k, v in files.items()}

    get_proxy_model_files._warden_lean = True  # type: ignore[attr-defined]
    Model.get_proxy_model_files = get_proxy_model_files  # type: ignore[method-assign]
