"""A lean span recorder for the request path: spans as plain objects, posted as OTLP/HTTP JSON.

Why not the OpenTelemetry SDK here: on the lab's 2 cores the router and the load generator
spend their CPU on every request, and the SDK's span (sampler, bounded attributes with a lock,
``BatchSpanProcessor`` queue, protobuf encoding in its own thread) cost about 60 to 140 µs of CPU
per span measured here (``benchmarks/telemetry_overhead.py``): two spans per request were a
tenth of the whole stack's CPU per request. This recorder keeps what a ``warden.client`` or
``warden.router`` span needs (ids, parent, name, kind, times, flat attributes, error status),
appends finished spans to a bounded list, and a background thread posts them every
``interval_s`` as one OTLP/JSON body (the receiver decodes JSON already: Triton posts JSON) over
one kept-alive connection. A span it cannot send is dropped and counted, never retried: the
request path must not wait on telemetry.

It duck-types the part of the OpenTelemetry ``Tracer``/``Span`` API that the load generator, the
benchmarks and PyTriton's proxy use (``start_span(name, context=, start_time=, attributes=)``,
``get_span_context()``, ``span.context``, ``set_attribute(s)``, ``set_status``, ``end``), so
either can be passed where a tracer goes.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)

__all__ = ["LiteSpan", "SpanRecorder", "parse_traceparent"]

logger = logging.getLogger("warden.spans")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def parse_traceparent(value: str | None) -> tuple[int, int, bool] | None:
    """``(trace_id, span_id, sampled)`` from a W3C ``traceparent``, or ``None`` when invalid.

    The checks of the spec (and of OpenTelemetry's propagator): lower-case hex, version ``ff``
    invalid, version ``00`` with nothing after the flags, all-zero ids invalid.
    """
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip())
    if m is None:
        return None
    version, trace_hex, span_hex, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


_esc = json.encoder.encode_basestring_ascii  # what json.dumps does to a str, in C
#: Encoded ``{"key":..,"value":..}`` per (key, type, value): spans repeat the same few
#: attributes (model, replica, variant, status), so most are encoded once.
_ATTR_CACHE: dict[tuple[str, type, Any], str] = {}


def _attribute_text(key: str, v: Any) -> str:
    cache_key = (key, type(v), v)
    try:
        return _ATTR_CACHE[cache_key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value: encode it every time
        return '{"key":%s,"value":%s}' % (_esc(key), json.dumps(_value(v), separators=(",", ":")))
    text = '{"key":%s,"value":%s}' % (_esc(key), json.dumps(_value(v), separators=(",", ":")))
    if len(_ATTR_CACHE) >= 4096:
        _ATTR_CACHE.clear()
    _ATTR_CACHE[cache_key] = text
    return text


class LiteSpan:
    """One span; recorded by its recorder on :meth:`end` when sampled."""

    __slots__ = ("_recorder", "trace_id", "span_id", "parent_span_id", "name", "kind",
                 "start_ns", "end_ns", "attributes", "error", "sampled", "tracestate")

    def __init__(self, recorder: SpanRecorder, name: str, trace_id: int, span_id: int,
                 parent_span_id: int, kind: SpanKind, start_ns: int, sampled: bool,
                 attributes: Mapping[str, Any] | None) -> None:
        self._recorder = recorder
        self.name, self.kind = name, kind
        self.trace_id, self.span_id, self.parent_span_id = trace_id, span_id, parent_span_id
        self.start_ns, self.end_ns = start_ns, 0
        self.attributes: dict[str, Any] = dict(attributes) if attributes else {}
        self.error: str | None = None
        self.sampled = sampled
        self.tracestate = ""

    def get_span_context(self) -> SpanContext:
        return SpanContext(self.trace_id, self.span_id, is_remote=False,
                           trace_flags=_SAMPLED if self.sampled else _UNSAMPLED)

    @property
    def context(self) -> SpanContext:
        """The SDK span's ``context`` attribute (PyTriton's batch decorator reads it)."""
        return self.get_span_context()

    def is_recording(self) -> bool:
        return self.sampled and not self.end_ns

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.attributes.update(attributes)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        code = status.status_code if isinstance(status, Status) else status
        if code is StatusCode.ERROR:
            self.error = (status.description if isinstance(status, Status) else None) \
                or description or "error"

    def record_exception(self, exc: BaseException, *args: Any, **kwargs: Any) -> None:
        self.attributes["exception.type"] = type(exc).__name__

    def end(self, end_time: int | None = None) -> None:
        if self.end_ns:
            return
        self.end_ns = end_time if end_time is not None else time.time_ns()
        if self.sampled:
            self._recorder._finished(self)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "traceId": f"{self.trace_id:032x}", "spanId": f"{self.span_id:016x}",
            "name": self.name, "kind": int(self.kind.value) + 1,  # OTLP kinds count from 1
            "startTimeUnixNano": str(self.start_ns), "endTimeUnixNano": str(self.end_ns),
            "attributes": [{"key": k, "value": _value(v)} for k, v in self.attributes.items()],
        }
        if self.parent_span_id:
            out["parentSpanId"] = f"{self.parent_span_id:016x}"
        if self.error is not None:
            out["status"] = {"code": 2, "message": self.error}
        return out

    def to_json_text(self) -> str:
        """``json.dumps(self.to_json(), separators=(",", ":"))``, in a fifth of the time:
        the exporter encodes every span of the lab, in the process that serves requests."""
        attrs = ",".join([_attribute_text(k, v) for k, v in self.attributes.items()])
        text = ('{"traceId":"%032x","spanId":"%016x","name":%s,"kind":%d,'
                '"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":[%s]'
                % (self.trace_id, self.span_id, _esc(self.name), int(self.kind.value) + 1,
                   self.start_ns, self.end_ns, attrs))
        if self.parent_span_id:
            text += ',"parentSpanId":"%016x"' % self.parent_span_id
        if self.error is not None:
            text += ',"status":{"code":2,"message":%s}' % _esc(self.error)
        return text + "}"


class SpanRecorder:
    """Buffers finished spans of one service and posts them as OTLP/JSON from one thread.

    Args:
        endpoint: the OTLP/HTTP traces URL (``http://127.0.0.1:4318/v1/traces``).
        service_name: the ``service.name`` resource attribute.
        interval_s: how often buffered spans are posted (chains wait at most this long).
        max_buffer: spans held at most; beyond it new spans are dropped and counted.
        timeout_s: per POST.
        sample_ratio: share of *new* traces (spans started without a parent) that are
            sampled, chosen by trace id with the router's ``goes_deep`` rule; an unsampled
            span costs almost nothing, is never sent, and its context says "not sampled"
            (``traceparent`` flags ``00``), so the router neither records nor forwards it.
    """

    def __init__(self, endpoint: str, service_name: str, *, interval_s: float = 0.2,
                 max_buffer: int = 20_000, timeout_s: float = 2.0,
                 sample_ratio: float = 1.0) -> None:
        if not 0.0 <= sample_ratio <= 1.0:
            raise ValueError(f"sample_ratio must be in [0, 1], got {sample_ratio}")
        self.sample_ratio = sample_ratio
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"endpoint must be an http:// URL, got {endpoint!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._path = parts.path or "/v1/traces"
        self.service_name = service_name
        self.interval_s, self.max_buffer, self.timeout_s = interval_s, max_buffer, timeout_s
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one POST at a time on the one connection
        self._buffer: list[LiteSpan] = []
        self._conn: http.client.HTTPConnection | None = None
        self.sent = self.dropped = self.failed_posts = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"spans-{service_name}",
                                        daemon=True)
        self._thread.start()

    # -- the tracer side ---------------------------------------------------------------------

    def start_span(self, name: str, context: Any = None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes: Mapping[str, Any] | None = None, start_time: int | None = None,
                   *, parent: tuple[int, int] | None = None, sampled: bool = True,
                   trace_id: int | None = None) -> LiteSpan:
        """Start a span, child of ``parent`` (trace id, span id) or the root of a new trace
        (with ``trace_id`` when given: benchmarks pick ids to steer the router's choice).

        Without ``parent``, an OpenTelemetry ``context`` is read as the SDK's tracer reads it:
        its current span, when valid, is the parent, and an unsampled parent gives an
        unsampled child (parent-based sampling). Callers here pass ``parent``, which costs
        less; ``context`` is for code written against the OTel API (PyTriton's).
        """
        rng = self._rng
        if parent is None and context is not None:
            ctx = get_current_span(context).get_span_context()
            if ctx.is_valid:
                parent = (ctx.trace_id, ctx.span_id)
                sampled = sampled and ctx.trace_flags.sampled
        if parent is not None:
            trace_id, parent_id = parent
        else:
            trace_id, parent_id = trace_id or rng.getrandbits(128) or 1, 0
            if self.sample_ratio < 1.0:
                sampled = sampled and (trace_id & 0xFFFFFFFF) < self.sample_ratio * 2**32
        return LiteSpan(self, name, trace_id, rng.getrandbits(64) or 1, parent_id, kind,
                        start_time if start_time is not None else time.time_ns(), sampled,
                        attributes)

    def get_tracer(self, *args: Any, **kwargs: Any) -> SpanRecorder:
        """So a recorder can stand where a ``TracerProvider`` is expected."""
        return self

    def _finished(self, span: LiteSpan) -> None:
        with self._lock:
            if len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                return
            self._buffer.append(span)

    # -- the export side -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._post_buffered()
        self._post_buffered()

    def _post_buffered(self) -> None:
        with self._send_lock:
            self._post_locked()

    def _post_locked(self) -> None:
        with self._lock:
            spans, self._buffer = self._buffer, []
        if not spans:
            return
        body = ('{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name",'
                '"value":{"stringValue":%s}}]},"scopeSpans":[{"scope":{"name":"warden"},'
                '"spans":[%s]}]}]}' % (_esc(self.service_name),
                                       ",".join([s.to_json_text() for s in spans]))).encode()
        for attempt in (1, 2):  # a kept-alive connection the server closed: reconnect once
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self._host, self._port,
                                                            timeout=self.timeout_s)
                self._conn.request("POST", self._path, body,
                                   {"Content-Type": "application/json"})
                resp = self._conn.getresponse()
                resp.read()
                if resp.status >= 300:
                    raise OSError(f"HTTP {resp.status}")
                self.sent += len(spans)
                return
            except (OSError, http.client.HTTPException) as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if attempt == 2:
                    self.failed_posts += 1
                    self.dropped += len(spans)
                    logger.debug("spans: post failed, %d dropped: %s", len(spans), exc)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Post what is buffered now (from the caller's thread)."""
        self._post_buffered()
        return True

    def shutdown(self) -> None:
        """Post what is left and stop the thread. Safe to call twice."""
        self._stop.set()
        self._wake.set()
        self._thread.join(self.timeout_s * 2 + 1)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
