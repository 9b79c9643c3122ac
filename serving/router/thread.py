"""Run a ``Router`` on its own event loop in a background thread.

Why: tests, ``warden up`` and benchmarks are synchronous programs that need a router beside them
in the same process. The thread owns the loop; ``call`` runs control methods on it, so state is
never touched from two threads at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Self, TypeVar

from prometheus_client import CollectorRegistry

from serving.router.config import RouterConfig
from serving.router.replicas import Clock
from serving.router.server import Router

__all__ = ["RouterThread", "new_event_loop", "run_router_in_thread"]

T = TypeVar("T")


def new_event_loop(use_uvloop: bool | None = None) -> asyncio.AbstractEventLoop:
    """A fresh loop: uvloop's if ``True`` (ImportError if missing), or if ``None`` and installed.

    uvloop is the default where it is installed (it is a dependency on POSIX): it took about
    0.06 ms off the router's added P50 in front of real Triton here
    (``benchmarks/router_overhead.py --triton 1``). Without it the plain asyncio loop serves
    the same way; ``False`` asks for that loop.
    """
    if use_uvloop is not False:
        try:
            import uvloop
        except ImportError:
            if use_uvloop:
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class RouterThread:
    """A started router in a daemon thread. ``url``, ``call(fn)``, ``stop()``; a context manager."""

    def __init__(self, config: RouterConfig, registry: CollectorRegistry, *,
                 host: str = "127.0.0.1", port: int = 0, tracer_provider: Any | None = None,
                 clock: Clock = time.monotonic, start_timeout_s: float = 10.0,
                 use_uvloop: bool | None = None) -> None:
        self.loop = new_event_loop(use_uvloop)
        self.router = Router(config, registry, tracer_provider=tracer_provider, clock=clock)
        self._started: Future[int] = Future()
        self._stopped = threading.Event()
        self._host, self._port = host, port
        self._thread = threading.Thread(target=self._main, name="warden-router", daemon=True)
        self._thread.start()
        self.port: int = self._started.result(timeout=start_timeout_s)
        self.url = f"http://{host}:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            port = self.loop.run_until_complete(self.router.start(self._host, self._port))
        except BaseException as exc:  # bind failure etc.: report to the constructor
            self._started.set_exception(exc)
            self.loop.run_until_complete(self.router.stop())
            self.loop.close()
            return
        self._started.set_result(port)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.router.stop())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            self._stopped.set()

    def call(self, fn: Callable[[Router], T], timeout_s: float = 10.0) -> T:
        """Run ``fn(router)`` on the router's loop; awaits it if it returns a coroutine."""

        async def runner() -> T:
            result = fn(self.router)
            if asyncio.iscoroutine(result):
                result = await result
            return result  # type: ignore[return-value]

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server and the loop, and join the thread. Safe to call twice."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_router_in_thread(config: RouterConfig, registry: CollectorRegistry, *,
                         host: str = "127.0.0.1", port: int = 0,
                         tracer_provider: Any | None = None,
                         clock: Clock = time.monotonic,
                         use_uvloop: bool | None = None) -> RouterThread:
    """Start a router in a background thread; returns the handle (``.url``, ``.stop()``)."""
    return RouterThread(config, registry, host=host, port=port,
                        tracer_provider=tracer_provider, clock=clock, use_uvloop=use_uvloop)
