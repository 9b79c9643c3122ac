"""The hot path: pick a replica, forward the request bytes, relay the response bytes.

Why bytes in, bytes out: tritonclient sends JSON or binary-tensor bodies (with the
``Inference-Header-Content-Length`` header); parsing either would cost time and could only lose
information. The body is read once (bounded by ``max_body_bytes``), sent as is, and the response
body and its headers (``Content-Type``, ``Content-Encoding``, ``Inference-Header-Content-Length``)
come back verbatim. Neither side decompresses: a gzip request body (tritonclient's
``request_compression_algorithm``) and a gzip response pass through as the bytes they are.

Malformed JSON: a JSON body (or a binary body's JSON header) of at most
``validate_json_max_bytes`` is parsed once and, if malformed, answered 400 here, because Triton
answers it with a 500 that would count towards ejecting a healthy replica. That parse is the only
look inside a body, it costs microseconds at those sizes, and its result is thrown away.

Routes: ``route`` maps a request to its handler by splitting the path once (no regular
expressions): the infer and passthrough routes of ``serving.router.server``; ``None`` for
anything else (``/metrics``, ``/admin``, or a 404).

Retries: only when no response was received (connection refused, reset or closed before the
status line, connect timeout), each time on a replica not tried yet, at most ``max_retries``
times. A response, even a 5xx, is final: the replica may have done the work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from serving.router.client import UpstreamError, UpstreamTimeout
from serving.router.http11 import Request, Response, json_response
from serving.router.variants import LITE_SUFFIX

if TYPE_CHECKING:
    from serving.router.server import Router

__all__ = ["HOP_BY_HOP", "Proxy", "json_error"]

_PASSTHROUGH_TAILS = {("health", "ready"), ("health", "live")}

#: Headers that belong to one connection, or that the sending side recomputes.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "expect",
})
_DROP = frozenset(h.encode() for h in HOP_BY_HOP)
_DROP_TRACED = _DROP | {b"traceparent", b"tracestate"}
_RESPONSE_DROP = _DROP | {b"date", b"server"}


def json_error(status: int, message: str) -> Response:
    """KServe-style error body ``{"error": "..."}``."""
    return json_response({"error": message}, status)


def _json_problem(body: bytes, header_length: str | None, limit: int) -> str | None:
    """What is wrong with the JSON part of an infer body, or None (also when too big to check)."""
    if header_length is None:
        head = body
    else:
        try:
            n = int(header_length)
        except ValueError:
            return f"Inference-Header-Content-Length is not an integer: {header_length!r}"
        if not 0 <= n <= len(body):
            return f"Inference-Header-Content-Length {n} is outside the body of {len(body)} bytes"
        head = body[:n]
    if len(head) > limit:
        return None
    try:
        parsed = json.loads(head)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return f"malformed JSON in the inference request: {exc}"
    if not isinstance(parsed, dict):
        return "the inference request must be a JSON object"
    return None


class _Outcome:
    """What one forwarded request ended as, for metrics and the span."""

    __slots__ = ("error", "replica", "retries", "status")

    def __init__(self) -> None:
        self.status = 0
        self.replica: str | None = None
        self.retries = 0
        self.error: str | None = None


class Proxy:
    """Handlers for the KServe v2 routes; state lives on the ``Router``."""

    def __init__(self, router: Router) -> None:
        self.r = router

    def route(self, request: Request) -> Awaitable[Response] | None:
        """The handler's answer for a KServe v2 route, or None if ``request`` is not one.

        ``POST /v2/models/{model}[/versions/{version}]/infer``; ``GET /v2``,
        ``/v2/health/{ready,live}``, ``/v2/models/{model}[/versions/{version}][/ready]``.
        A ``{segment}`` is one non-empty path segment, percent-decoded.
        """
        path = request.path
        if not path.startswith("/v2"):
            return None
        segs = path.split("/")  # "", "v2", ...
        n = len(segs)
        if segs[1] != "v2" or not all(segs[1:]):
            return None
        if request.method == "POST":
            if segs[-1] != "infer" or n < 5 or segs[2] != "models":
                return None
            if n == 5:
                return self.infer(request, unquote(segs[3]), None)
            if n == 7 and segs[4] == "versions":
                return self.infer(request, unquote(segs[3]), unquote(segs[5]))
            return None
        if request.method != "GET":
            return None
        if n == 2 or (n == 4 and (segs[2], segs[3]) in _PASSTHROUGH_TAILS):
            return self.passthrough(request)
        if n >= 4 and segs[2] == "models":
            tail = segs[4:]
            if tail and tail[-1] == "ready":
                tail = tail[:-1]
            if not tail or (len(tail) == 2 and tail[0] == "versions"):
                return self.passthrough(request)
        return None

    # -- handlers ----------------------------------------------------------------------------
    async def infer(self, request: Request, model: str, version: str | None) -> Response:
        """``POST /v2/models/{model}[/versions/{version}]/infer`` with the variant split applied.

        Bodies over ``max_body_bytes`` never get here: the server answers them 413."""
        r = self.r
        body = request.body
        limit = r.config.validate_json_max_bytes
        headers = request.headers
        if limit and "content-encoding" not in headers:
            problem = _json_problem(body, headers.get("inference-header-content-length"), limit)
            if problem is not None:
                r.metrics.count_rejection("bad_request")
                return json_error(400, problem)
        lite = r.splitter.to_lite(model)
        target = model + LITE_SUFFIX if lite else model
        variant = "lite" if lite or model.endswith(LITE_SUFFIX) else "full"
        if version is None:
            path = f"/v2/models/{target}/infer"
        else:
            path = f"/v2/models/{target}/versions/{version}/infer"
        return await self.forward(request, "POST", path, body, model=model, variant=variant)

    async def passthrough(self, request: Request) -> Response:
        """Health, readiness and metadata GETs: forwarded to one replica, untraced, unsplit."""
        return await self.forward(request, "GET", request.path, None, model=None, variant="full")

    def not_found(self, request: Request) -> Response:
        """Anything that is not a route the router knows."""
        self.r.metrics.count_rejection("not_found")
        return json_error(404, f"no route for {request.method} {unquote(request.path)}")

    # -- forwarding --------------------------------------------------------------------------
    async def forward(self, request: Request, method: str, path: str, body: bytes | None, *,
                      model: str | None, variant: str) -> Response:
        r = self.r
        tracer = None
        span: Any = None  # an SDK Span or a LiteSpan, whichever the tracer makes
        if r.tracer is not None and model is not None:
            tracer = r.tracer
            span = tracer.start(request.headers, model)
            trace_headers: dict[str, str] = {}
            tracer.inject(span, trace_headers)  # the context goes on, or nothing does
            headers = [(k, v) for k, v in request.raw_headers if k.lower() not in _DROP_TRACED]
            headers += [(k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in trace_headers.items()]
        else:
            headers = [(k, v) for k, v in request.raw_headers if k.lower() not in _DROP]
        out = _Outcome()
        try:
            response = await self._attempts(method, path, body, headers, out)
        except BaseException as exc:  # cancelled at shutdown, or a bug: close the span
            out.status = out.status or 499
            out.error = out.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if tracer is not None:
                tracer.finish(span, status=out.status, replica=out.replica, variant=variant,
                              retries=out.retries, error=out.error)
        if model is not None and out.status != 404:
            r.metrics.count_request(model, variant)
        return response

    async def _attempts(self, method: str, path: str, body: bytes | None,
                        headers: list[tuple[bytes, bytes]], out: _Outcome) -> Response:
        r = self.r
        tried: set[str] = set()
        last_error = ""
        while True:
            candidates = r.pool.available(tried)
            if not candidates:
                if not tried:
                    r.metrics.count_rejection("no_replica")
                    out.status, out.error = 503, "no healthy replica available"
                    return json_error(503, out.error)
                out.status = 502
                out.error = f"all attempts failed to connect; last error: {last_error}"
                return json_error(502, out.error)
            replica = r.policy.choose(candidates)
            out.replica = replica.name
            replica.outstanding += 1
            replica.requests += 1
            started = time.perf_counter()
            try:
                resp = await r.client.request(replica.url, method, path, headers, body)
            except UpstreamError as exc:
                replica.outstanding -= 1
                r.metrics.count_error(replica.name, exc.kind)
                if r.pool.record_failure(replica):
                    r.metrics.count_ejection(replica.name)
                if isinstance(exc, UpstreamTimeout):
                    last_error = f"upstream timeout after {r.config.timeout_s}s"
                else:
                    last_error = f"{type(exc).__name__}: {exc}"
                if exc.retryable and out.retries < r.config.max_retries:
                    tried.add(replica.name)
                    out.retries += 1
                    r.metrics.retries.inc()
                    continue
                status = 504 if isinstance(exc, UpstreamTimeout) else 502
                out.status, out.error = status, last_error
                return json_error(status, last_error)
            except BaseException:
                replica.outstanding -= 1
                raise
            replica.outstanding -= 1
            elapsed = time.perf_counter() - started
            replica.observe_rtt(elapsed, r.clock(), r.config.ewma_decay_s)
            r.metrics.observe_latency(replica.name, elapsed)
            status = resp.status
            if status >= 500:
                r.metrics.count_error(replica.name, "http_5xx")
                if r.pool.record_failure(replica):
                    r.metrics.count_ejection(replica.name)
            else:
                r.pool.record_success(replica)
            out.status = status
            return Response(status, resp.body,
                            [h for h in resp.headers if h[0].lower() not in _RESPONSE_DROP])
