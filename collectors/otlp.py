"""Decode OTLP/HTTP trace bodies (protobuf or JSON) into :class:`warden.records.Span`.

What arrives here, from the captured fixtures: Triton 2.51 posts OTLP **JSON** with hex
``traceId``/``spanId``, integer ``kind``, ``intValue`` as strings and nanosecond times as strings;
PyTriton and the OTel SDK post **protobuf** (ids as raw bytes).

Errors::

    OtlpDecodeError(ValueError)   the body as a whole is unusable -> HTTP 400

A body that decodes but holds some bad spans (no trace id, end before start, wrong types) is
not an error: those spans are skipped and counted in :attr:`Decoded.rejected`, and the rest are
kept, as OTLP's ``partial_success`` allows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from warden.records import Span

__all__ = ["Decoded", "OtlpDecodeError", "decode_json", "decode_protobuf"]

STATUS_CODE_ERROR = 2


class OtlpDecodeError(ValueError):
    """The body is not an OTLP trace export request (truncated, wrong type, not JSON...)."""


@dataclass
class Decoded:
    """Spans that decoded, and how many were skipped as invalid (reason -> count)."""

    spans: list[Span] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())


# -- protobuf ---------------------------------------------------------------------------------


def _pb_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def decode_protobuf(body: bytes) -> Decoded:
    """Decode an ``ExportTraceServiceRequest``; raises :class:`OtlpDecodeError` if it is not one."""
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OtlpDecodeError(f"not an OTLP protobuf trace request: {exc}") from exc
    out = Decoded()
    for rs in req.resource_spans:
        service = ""
        for kv in rs.resource.attributes:
            if kv.key == "service.name":
                service = str(_pb_value(kv.value))
        for ss in rs.scope_spans:
            for s in ss.spans:
                if len(s.trace_id) != 16 or len(s.span_id) != 8 or not any(s.trace_id):
                    out.reject("bad_id")
                    continue
                if s.end_time_unix_nano < s.start_time_unix_nano:
                    out.reject("bad_time")
                    continue
                out.spans.append(Span(
                    trace_id=s.trace_id.hex(),
                    span_id=s.span_id.hex(),
                    parent_span_id=s.parent_span_id.hex(),
                    name=s.name,
                    service=service,
                    start_ns=s.start_time_unix_nano,
                    end_ns=s.end_time_unix_nano,
                    attributes={kv.key: _pb_value(kv.value) for kv in s.attributes},
                    events=tuple((e.name, e.time_unix_nano) for e in s.events),
                    status_error=s.status.code == STATUS_CODE_ERROR,
                ))
    if not req.resource_spans and body:
        # protobuf happily parses many random byte strings as an empty message with unknown
        # fields; an empty request is legal, a non-empty body that yields nothing is not.
        raise OtlpDecodeError("body holds no resourceSpans")
    return out


# -- JSON -------------------------------------------------------------------------------------


def _json_value(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        return None
    (kind, x), = list(v.items())[:1]
    if kind == "intValue":
        return int(x)
    if kind == "doubleValue":
        return float(x)
    if kind == "boolValue":
        if not isinstance(x, bool):
            raise TypeError("boolValue not a bool")
        return x
    if kind == "arrayValue":
        return [_json_value(y) for y in (x or {}).get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: _json_value(kv.get("value")) for kv in (x or {}).get("values", [])}
    return x if isinstance(x, str) else str(x)


def _attrs(items: Any) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise TypeError("attributes not a list")
    return {str(kv["key"]): _json_value(kv.get("value")) for kv in items}


def _hex_id(value: Any, nbytes: int) -> str:
    if not isinstance(value, str) or len(value) != 2 * nbytes:
        raise ValueError("bad id")
    int(value, 16)  # raises ValueError when not hex
    return value.lower()


def _json_span(s: Any, service: str) -> Span:
    if not isinstance(s, dict):
        raise TypeError("span not an object")
    trace_id = _hex_id(s.get("traceId"), 16)
    if int(trace_id, 16) == 0:
        raise ValueError("zero trace id")
    parent = s.get("parentSpanId") or ""
    start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
    if end < start:
        raise ValueError("end before start")
    events = s.get("events") or []
    if not isinstance(events, list):
        raise TypeError("events not a list")
    status = s.get("status") or {}
    code = status.get("code", 0) if isinstance(status, dict) else 0
    return Span(
        trace_id=trace_id,
        span_id=_hex_id(s.get("spanId"), 8),
        parent_span_id=_hex_id(parent, 8) if parent else "",
        name=str(s.get("name", "")),
        service=service,
        start_ns=start,
        end_ns=end,
        attributes=_attrs(s.get("attributes")),
        events=tuple((str(e["name"]), int(e["timeUnixNano"])) for e in events),
        status_error=code in (STATUS_CODE_ERROR, "STATUS_CODE_ERROR"),
    )


def decode_json(body: bytes) -> Decoded:
    """Decode OTLP/JSON; raises :class:`OtlpDecodeError` when the top level is not OTLP."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise OtlpDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise OtlpDecodeError("top level is not an object")
    resource_spans = doc.get("resourceSpans", [])
    if not isinstance(resource_spans, list):
        raise OtlpDecodeError("resourceSpans is not a list")
    out = Decoded()
    for rs in resource_spans:
        if not isinstance(rs, dict):
            raise OtlpDecodeError("resourceSpans item is not an object")
        try:
            res = rs.get("resource") or {}
            service = str(_attrs(res.get("attributes")).get("service.name", ""))
            scope_spans = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
            if not isinstance(scope_spans, list):
                raise TypeError("scopeSpans not a list")
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise OtlpDecodeError(f"bad resource: {exc}") from exc
        for ss in scope_spans:
            spans = ss.get("spans") if isinstance(ss, dict) else None
            if not isinstance(spans, list):
                out.reject("bad_scope")
                continue
            for s in spans:
                try:
                    out.spans.append(_json_span(s, service))
                except (TypeError, KeyError, ValueError, AttributeError):
                    out.reject("invalid_span")
    return out
