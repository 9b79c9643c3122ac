"""The lean span recorder's OTLP/JSON text is exactly the JSON of its span dictionaries."""

from __future__ import annotations

import json

from opentelemetry.trace import SpanKind, Status, StatusCode

from serving.spans import SpanRecorder


def test_span_text_is_the_json_of_the_span_dict() -> None:
    recorder = SpanRecorder("http://127.0.0.1:9/v1/traces", "test", interval_s=3600)
    try:
        attrs = [{"warden.model": "synth", "http.status_code": 200, "ok": True, "ratio": 0.25,
                  "nan": float("nan"), "quote": 'a "b" \\ é \n', "list": [1, 2], "n": -3}
                 for _ in range(3)]  # twice more from the attribute cache
        spans = [recorder.start_span("warden.router", kind=SpanKind.SERVER, attributes=a)
                 for a in attrs]
        spans.append(recorder.start_span("child", parent=(2**127 + 5, 7)))
        spans[1].set_status(Status(StatusCode.ERROR, 'upstream said "no"'))
        for s in spans:
            s.end()
        for s in spans:
            text = s.to_json_text()
            assert text == json.dumps(s.to_json(), separators=(",", ":"))
    finally:
        recorder.shutdown()

