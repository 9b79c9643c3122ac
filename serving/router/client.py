"""A lean HTTP/1.1 client for the router's upstream requests: kept-alive connections, bytes out.

Why not ``aiohttp.ClientSession``: the router sends one small request and reads one response per
infer, and everything else in a session (URL objects, cookie jars, trace hooks, per-request
timer contexts, a response object with a stream reader, a writer task) is work on the hot path.
Why it matters more against real Triton than against a fast echo server: Triton answers after
~10 ms, the router's process sleeps meanwhile, and on this 2-core VM a process woken from a
10 ms sleep runs its next ~100 µs of Python about twice as slowly as one kept busy (measured:
90 µs of work took 180 µs; caches gone, and the thread often lands on the other CPU). So every
instruction the router spends per request costs about double in front of a real model, which
is why its CPU per request went from ~500 µs (echo) to ~1000 µs (Triton). Swapping the session
for this client took the added P50 against an echo upstream answering after 10 ms from
1.23-1.40 ms to 0.87-1.00 ms. Per request it does: one pooled connection, one
``transport.write``, one incremental parse of the answer, one timer for the whole-request
timeout.

What it speaks: HTTP/1.1 requests with ``Content-Length`` bodies; responses framed by
``Content-Length``, ``Transfer-Encoding: chunked`` (decoded) or the connection closing; ``1xx``
interim answers skipped; no body for ``HEAD``, ``204`` and ``304``. Responses are read whole
(an infer answer is needed whole anyway) and bodies pass through untouched (no decompression).
``http://`` and ``https://`` base URLs.

Exceptions::

    UpstreamError (OSError)            kind: "connect" | "timeout" | "protocol"
    ├── UpstreamConnectError           no response: refused, reset or closed before the status
    │                                  line, connect timeout; ``retryable`` is True
    ├── UpstreamTimeout                the whole-request timeout passed after connecting
    └── UpstreamProtocolError          a malformed answer, or the connection closed mid-body
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = [
    "UpstreamClient",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamTimeout",
]

#: Largest status line plus headers accepted from an upstream.
MAX_HEAD_BYTES = 64 * 1024
#: Idle kept-alive connections held per upstream; more are closed when released.
MAX_IDLE_PER_UPSTREAM = 64


class UpstreamError(OSError):
    """A failed attempt. ``retryable``: no response was received, another replica may serve it."""

    kind = "protocol"
    retryable = False


class UpstreamConnectError(UpstreamError):
    """Refused, reset or closed before the status line, or the connect timeout passed."""

    kind = "connect"
    retryable = True


class UpstreamTimeout(UpstreamError):
    """The whole-request timeout passed once connected; the replica may be doing the work."""

    kind = "timeout"


class UpstreamProtocolError(UpstreamError):
    """A malformed response, or the connection closed in the middle of the body."""

    kind = "protocol"


class UpstreamResponse:
    """One whole response: ``status``, ``headers`` as raw ``(name, value)`` bytes, ``body``."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), decoded, or None."""
        key = name.lower().encode("latin-1")
        for k, v in self.headers:
            if k.lower() == key:
                return v.decode("latin-1")
        return None


# parser states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE, _DONE = range(7)


