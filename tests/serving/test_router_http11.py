"""The router's HTTP/1.1 server over raw sockets: framing, keep-alive, pipelining, refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from serving.router.http11 import HttpServer, Request, Response, json_response


async def _echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path == "/slow":
        await asyncio.sleep(0.05)
    return json_response({"method": request.method, "path": request.path,
                          "query": request.query, "body": request.body.decode(),
                          "te": request.headers.get("transfer-encoding"),
                          "x": request.headers.get("x-thing")})


def _run(body: Callable[[str, int, list[int]], Awaitable[None]], **kw: float) -> None:
    async def main() -> None:
        refused: list[int] = []
        server = HttpServer(_echo, max_body_bytes=int(kw.get("max_body", 100)),
                            max_head_bytes=int(kw.get("max_head", 1024)),
                            keepalive_s=kw.get("keepalive", 75.0), on_bad_request=refused.append)
        port = await server.start("127.0.0.1", 0)
        try:
            await asyncio.wait_for(body("127.0.0.1", port, refused), 5)
        finally:
            await server.stop(0.5)

    asyncio.run(main())


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 2) == b""


def test_keepalive_pipelining_and_chunked_bodies() -> None:
    async def body(host: str, port: int, refused: list[int]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /slow?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"X-Thing: one\r\n\r\nhello"
                     b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3;ext\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
                     b"\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = [await _read_answer(reader) for _ in range(3)]
        assert [json.loads(b)["path"] for _, _, b in answers] == ["/slow", "/b", "/c"]
        first, second, third = (json.loads(b) for _, _, b in answers)
        assert first == {"method": "POST", "path": "/slow", "query": "a=1", "body": "hello",
                         "te": None, "x": "one"}
        assert second["body"] == "abcde" and second["te"] == "chunked"
        assert third["method"] == "GET" and third["body"] == ""
        status, headers, _ = answers[0]
        assert status == 200 and "date" in headers
        assert headers["content-type"] == "application/json; charset=utf-8"
        writer.write(b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _ = await _read_answer(reader)
        assert status == 200 and headers["connection"] == "close"
        assert await _closed(reader)
        assert refused == []

    _run(body)


def test_http10_closes_unless_keepalive_and_head_has_no_body() -> None:
    async def body(host: str, port: int, refused: list[int]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"HEAD /h HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Connection: keep-alive" in head and b"Content-Length: " in head
        writer.write(b"GET /g HTTP/1.0\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")  # the HEAD answer had no body
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert json.loads(await reader.read())["path"] == "/g"  # then the server closed

    _run(body)


def test_expect_100_continue() -> None:
    async def body(host: str, port: int, refused: list[int]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"abc")
        status, _, data = await _read_answer(reader)
        assert status == 200 and json.loads(data)["body"] == "abc"
        writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, data = await _read_answer(reader)
        assert status == 413 and "limit" in json.loads(data)["error"]
        assert headers["connection"] == "close" and await _closed(reader)
        assert refused == [413]

    _run(body)


def test_oversized_bodies_413_and_the_connection_stays_usable() -> None:
    async def body(host: str, port: int, refused: list[int]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n")
        for _ in range(3):
            writer.write(b"x" * 100)
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            writer.write(b"40\r\n" + b"y" * 64 + b"\r\n")
        writer.write(b"0\r\n\r\nPOST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        assert [(await _read_answer(reader))[0] for _ in range(3)] == [413, 413, 200]
        assert refused == [413, 413]

    _run(body)


@pytest.mark.parametrize("request_bytes, status", [
    (b"NOT A REQUEST\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", 431),
])
def test_malformed_requests_are_refused_and_closed(request_bytes: bytes, status: int) -> None:
    async def body(host: str, port: int, refused: list[int]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n" + request_bytes)
        assert (await _read_answer(reader))[0] == 200  # what came before is still answered
        got, headers, data = await _read_answer(reader)
        assert (got, headers["connection"]) == (status, "close") and json.loads(data)["error"]
        assert await _closed(reader)
        assert refused == [status]

    _run(body)


def test_handler_exception_answers_500_and_serving_goes_on() -> None:
    async def body(host: str, port: int, refused: list[int]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _read_answer(reader))[0] == 500
        assert (await _read_answer(reader))[0] == 200

    _run(body)


def test_idle_connections_are_closed_after_keepalive() -> None:
    async def body(host: str, port: int, refused: list[int]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _read_answer(reader))[0] == 200
        assert await _closed(reader)

    _run(body, keepalive=0.2)
