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

Retries: only when no response was received (connection refused, reset or closed before the
status line, connect timeout), each time on a replica not tried yet, at most ``max_retries``
times. A response, even a 5xx, is final: the replica may have done the work.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from serving.router.client import UpstreamError, UpstreamTimeout
from serving.router.variants import LITE_SUFFIX

if TYPE_CHECKING:
    from serving.router.server import Router

__all__ = ["HOP_BY_HOP", "Proxy", "json_error"]

#: Headers that belong to one connection, or that the sending side recomputes.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "expect",
})
_DROP = frozenset(h.encode() for h in HOP_BY_HOP)
_DROP_TRACED = _DROP | {b"traceparent", b"tracestate"}
_RESPONSE_DROP = _DROP | {b"date", b"server"}


def json_error(status: int, message: str) -> web.Response:
    """KServe-style error body ``{"error": "..."}``."""
    return web.json_response({"error": message}, status=status)


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
    """aiohttp handlers for the KServe v2 routes; state lives on the ``Router``."""

    def __init__(self, router: Router) -> None:
        self.r = router

    # -- handlers ----------------------------------------------------------------------------
    async def infer(self, request: web.Request) -> web.StreamResponse:
        """``POST /v2/models/{model}[/versions/{version}]/infer`` with the variant split applied."""
        r = self.r
        model = request.match_info["model"]
        version = request.match_info.get("version")
        length = request.content_length
        if length is not None and length > r.config.max_body_bytes:
            r.metrics.count_rejection("too_large")
            return json_error(413, f"request body of {length} bytes exceeds the limit of "
                                   f"{r.config.max_body_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            r.metrics.count_rejection("too_large")
            return json_error(413, f"request body exceeds the limit of {r.config.max_body_bytes} bytes")
        limit = r.config.validate_json_max_bytes
        if limit and "Content-Encoding" not in request.headers:
            problem = _json_problem(body, request.headers.get("Inference-Header-Content-Length"),
                                    limit)
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

    async def passthrough(self, request: web.Request) -> web.StreamResponse:
        """Health, readiness and metadata GETs: forwarded to one replica, untraced, unsplit."""
        return await self.forward(request, "GET", request.rel_url.raw_path, None,
                                  model=None, variant="full")

    async def not_found(self, request: web.Request) -> web.Response:
        """Anything that is not a KServe v2 route the router knows."""
        self.r.metrics.count_rejection("not_found")
        return json_error(404, f"no route for {request.method} {request.rel_url.path}")

    # -- forwarding --------------------------------------------------------------------------
    async def forward(self, request: web.Request, method: str, path: str, body: bytes | None, *,
                      model: str | None, variant: str) -> web.StreamResponse:
        r = self.r
        span = None
        if r.tracer is not None and model is not None:
            span = r.tracer.start(request.headers, model)
            trace_headers: dict[str, str] = {}
            r.tracer.inject(span, trace_headers)  # the context goes on, or nothing does
            headers = [(k, v) for k, v in request.raw_headers if k.lower() not in _DROP_TRACED]
            headers += [(k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in trace_headers.items()]
        else:
            headers = [(k, v) for k, v in request.raw_headers if k.lower() not in _DROP]
        out = _Outcome()
        try:
            response = await self._attempts(method, path, body, headers, out)
        except BaseException as exc:  # cancelled by a client disconnect, or a bug: close the span
            out.status = out.status or 499
            out.error = out.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if span is not None:
                r.tracer.finish(span, status=out.status, replica=out.replica,  # type: ignore[union-attr]
                                variant=variant, retries=out.retries, error=out.error)
        if model is not None and out.status != 404:
            r.metrics.count_request(model, variant)
        return response

    async def _attempts(self, method: str, path: str, body: bytes | None,
                        headers: list[tuple[bytes, bytes]], out: _Outcome) -> web.StreamResponse:
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
            resp_headers = CIMultiDict(
                (k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for k, v in resp.headers if k.lower() not in _RESPONSE_DROP)
            return web.Response(status=status, body=resp.body, headers=resp_headers)