class _Connection(asyncio.Protocol):
    """One kept-alive upstream connection; at most one request in flight on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reusable = False
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._buf = bytearray()
        self._pos = 0
        self._state = _DONE
        self._head_only = False
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._got_head = False

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._state == _DONE:  # nothing asked for: a server talking out of turn
            self._abort()
            return
        self._buf += data
        try:
            self._parse()
        except UpstreamProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self.closed = True  # not reusable from now on, even before connection_lost
        return False  # close our side too; connection_lost settles the waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._state == _UNTIL_CLOSE:
            self._finish(bytes(self._buf[self._pos:]))
        elif not self._got_head:
            why = f": {exc}" if exc else ""
            waiter.set_exception(UpstreamConnectError(
                f"connection closed before the response{why}"))
        else:
            waiter.set_exception(UpstreamProtocolError("connection closed in the middle of the "
                                                       "response body"))
        self._waiter = None

    # -- the client side ---------------------------------------------------------------------
    def send(self, data: bytes | Iterable[bytes], head_only: bool) -> asyncio.Future[UpstreamResponse]:
        """Write one request; the future gets its whole response (or an ``UpstreamError``)."""
        assert self.transport is not None
        waiter = self.loop.create_future()
        self._waiter = waiter
        self._buf = bytearray()
        self._pos = 0
        self._state = _HEAD
        self._head_only = head_only
        self._got_head = False
        self.reusable = False
        if isinstance(data, bytes):
            self.transport.write(data)
        else:
            self.transport.writelines(data)
        return waiter

    def expire(self) -> None:
        """The whole-request timeout passed: fail the waiter and drop the connection."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(UpstreamTimeout("upstream timeout"))
        self._waiter = None
        self._abort()

    def _abort(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- parsing -------------------------------------------------------------------------------
    def _fail(self, exc: UpstreamError) -> None:
        waiter = self._waiter
        self._waiter = None
        self._state = _DONE
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._abort()

    def _finish(self, body: bytes) -> None:
        self._state = _DONE
        waiter = self._waiter
        self._waiter = None
        if self._pos < len(self._buf) and self.reusable:  # bytes past the answer: do not reuse
            self.reusable = False
        if waiter is not None and not waiter.done():
            waiter.set_result(UpstreamResponse(self._status, self._headers, body))

    def _parse(self) -> None:
        buf = self._buf
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n", self._pos)
                if end < 0:
                    if len(buf) - self._pos > MAX_HEAD_BYTES:
                        raise UpstreamProtocolError("response head too large")
                    return
                if end - self._pos > MAX_HEAD_BYTES:
                    raise UpstreamProtocolError("response head too large")
                head = bytes(buf[self._pos:end])
                self._pos = end + 4
                self._start_body(head)
            elif state == _LENGTH:
                if len(buf) - self._pos < self._remaining:
                    return
                start = self._pos
                self._pos += self._remaining
                self._finish(bytes(buf[start:self._pos]))
                return
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n", self._pos)
                if end < 0:
                    if len(buf) - self._pos > 4096:
                        raise UpstreamProtocolError("chunk size line too long")
                    return
                line = bytes(buf[self._pos:end]).split(b";", 1)[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise UpstreamProtocolError(f"bad chunk size {line[:32]!r}") from None
                if size < 0:
                    raise UpstreamProtocolError(f"bad chunk size {line[:32]!r}")
                self._pos = end + 2
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._remaining = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                if len(buf) - self._pos < self._remaining + 2:
                    return
                end = self._pos + self._remaining
                if buf[end:end + 2] != b"\r\n":
                    raise UpstreamProtocolError("chunk not followed by CRLF")
                self._chunks.append(bytes(buf[self._pos:end]))
                self._pos = end + 2
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n", self._pos)
                if end < 0:
                    if len(buf) - self._pos > MAX_HEAD_BYTES:
                        raise UpstreamProtocolError("trailers too large")
                    return
                empty = end == self._pos
                self._pos = end + 2
                if empty:
                    self._finish(b"".join(self._chunks))
                    return
            else:  # _UNTIL_CLOSE: connection_lost finishes; _DONE: nothing to do
                return

    def _start_body(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 \
                or not parts[1].isdigit():
            raise UpstreamProtocolError(f"bad status line {lines[0][:64]!r}")
        status = int(parts[1])
        http10 = parts[0] == b"HTTP/1.0"
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = framed_otherwise = False
        conn_tokens = b""
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or line[:1] in b" \t":
                raise UpstreamProtocolError(f"bad header line {line[:64]!r}")
            value = value.strip(b" \t")
            headers.append((name, value))
            lname = name.lower()
            if lname == b"content-length":
                if not value.isdigit():
                    raise UpstreamProtocolError(f"bad Content-Length {value[:32]!r}")
                n = int(value)
                if length is not None and n != length:
                    raise UpstreamProtocolError("conflicting Content-Length headers")
                length = n
            elif lname == b"transfer-encoding":
                if value.lower().rsplit(b",", 1)[-1].strip() == b"chunked":
                    chunked = True
                else:
                    framed_otherwise = True
            elif lname == b"connection":
                conn_tokens += b"," + value.lower()
        if 100 <= status < 200 and status != 101:  # interim answer: the real one follows
            self._state = _HEAD
            return
        self._got_head = True
        self._status, self._headers = status, headers
        tokens = {t.strip() for t in conn_tokens.split(b",")}
        self.reusable = (b"keep-alive" in tokens) if http10 else (b"close" not in tokens)
        if self._head_only or status in (204, 304):
            self._finish(b"")
        elif chunked and not framed_otherwise:
            self._chunks = []
            self._state = _CHUNK_SIZE
        elif framed_otherwise or (length is None):
            self.reusable = False
            self._state = _UNTIL_CLOSE
        else:
            self._remaining = length
            self._state = _LENGTH


class _Upstream:
    """Where one base URL points, and its idle connections (most recently used last)."""

    __slots__ = ("host", "host_header", "idle", "port", "ssl")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL must be http(s)://host[:port], got {base_url!r}")
        self.host = parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        self.port = parts.port or default_port
        self.ssl: ssl.SSLContext | None = (ssl.create_default_context()
                                           if parts.scheme == "https" else None)
        self.host_header = parts.netloc.encode("idna" if not parts.netloc.isascii() else "ascii")
        self.idle: list[_Connection] = []


class UpstreamClient:
    """Sends requests to upstream base URLs over kept-alive connections; event-loop bound.

    Args:
        connect_timeout_s: for opening a new connection (a retryable failure).
        timeout_s: the whole request, connect included, unless ``request`` says otherwise.
        keepalive_s: idle connections older than this are closed instead of reused.
    """

    def __init__(self, *, connect_timeout_s: float, timeout_s: float,
                 keepalive_s: float = 30.0) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self._upstreams: dict[str, _Upstream] = {}
        self._closed = False

    def _upstream(self, base_url: str) -> _Upstream:
        up = self._upstreams.get(base_url)
        if up is None:
            if len(self._upstreams) > 1024:  # replicas come and go: forget the idle ones
                for u in self._upstreams.values():
                    for c in u.idle:
                        c.close()
                self._upstreams.clear()
            up = self._upstreams[base_url] = _Upstream(base_url)
        return up

    async def request(self, base_url: str, method: str, target: str,
                      headers: Iterable[tuple[bytes, bytes]] = (), body: bytes | None = None,
                      *, timeout_s: float | None = None) -> UpstreamResponse:
        """Send ``method target`` to ``base_url`` (``http://host:port``) and read the answer.

        ``headers`` are sent as given, after ``Host`` (and ``Content-Length`` when there is a
        body); they must not contain ``Host``, ``Content-Length`` or ``Transfer-Encoding``.
        Raises an ``UpstreamError``.
        """
        if self._closed:
            raise UpstreamConnectError("client closed")
        loop = asyncio.get_running_loop()
        timeout = self.timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + timeout
        up = self._upstream(base_url)
        conn = self._take_idle(up)
        if conn is None:
            conn = await self._connect(loop, up, min(self.connect_timeout_s, timeout))
        head = [method.encode("ascii"), b" ", target.encode("utf-8", "surrogateescape"),
                b" HTTP/1.1\r\nHost: ", up.host_header]
        if body is not None:
            head += [b"\r\nContent-Length: ", str(len(body)).encode("ascii")]
        for name, value in headers:
            head += [b"\r\n", name, b": ", value]
        head.append(b"\r\n\r\n")
        if body and len(body) > 65536:
            data: bytes | list[bytes] = [b"".join(head), body]
        else:
            if body:
                head.append(body)
            data = b"".join(head)
        waiter = conn.send(data, method == "HEAD")
        timer = loop.call_at(deadline, conn.expire)
        try:
            resp = await waiter
        except BaseException:  # failed, timed out or cancelled mid-request: never reuse it
            conn._abort()
            raise
        finally:
            timer.cancel()
        if conn.reusable and not conn.closed and not self._closed:
            if len(up.idle) < MAX_IDLE_PER_UPSTREAM:
                conn.idle_since = time.monotonic()
                up.idle.append(conn)
            else:
                conn.close()
        else:
            conn.close()
        return resp

    def _take_idle(self, up: _Upstream) -> _Connection | None:
        idle = up.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                if time.monotonic() - conn.idle_since <= self.keepalive_s:
                    return conn
                conn.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, up: _Upstream,
                       timeout: float) -> _Connection:
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), up.host, up.port, ssl=up.ssl,
                    server_hostname=up.host if up.ssl is not None else None)
        except TimeoutError:
            raise UpstreamConnectError(f"connect timeout after {timeout}s to "
                                       f"{up.host}:{up.port}") from None
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror), TLS
            raise UpstreamConnectError(f"cannot connect to {up.host}:{up.port}: {exc}") from exc
        return conn

    async def close(self) -> None:
        """Close every idle connection; in-flight requests finish on theirs."""
        self._closed = True
        for up in self._upstreams.values():
            for conn in up.idle:
                conn.close()
            up.idle.clear()
        await asyncio.sleep(0)  # let transports run their close callbacks
