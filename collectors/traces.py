"""OTLP/HTTP trace receiver on loopback: ``POST /v1/traces``, protobuf or JSON, gzip or not.

Why stdlib ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive: exporters send a few large batches
per second over one connection, so the cost is in decoding spans, not in the HTTP layer; a
thread per connection keeps the receiver free of an event loop the engine would have to host
(``benchmarks/otlp_receive.py`` measures the rate).

Responses: 200 (with ``partialSuccess`` when some spans were skipped), 400 for a body that is
not OTLP (malformed, truncated, wrong type, bad gzip), 401 without the bearer token when one is
set, 404 for other paths, 411 without Content-Length, 413 for a body over ``max_body_bytes``
(compressed or not), 415 for another content type. Each refusal is counted in
``warden_spans_rejected_total{reason}`` and ``warden_otlp_requests_total{code}``; none stops the
server.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collectors.otlp import Decoded, OtlpDecodeError, decode_json, decode_protobuf
from collectors.self_metrics import WardenMetrics
from warden.records import Span

__all__ = ["OtlpReceiver", "SpanSink"]

logger = logging.getLogger(__name__)

SpanSink = Callable[[list[Span]], None]
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class _Refused(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Refused(400, "bad_gzip", f"bad gzip body: {exc}") from exc
    if len(out) > limit:
        raise _Refused(413, "too_large", "decompressed body too large")
    if not d.eof:
        raise _Refused(400, "bad_gzip", "truncated gzip body")
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The status line and headers, then the body, were two writes on an unbuffered socket: a
    # JSON reply's 2-byte body waited for the client's delayed ACK under Nagle's algorithm,
    # 40 ms per export (measured: 44 ms a POST; a protobuf reply, with an empty body, did not
    # wait). Buffered, a reply is one write (``handle_one_request`` flushes); no Nagle besides.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        logger.debug("otlp: " + format, *args)

    def _reply(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            # say so: a client that is not told reuses the connection and its next request
            # meets a closed socket ("server disconnected", seen in CI after a 413)
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.server.receiver.metrics.otlp_requests.labels(str(code)).inc()

    def do_GET(self) -> None:  # noqa: N802
        self.close_connection = True
        self._reply(404 if self.path != "/healthz" else 200, b"", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        rec = self.server.receiver
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            spans = self._decode(rec, ctype)
        except _Refused as exc:
            rec.metrics.spans_rejected.labels(exc.reason).inc()
            msg = json.dumps({"code": exc.code, "message": str(exc)}).encode()
            self._reply(exc.code, msg, JSON)
            return
        if spans.rejected:
            for reason, n in spans.rejected.items():
                rec.metrics.spans_rejected.labels(reason).inc(n)
        rec.metrics.spans_received.labels("protobuf" if ctype == PROTOBUF else "json").inc(
            len(spans.spans))
        if spans.spans:
            try:
                rec.sink(spans.spans)
            except Exception:  # noqa: BLE001 - a sink failure is ours, not the sender's
                logger.exception("span sink failed")
                rec.metrics.spans_rejected.labels("sink_error").inc(len(spans.spans))
                self._reply(503, b'{"code":503,"message":"sink failed"}', JSON)
                return
        self._ok(ctype, spans)

    def _ok(self, ctype: str, spans: Decoded) -> None:
        if ctype == PROTOBUF:
            resp = ExportTraceServiceResponse()
            if spans.rejected_count:
                resp.partial_success.rejected_spans = spans.rejected_count
                resp.partial_success.error_message = "invalid spans skipped"
            self._reply(200, resp.SerializeToString(), PROTOBUF)
        else:
            doc: dict[str, object] = {}
            if spans.rejected_count:
                doc["partialSuccess"] = {"rejectedSpans": spans.rejected_count,
                                         "errorMessage": "invalid spans skipped"}
            self._reply(200, json.dumps(doc).encode(), JSON)

    def _decode(self, rec: OtlpReceiver, ctype: str) -> Decoded:
        if self.path.split("?")[0] != "/v1/traces":
            self.close_connection = True
            raise _Refused(404, "not_found", "only /v1/traces")
        if rec.bearer_token is not None:
            given = self.headers.get("Authorization") or ""
            want = f"Bearer {rec.bearer_token}"
            if not hmac.compare_digest(given.encode(), want.encode()):
                self.close_connection = True
                raise _Refused(401, "unauthorized", "bearer token required")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self.close_connection = True
            raise _Refused(411, "no_length", "Content-Length required")
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise _Refused(400, "bad_length", "bad Content-Length") from None
        if length < 0 or length > rec.max_body_bytes:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise _Refused(413, "too_large", f"body over {rec.max_body_bytes} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise _Refused(400, "truncated", "body shorter than Content-Length")
        if ctype not in (PROTOBUF, JSON):
            raise _Refused(415, "unsupported_type", f"unsupported Content-Type {ctype!r}")
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":
            body = _gunzip(body, rec.max_body_bytes)
        elif encoding != "identity":
            raise _Refused(415, "unsupported_encoding", f"unsupported encoding {encoding!r}")
        try:
            return decode_protobuf(body) if ctype == PROTOBUF else decode_json(body)
        except OtlpDecodeError as exc:
            raise _Refused(400, "malformed", str(exc)) from exc


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: OtlpReceiver


class OtlpReceiver:
    """Receives OTLP/HTTP traces in a background thread and hands decoded spans to ``sink``.

    Args:
        sink: called with each request's spans (e.g. ``ChainJoiner.add``); must be thread-safe.
        metrics: Warden's own metrics.
        host: bind address; loopback by default.
        port: 0 picks a free port (see :attr:`port` after :meth:`start`).
        bearer_token: when set, requests need ``Authorization: Bearer <token>``.
        max_body_bytes: limit on the body, before and after gunzip.
    """

    def __init__(
        self, sink: SpanSink, *, metrics: WardenMetrics, host: str = "127.0.0.1", port: int = 0,
        bearer_token: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.host = host
        self.bearer_token = bearer_token
        self.max_body_bytes = max_body_bytes
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("receiver not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint to give exporters (and Triton's ``opentelemetry,url=``)."""
        return f"http://{self.host}:{self.port}/v1/traces"

    def start(self) -> OtlpReceiver:
        server = _Server((self.host, self._requested_port), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="otlp-receiver",
            daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
