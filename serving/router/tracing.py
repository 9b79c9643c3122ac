"""W3C trace context for the router: continue or start a trace, emit ``warden.router``.

Why the OpenTelemetry propagator rather than hand parsing: it validates ``traceparent`` exactly as
the spec says (bad versions, all-zero ids) and carries ``tracestate`` along. Why an injected
``TracerProvider``: the caller decides the exporter (OTLP to the trace receiver, in-memory in
tests), and ``None`` turns tracing off at zero cost: the incoming ``traceparent`` then passes
through untouched.

Why a deep ratio: Triton traces every request that arrives with a valid ``traceparent``, whatever
its sampled flag (``force_sample`` in its tracer), and a fully traced request costs Triton,
PyTriton's stub and proxy and the model code a span each, plus their exports and the receiver's
decoding: on a CPU-bound replica that was most of the telemetry overhead. So the router span is
recorded for every traced request (detection needs every request's latency per replica), but
the context goes on to the replica only for the share ``deep_ratio`` of traces, chosen by trace
id with the rule of ``collectors.chains.keep_by_trace_id``, so the choice is the same wherever
it is made. An incoming ``traceparent`` whose sampled flag is off is honoured: no router span
(parent-based sampling) and nothing forwarded.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from serving.spans import LiteSpan, SpanRecorder, parse_traceparent

__all__ = [
    "DEEP_ATTRIBUTE",
    "SERVICE_NAME",
    "SPAN_NAME",
    "RouterTracer",
    "LiteRouterTracer",
    "goes_deep",
    "make_router_tracer",
    "make_tracer_provider",
    "parse_traceparent",
]

SPAN_NAME = "warden.router"
#: Router span attribute: whether the request's trace context went on to the replica.
DEEP_ATTRIBUTE = "warden.deep"
SERVICE_NAME = "warden-router"

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

_PROPAGATOR = TraceContextTextMapPropagator()


def goes_deep(trace_id: int, ratio: float) -> bool:
    """Whether a trace is traced past the router: its low 32 bits against ``ratio``.

    The same rule as ``collectors.chains.keep_by_trace_id`` (on the hex id), not imported so
    the router does not depend on the collectors.
    """
    if ratio >= 1.0:
        return True
    if ratio <= 0.0:
        return False
    return (trace_id & 0xFFFFFFFF) < ratio * 2**32


class RouterTracer:
    """Starts the router span and writes (or withholds) the outgoing ``traceparent``."""

    def __init__(self, provider: TracerProvider, deep_ratio: float = 1.0) -> None:
        if not 0.0 <= deep_ratio <= 1.0:
            raise ValueError(f"deep_ratio must be in [0, 1], got {deep_ratio}")
        self._tracer: Tracer = provider.get_tracer("warden.router")
        self.deep_ratio = deep_ratio

    def start(self, incoming: Mapping[str, str], model: str) -> Span:
        """Start ``warden.router`` as a child of the incoming context, or as a new trace's root."""
        parent = _PROPAGATOR.extract(carrier=incoming)
        span = self._tracer.start_span(SPAN_NAME, context=parent, kind=SpanKind.SERVER)
        span.set_attribute("warden.model", model)
        return span

    def inject(self, span: Span, headers: MutableMapping[str, str]) -> bool:
        """Set ``traceparent`` (and ``tracestate``) so the replica's span is the router span's
        child, when the trace is sampled and goes deep; otherwise strip them, so the replica
        does not trace it. Returns whether the context was forwarded."""
        headers.pop("traceparent", None)
        headers.pop("tracestate", None)
        ctx = span.get_span_context()
        deep = bool(ctx.is_valid and ctx.trace_flags.sampled
                    and goes_deep(ctx.trace_id, self.deep_ratio))
        # Tells the chain joiner whether replica spans can follow: a shallow trace is complete
        # once the client and router spans are in, and need not wait out its settle time.
        span.set_attribute(DEEP_ATTRIBUTE, deep)
        if deep:
            _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
        return deep

    @staticmethod
    def finish(span: Span, *, status: int, replica: str | None, variant: str, retries: int,
               error: str | None) -> None:
        """Record the outcome; 5xx and router-made errors mark the span as an error."""
        span.set_attribute("warden.variant", variant)
        if replica is not None:
            span.set_attribute("warden.replica", replica)
        span.set_attribute("http.status_code", status)
        span.set_attribute("retries", retries)
        if error is not None or status >= 500:
            span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))
        span.end()


def make_tracer_provider(exporter: object | None = None, *, otlp_endpoint: str | None = None,
                         batch: bool = True) -> SdkTracerProvider:
    """Convenience: an SDK provider with ``service.name=warden-router`` and one exporter.

    Args:
        exporter: any ``SpanExporter`` (e.g. ``InMemorySpanExporter`` in tests).
        otlp_endpoint: if given instead, OTLP/HTTP protobuf to this URL (``.../v1/traces``).
        batch: ``BatchSpanProcessor`` (off the hot path) or ``SimpleSpanProcessor`` (tests).
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = SdkTracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    if exporter is None and otlp_endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint)
    if exporter is not None:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)  # type: ignore[arg-type]
        provider.add_span_processor(processor)
    return provider


class LiteRouterTracer:
    """:class:`RouterTracer`'s contract on a :class:`~serving.spans.SpanRecorder`: the same
    span (``warden.router``, SERVER, same attributes), the same parent-based sampling and deep
    ratio, at a fraction of the CPU (see ``serving.spans``)."""

    def __init__(self, recorder: SpanRecorder, deep_ratio: float = 1.0) -> None:
        if not 0.0 <= deep_ratio <= 1.0:
            raise ValueError(f"deep_ratio must be in [0, 1], got {deep_ratio}")
        self.recorder = recorder
        self.deep_ratio = deep_ratio

    def start(self, incoming: Mapping[str, str], model: str) -> LiteSpan:
        parent = parse_traceparent(incoming.get("traceparent"))
        span = self.recorder.start_span(
            SPAN_NAME, kind=SpanKind.SERVER, attributes={"warden.model": model},
            parent=(parent[0], parent[1]) if parent else None,
            sampled=parent[2] if parent else True)
        if parent:
            span.tracestate = incoming.get("tracestate", "")
        return span

    def inject(self, span: LiteSpan, headers: MutableMapping[str, str]) -> bool:
        headers.pop("traceparent", None)
        headers.pop("tracestate", None)
        deep = span.sampled and goes_deep(span.trace_id, self.deep_ratio)
        span.set_attribute(DEEP_ATTRIBUTE, deep)
        if not deep:
            return False
        headers["traceparent"] = f"00-{span.trace_id:032x}-{span.span_id:016x}-01"
        if span.tracestate:
            headers["tracestate"] = span.tracestate
        return True

    @staticmethod
    def finish(span: LiteSpan, *, status: int, replica: str | None, variant: str, retries: int,
               error: str | None) -> None:
        """:meth:`RouterTracer.finish` straight into the span's fields (the same attributes)."""
        attributes = span.attributes
        attributes["warden.variant"] = variant
        if replica is not None:
            attributes["warden.replica"] = replica
        attributes["http.status_code"] = status
        attributes["retries"] = retries
        if error is not None or status >= 500:
            span.error = error or f"HTTP {status}"
        span.end()


def make_router_tracer(provider: Any, deep_ratio: float = 1.0) -> RouterTracer | LiteRouterTracer:
    """The lean tracer for a :class:`~serving.spans.SpanRecorder`, the SDK one otherwise."""
    if isinstance(provider, SpanRecorder):
        return LiteRouterTracer(provider, deep_ratio)
    return RouterTracer(provider, deep_ratio)
