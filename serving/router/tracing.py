"""W3C trace context for the router: continue or start a trace, emit ``warden.router``.

Why the OpenTelemetry propagator rather than hand parsing: it validates ``traceparent`` exactly as
the spec says (bad versions, all-zero ids) and carries ``tracestate`` along. Why an injected
``TracerProvider``: the caller decides the exporter (OTLP to the trace receiver, in-memory in
tests), and ``None`` turns tracing off at zero cost: the incoming ``traceparent`` then passes
through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "SERVICE_NAME",
    "SPAN_NAME",
    "RouterTracer",
    "make_tracer_provider",
]

SPAN_NAME = "warden.router"
SERVICE_NAME = "warden-router"

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

_PROPAGATOR = TraceContextTextMapPropagator()


class RouterTracer:
    """Starts the router span and writes the outgoing ``traceparent``."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer: Tracer = provider.get_tracer("warden.router")

    def start(self, incoming: Mapping[str, str], model: str) -> Span:
        """Start ``warden.router`` as a child of the incoming context, or as a new trace's root."""
        parent = _PROPAGATOR.extract(carrier=incoming)
        span = self._tracer.start_span(SPAN_NAME, context=parent, kind=SpanKind.SERVER)
        span.set_attribute("warden.model", model)
        return span

    @staticmethod
    def inject(span: Span, headers: MutableMapping[str, str]) -> None:
        """Set ``traceparent`` (and ``tracestate``) so the replica's span is the router span's child."""
        headers.pop("traceparent", None)
        headers.pop("tracestate", None)
        _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))

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
