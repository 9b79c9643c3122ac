"""A lean HTTP/1.1 server for the router: whole requests in, whole responses out.

Why not aiohttp's web server: per infer the router reads one small request and writes one small
answer, and aiohttp's request and response objects, URL dispatcher, payload stream and writer
were about as much work as everything else the router does. In front of a real model that
work is paid about twice (see ``serving.router.client``: a process woken after the replica's
~10 ms runs its Python about half as fast). Swapping it for this server took the added P50
against an echo upstream answering after 10 ms from 0.87-1.00 ms to 0.58-0.67 ms.

What it does: request line and headers up to ``max_head_bytes`` (431 past it); bodies framed by
``Content-Length`` or ``Transfer-Encoding: chunked`` (decoded), up to ``max_body_bytes`` (413:
the rest of the body is read and dropped so the connection stays usable, unless the client
waits on ``Expect: 100-continue``, which gets its 413 at once); ``100 Continue`` when asked;
keep-alive (HTTP/1.1 by default, HTTP/1.0 on request) and ``Connection: close``; pipelined
requests answered in order; malformed requests answered 400 and the connection closed; idle
connections closed after ``keepalive_s``. Handlers are never cancelled when a client goes
away; their answer is dropped. Every answer carries ``Content-Length`` and ``Date``.

The handler is one coroutine ``handler(request) -> Response``; routing is the caller's.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

__all__ = ["Headers", "HttpServer", "Request", "Response", "json_response"]

logger = logging.getLogger(__name__)

_REASONS = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
_JSON = [(b"Content-Type", b"application/json; charset=utf-8")]
_MAX_PIPELINED = 16


def _tokens(value: bytes) -> set[bytes]:
    return {t.strip() for t in value.lower().split(b",")}


class Headers(Mapping[str, str]):
    """Header names (case-insensitive) to their first value, decoded only when read."""

    __slots__ = ("_found",)

    def __init__(self, found: dict[bytes, bytes]) -> None:
        self._found = found  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._found[name.lower().encode("latin-1")].decode("utf-8", "surrogateescape")

    def get(self, name: str, default: Any = None) -> Any:  # the hot path's one look-up
        value = self._found.get(name.lower().encode("latin-1"))
        return default if value is None else value.decode("utf-8", "surrogateescape")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower().encode("latin-1") in self._found

    def __iter__(self) -> Iterator[str]:
        return (k.decode("latin-1") for k in self._found)

    def __len__(self) -> int:
        return len(self._found)


class Request:
    """One whole request.

    ``path`` is the raw (still percent-encoded) path without the query; ``raw_headers`` the
    headers as received, in order; ``headers`` maps names (case-insensitive) to first values.
    """

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "raw_headers",
                 "target", "version")

    def __init__(self, method: str, target: str, version: str,
                 raw_headers: list[tuple[bytes, bytes]], headers: Headers,
                 body: bytes, keep_alive: bool) -> None:
        self.method = method
        self.target = target
        self.version = version
        path, _, self.query = target.partition("?")
        if path.startswith(("http://", "https://")):  # absolute form: keep the path
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        self.path = path
        self.raw_headers = raw_headers
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class Response:
    """Status, extra headers (``Content-Length``, ``Date`` and ``Connection`` are added) and
    body bytes."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int = 200, body: bytes = b"",
                 headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def json_response(obj: Any, status: int = 200) -> Response:
    """A JSON answer (``application/json; charset=utf-8``)."""
    return Response(status, json.dumps(obj).encode(), _JSON)


