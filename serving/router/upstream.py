"""A tiny KServe v2 HTTP server, for router tests and the overhead benchmark.

It is a real HTTP server (aiohttp on loopback), not a Triton: it speaks just enough of the
protocol to be routed to (health, model ready/metadata, infer), answers with its own name in the
output, counts requests per model name, and can be told to be slow, to fail with 500, to report
not-ready, or to stop listening (connection refused) and come back on the same port.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from concurrent.futures import Future
from typing import Any

from aiohttp import web

__all__ = ["EchoUpstream"]


class EchoUpstream:
    """One replica-like server in its own thread and event loop.

    Attributes you may change from any thread: ``delay_s`` (added to every infer), ``fail``
    (infer answers 500), ``ready`` (health/ready answers 503 when False).
    """

    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int = 0,
                 delay_s: float = 0.0) -> None:
        self.name = name
        self.host = host
        self.delay_s = delay_s
        self.fail = False
        self.ready = True
        self.counts: collections.Counter[str] = collections.Counter()
        self.seen_headers: list[dict[str, str]] = []
        self.seen_bodies: list[bytes] = []
        self.record = True
        self._gate: asyncio.Event | None = None
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"upstream-{name}",
                                        daemon=True)
        self._thread.start()
        self.port = self._call(self._start(port))
        self.url = f"http://{host}:{self.port}"

    # -- control, from any thread ------------------------------------------------------------
    def _call(self, coro: Any, timeout: float = 10.0) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop_listening(self) -> None:
        """Close the socket and every connection: clients now get 'connection refused'."""
        self._call(self._stop())

    def start_listening(self) -> None:
        """Listen again on the same port."""
        self._call(self._start(self.port))

    def close(self) -> None:
        """Stop for good and join the thread."""
        if self._thread.is_alive():
            self._call(self._stop())
            self._call(self._cancel_rest())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def hold(self) -> None:
        """Make infers wait (after being counted) until ``release``: requests stay in flight."""

        async def make() -> None:
            self._gate = asyncio.Event()

        self._call(make())

    def release(self) -> None:
        """Let held infers answer."""
        gate = self._gate
        self._gate = None
        if gate is not None:
            self.loop.call_soon_threadsafe(gate.set)

    def total(self) -> int:
        return sum(self.counts.values())

    # -- server ------------------------------------------------------------------------------
    async def _start(self, port: int) -> int:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_get("/v2/health/ready", self._health)
        app.router.add_get("/v2/health/live", self._live)
        app.router.add_get("/v2/models/{model}/ready", self._live)
        app.router.add_get("/v2/models/{model}", self._metadata)
        app.router.add_post("/v2/models/{model}/infer", self._infer)
        app.router.add_post("/v2/models/{model}/versions/{version}/infer", self._infer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port, reuse_address=True)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _cancel_rest(self) -> None:
        """Cancel handlers still sleeping (a slow reply nobody waits for any more)."""
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503)

    async def _live(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _metadata(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        return web.json_response({"name": model, "versions": ["1"], "platform": "echo",
                                  "inputs": [], "outputs": [{"name": "replica",
                                                             "datatype": "BYTES", "shape": [1]}]})

    async def _infer(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        body = await request.read()
        if self.record:
            self.seen_headers.append(dict(request.headers))
            self.seen_bodies.append(body)
        header_len = request.headers.get("Inference-Header-Content-Length")
        try:
            head = body[: int(header_len)] if header_len is not None else body
            json.loads(head)
        except ValueError as exc:
            return web.json_response({"error": f"failed to parse the request JSON: {exc}"},
                                     status=400)
        self.counts[model] += 1
        if self._gate is not None:
            await self._gate.wait()
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            return web.json_response({"error": "injected failure"}, status=500)
        return web.json_response({
            "model_name": model, "model_version": request.match_info.get("version", "1"),
            "outputs": [{"name": "replica", "datatype": "BYTES", "shape": [1],
                         "data": [self.name]}],
        })
