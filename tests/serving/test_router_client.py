"""The router's upstream client against scripted raw HTTP servers: framing, reuse, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from serving.router.client import (
    UpstreamClient,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

Script = Callable[[bytes], list[bytes] | None]
#: Put last in an answer: close the connection after writing it.
CLOSE = b"<close>"


class _Scripted(asyncio.Protocol):
    """Answers each request head (+ Content-Length body) with the script's chunks (each its own
    write); ``None`` or a trailing ``CLOSE``: close the connection."""

    def __init__(self, script: Script, seen: list[bytes], conns: list[int]) -> None:
        self.script, self.seen, self.buf = script, seen, b""
        conns.append(1)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                return
            self.buf = rest[length:]
            self.seen.append(head + b"\r\n\r\n" + rest[:length])
            answer = self.script(head)
            if answer is None:
                self.t.close()
                return
            for chunk in answer:
                if chunk is CLOSE:
                    self.t.close()
                    return
                self.t.write(chunk)  # type: ignore[attr-defined]


async def _serve(script: Script) -> tuple[asyncio.Server, str, list[bytes], list[int]]:
    seen: list[bytes] = []
    conns: list[int] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Scripted(script, seen, conns), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", seen, conns


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def test_content_length_keepalive_reuses_one_connection() -> None:
    async def main() -> None:
        server, url, seen, conns = await _serve(lambda head: [OK])
        client = UpstreamClient(connect_timeout_s=1, timeout_s=2)
        for _ in range(3):
            resp = await client.request(url, "POST", "/v2/models/m/infer",
                                        [(b"X-Kept", b"yes")], b'{"a": 1}')
            assert (resp.status, resp.body) == (200, b"{}")
            assert resp.header("content-type") == "application/json"
        await client.close()
        server.close()
        assert len(conns) == 1
        head = seen[0].split(b"\r\n")
        assert head[0] == b"POST /v2/models/m/infer HTTP/1.1"
        assert b"Host: " + url.removeprefix("http://").encode() in head
        assert b"Content-Length: 8" in head and b"X-Kept: yes" in head
        assert seen[0].endswith(b'\r\n\r\n{"a": 1}')

    _run(main())


def test_chunked_split_across_writes_and_interim_100() -> None:
    parts = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Enc", b"oding: chunked\r\n\r\n4\r",
             b"\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-Trailer: t\r\n", b"\r\n"]

    async def main() -> None:
        server, url, _, conns = await _serve(lambda head: parts)
        client = UpstreamClient(connect_timeout_s=1, timeout_s=2)
        for _ in range(2):
            resp = await client.request(url, "GET", "/x")
            assert (resp.status, resp.body) == (200, b"abcdefg")
        await client.close()
        server.close()
        assert len(conns) == 1

    _run(main())


def test_body_until_close_and_connection_close_are_not_reused() -> None:
    answers = [[b"HTTP/1.1 200 OK\r\n\r\nall ", b"of it", CLOSE],
               [b"HTTP/1.1 503 x\r\nConnection: close\r\nContent-Length: 1\r\n\r\n!"]]

    def script(head: bytes) -> list[bytes]:
        return answers[0] if b"/a" in head else answers[1]

    async def main() -> None:
        server, url, _, conns = await _serve(script)
        client = UpstreamClient(connect_timeout_s=1, timeout_s=2)
        resp = await client.request(url, "GET", "/a")
        assert (resp.status, resp.body) == (200, b"all of it")
        resp = await client.request(url, "GET", "/b")
        assert (resp.status, resp.body) == (503, b"!")
        await client.close()
        server.close()
        assert len(conns) == 2

    _run(main())


def test_head_and_204_have_no_body() -> None:
    answers = {b"HEAD": [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"],
               b"GET": [b"HTTP/1.1 204 No Content\r\n\r\n"]}

    async def main() -> None:
        server, url, _, conns = await _serve(lambda head: answers[head.split(b" ")[0]])
        client = UpstreamClient(connect_timeout_s=1, timeout_s=2)
        assert (await client.request(url, "HEAD", "/")).body == b""
        assert (await client.request(url, "GET", "/")).status == 204
        assert (await client.request(url, "HEAD", "/")).status == 200
        await client.close()
        server.close()
        assert len(conns) == 1

    _run(main())


def test_refused_and_closed_before_status_are_retryable() -> None:
    async def main() -> None:
        server, url, _, _ = await _serve(lambda head: None)  # closes without answering
        client = UpstreamClient(connect_timeout_s=1, timeout_s=2)
        with pytest.raises(UpstreamConnectError) as closed:
            await client.request(url, "GET", "/")
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamConnectError) as refused:
            await client.request(url, "GET", "/")
        await client.close()
        assert closed.value.retryable and refused.value.retryable
        assert closed.value.kind == refused.value.kind == "connect"

    _run(main())


def test_connection_the_upstream_closed_while_idle_is_not_reused() -> None:
    async def main() -> None:
        server, url, _, conns = await _serve(lambda head: [OK, CLOSE])
        client = UpstreamClient(connect_timeout_s=1, timeout_s=2)
        for _ in range(2):
            assert (await client.request(url, "GET", "/")).status == 200
            await asyncio.sleep(0.05)  # the close reaches the client while the connection idles
        await client.close()
        server.close()
        assert len(conns) == 2

    _run(main())


@pytest.mark.parametrize("answer, match", [
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", CLOSE], "middle"),
    ([b"HTTX/1.1 200 OK\r\n\r\n"], "status line"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"], "Content-Length"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"], "conflicting"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], "chunk size"),
    ([b"HTTP/1.1 200 OK\r\n folded\r\n\r\n"], "header line"),
])
def test_malformed_answers_are_protocol_errors(answer: list[bytes], match: str) -> None:
    async def main() -> None:
        server, url, _, _ = await _serve(lambda head: answer)
        client = UpstreamClient(connect_timeout_s=1, timeout_s=1)
        with pytest.raises(UpstreamProtocolError, match=match) as err:
            await client.request(url, "GET", "/")
        assert not err.value.retryable and err.value.kind == "protocol"
        await client.close()
        server.close()

    _run(main())


def test_timeout_drops_the_connection() -> None:
    async def main() -> None:
        server, url, _, conns = await _serve(
            lambda head: [] if b"/slow" in head else [OK])
        client = UpstreamClient(connect_timeout_s=1, timeout_s=0.2)
        with pytest.raises(UpstreamTimeout) as err:
            await client.request(url, "GET", "/slow")
        assert err.value.kind == "timeout" and not err.value.retryable
        assert (await client.request(url, "GET", "/ok")).status == 200
        await client.close()
        server.close()
        assert len(conns) == 2  # the timed-out connection was not reused

    _run(main())