class _BadRequest(Exception):
    """A request answered by the server itself; ``close``: the connection closes after."""

    def __init__(self, status: int, message: str, *, close: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


Handler = Callable[[Request], Awaitable[Response]]

# parser states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER = range(5)


class _Date:
    """The ``Date`` header value, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs the handler on each in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_active = time.monotonic()
        self._buf = bytearray()
        self._pos = 0
        self._state = _HEAD
        self._queue: collections.deque[Request | _BadRequest] = collections.deque()
        self._busy = False
        self._reading_paused = False
        self._writing_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._eof = False
        self.task: asyncio.Task[None] | None = None
        # the request being read
        self._head: tuple[str, str, str, list[tuple[bytes, bytes]], Headers, bool] | None
        self._head = None
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._busy:  # else _serve lets go once the handler is done (stop() waits)
            self.server._connections.discard(self)
        self._queue.clear()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.closed:
            return
        self._buf += data
        try:
            self._parse()
        except _BadRequest as exc:  # answered in turn, then the connection closes
            self._queue.append(exc)
            self._state = -1  # read nothing more
            self._pause_reading()
        if self._pos and (self._pos == len(self._buf) or self._pos > 65536):
            del self._buf[:self._pos]
            self._pos = 0
        if self._queue and not self._busy:
            self._busy = True
            self.task = self.server._loop.create_task(self._serve())
        if len(self._queue) >= _MAX_PIPELINED:
            self._pause_reading()

    def eof_received(self) -> bool:
        # half-closed by the client: answer what is queued, then close (see _serve)
        self._eof = True
        return bool(self._busy or self._queue)

    # -- parsing -------------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self._buf
        server = self.server
        while True:
            state = self._state
            if state == _HEAD:
                while buf.startswith(b"\r\n", self._pos):  # RFC 9112 2.2: ignore leading CRLFs
                    self._pos += 2
                end = buf.find(b"\r\n\r\n", self._pos)
                if end < 0:
                    if len(buf) - self._pos > server.max_head_bytes:
                        raise _BadRequest(431, "request head too large")
                    return
                if end - self._pos > server.max_head_bytes:
                    raise _BadRequest(431, "request head too large")
                head = bytes(buf[self._pos:end])
                self._pos = end + 4
                self._start(head)
            elif state == _LENGTH:
                have = len(buf) - self._pos
                if self._too_large:  # drop what arrives, answer 413 when it is all read
                    take = min(have, self._remaining)
                    self._pos += take
                    self._remaining -= take
                    if self._remaining:
                        return
                    self._complete(b"")
                    continue
                if have < self._remaining:
                    return
                start = self._pos
                self._pos += self._remaining
                self._complete(bytes(buf[start:self._pos]))
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n", self._pos)
                if end < 0:
                    if len(buf) - self._pos > 4096:
                        raise _BadRequest(400, "chunk size line too long")
                    return
                line = bytes(buf[self._pos:end]).split(b";", 1)[0].strip()
                if not line or len(line) > 16 or line.strip(b"0123456789abcdefABCDEF"):
                    raise _BadRequest(400, "bad chunk size")
                size = int(line, 16)
                self._pos = end + 2
                if size == 0:
                    self._state = _TRAILER
                    continue
                self._size += size
                if self._size > server.max_body_bytes:
                    self._too_large = True
                self._remaining = size
                self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                if len(buf) - self._pos < self._remaining + 2:
                    return
                end = self._pos + self._remaining
                if buf[end:end + 2] != b"\r\n":
                    raise _BadRequest(400, "chunk not followed by CRLF")
                if not self._too_large:
                    self._chunks.append(bytes(buf[self._pos:end]))
                self._pos = end + 2
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n", self._pos)
                if end < 0:
                    if len(buf) - self._pos > server.max_head_bytes:
                        raise _BadRequest(431, "trailers too large")
                    return
                empty = end == self._pos
                self._pos = end + 2
                if empty:
                    body = b"" if self._too_large else b"".join(self._chunks)
                    self._chunks = []
                    self._complete(body)
            else:
                return

    def _start(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
            raise _BadRequest(400, "bad request line")
        method, target, version = parts
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise _BadRequest(505 if version.startswith(b"HTTP/") else 400,
                              "only HTTP/1.0 and HTTP/1.1 are served")
        raw: list[tuple[bytes, bytes]] = []
        found: dict[bytes, bytes] = {}  # lower-case name: first value
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or b" " in name or b"\t" in name:
                raise _BadRequest(400, "bad header line")
            value = value.strip(b" \t")
            raw.append((name, value))
            key = name.lower()
            if key in found:
                if key == b"transfer-encoding" or (key == b"content-length"
                                                   and value != found[key]):
                    raise _BadRequest(400, f"conflicting {name.decode('latin-1')} headers")
                continue
            found[key] = value
        length: int | None = None
        cl = found.get(b"content-length")
        if cl is not None:
            if not cl.isdigit():
                raise _BadRequest(400, "bad Content-Length")
            length = int(cl)
        te = found.get(b"transfer-encoding")
        chunked = te is not None
        if chunked:
            if te.lower() != b"chunked":  # type: ignore[union-attr]
                raise _BadRequest(501, "only Transfer-Encoding: chunked is served")
            if length is not None:
                raise _BadRequest(400, "both Content-Length and Transfer-Encoding")
        conn = found.get(b"connection")
        if version == b"HTTP/1.0":
            keep_alive = conn is not None and b"keep-alive" in _tokens(conn)
        else:
            keep_alive = conn is None or b"close" not in _tokens(conn)
        self._head = (method.decode("ascii"), target.decode("utf-8", "surrogateescape"),
                      version.decode("ascii"), raw, Headers(found), keep_alive)
        self._too_large = False
        max_body = self.server.max_body_bytes
        expect = version == b"HTTP/1.1" and found.get(b"expect", b"").lower() == b"100-continue"
        if chunked:
            self._chunks, self._size = [], 0
            self._state = _CHUNK_SIZE
        elif length:
            self._remaining = length
            self._state = _LENGTH
            if length > max_body:
                if expect:  # the client has not sent it: answer now, then close
                    raise _BadRequest(413, f"request body of {length} bytes exceeds the limit "
                                           f"of {max_body} bytes")
                self._too_large = True
        else:
            self._complete(b"")
            return
        # not while an earlier pipelined answer is due: it would come out first
        if expect and self.transport is not None and not self._busy and not self._queue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _complete(self, body: bytes) -> None:
        assert self._head is not None
        method, target, version, raw, headers, keep_alive = self._head
        self._head = None
        self._state = _HEAD
        if self._too_large:
            self._too_large = False
            self._queue.append(_BadRequest(413, "request body exceeds the limit of "
                                                f"{self.server.max_body_bytes} bytes",
                                           close=not keep_alive))
            return
        self._queue.append(Request(method, target, version, raw, headers, body, keep_alive))

    # -- answering -----------------------------------------------------------------------------
    async def _serve(self) -> None:
        server = self.server
        try:
            while self._queue and not self.closed:
                item = self._queue.popleft()
                if isinstance(item, _BadRequest):
                    server.on_bad_request(item.status)
                    self._write(item.status, json.dumps({"error": str(item)}).encode(), _JSON,
                                keep_alive=not item.close, version="HTTP/1.1", head_only=False)
                    if item.close:
                        return
                    continue
                try:
                    response = await server.handler(item)
                except Exception:
                    logger.exception("handler failed for %s %s", item.method, item.path)
                    response = json_response({"error": "internal error in the router"}, 500)
                if self.closed:
                    return
                self._write(response.status, response.body, response.headers,
                            keep_alive=item.keep_alive, version=item.version,
                            head_only=item.method == "HEAD")
                if not item.keep_alive:
                    return
                if self._writing_paused:
                    self._drained = server._loop.create_future()
                    await self._drained
                    self._drained = None
                if self._reading_paused and len(self._queue) < _MAX_PIPELINED // 2:
                    self._resume_reading()
        finally:
            self._busy = False
            self.task = None
            self.last_active = time.monotonic()
            if self.closed and self.transport is not None and self.transport.is_closing():
                server._connections.discard(self)
            if self._eof and not self.closed and self.transport is not None:
                self.closed = True
                self.transport.close()

    def _write(self, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]], *,
               keep_alive: bool, version: str, head_only: bool) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        parts = [b"HTTP/1.1 ", str(status).encode("ascii"), b" ", _REASONS.get(status, b"-")]
        for name, value in headers:
            parts += [b"\r\n", name, b": ", value]
        if status >= 200 and status not in (204, 304):
            parts += [b"\r\nContent-Length: ", str(len(body)).encode("ascii")]
        else:
            body = b""
        parts += [b"\r\nDate: ", self.server._date.get()]
        if not keep_alive:
            parts.append(b"\r\nConnection: close")
        elif version == "HTTP/1.0":
            parts.append(b"\r\nConnection: keep-alive")
        parts.append(b"\r\n\r\n")
        if head_only:
            body = b""
        if len(body) > 65536:
            transport.write(b"".join(parts))
            transport.write(body)
        else:
            parts.append(body)
            transport.write(b"".join(parts))
        if not keep_alive:
            self.closed = True
            transport.close()  # after the buffered answer is sent

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def close_if_idle(self, now: float, keepalive_s: float) -> None:
        if not self._busy and not self._queue and now - self.last_active > keepalive_s:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class HttpServer:
    """Serves ``handler`` on one TCP socket.

    Args:
        handler: ``async (Request) -> Response``; an exception answers 500 (and is logged).
        max_body_bytes: larger bodies are answered 413.
        max_head_bytes: a larger request line plus headers is answered 431.
        keepalive_s: idle client connections are closed after this long.
        on_bad_request: called with the status of each request refused before the handler.
    """

    def __init__(self, handler: Handler, *, max_body_bytes: int,
                 max_head_bytes: int = 64 * 1024, keepalive_s: float = 75.0,
                 on_bad_request: Callable[[int], None] | None = None) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.max_head_bytes = max_head_bytes
        self.keepalive_s = keepalive_s
        self.on_bad_request = on_bad_request or (lambda status: None)
        self._connections: set[_Connection] = set()
        self._date = _Date()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # in start()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(lambda: _Connection(self), host, port,
                                                      reuse_address=True)
        self._sweeper = self._loop.call_later(min(5.0, self.keepalive_s), self._sweep)
        return int(self._server.sockets[0].getsockname()[1])

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self._connections):
            conn.close_if_idle(now, self.keepalive_s)
        self._sweeper = self._loop.call_later(min(5.0, self.keepalive_s), self._sweep)

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop listening, give requests in flight ``grace_s`` to finish, close the rest."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            self._server = None
        deadline = time.monotonic() + grace_s
        while any(c._busy for c in self._connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        tasks = [c.task for c in self._connections if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self._connections):
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.sleep(0)
