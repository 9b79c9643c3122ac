"""Run the router in a child process, so it shares no GIL with the program that starts it.

Why: in one process with a load generator, an engine loop or collectors, every socket call the
router makes waits for the GIL, and its added latency grows from well under a millisecond to
several. ``RouterThread`` is right for tests and small labs; this is for measuring and for labs
under load. The child is started with ``spawn`` (no inherited locks or event loops), talks back
only its port, and is controlled through the HTTP admin API like any remote router. Tracing in the
child needs an OTLP endpoint (a ``TracerProvider`` cannot cross a process boundary).
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any, Self

from serving.router.config import RouterConfig

__all__ = ["RouterProcess"]


def _child_main(conn: Any, config: dict[str, Any], host: str, port: int,
                otlp_endpoint: str | None, use_uvloop: bool | None) -> None:
    from prometheus_client import CollectorRegistry

    from serving.router.thread import RouterThread
    from serving.router.tracing import make_tracer_provider

    provider = make_tracer_provider(otlp_endpoint=otlp_endpoint) if otlp_endpoint else None
    try:
        handle = RouterThread(RouterConfig.model_validate(config), CollectorRegistry(),
                              host=host, port=port, tracer_provider=provider,
                              use_uvloop=use_uvloop)
    except BaseException as exc:  # report start failures (port in use...) to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", handle.port))
    try:
        conn.recv()  # any message, or EOF when the parent dies, means stop
    except EOFError:
        pass
    finally:
        handle.stop()
        if provider is not None:
            provider.shutdown()


class RouterProcess:
    """A router in a child process. ``url``, ``pid``, ``stop()``; a context manager."""

    def __init__(self, config: RouterConfig, *, host: str = "127.0.0.1", port: int = 0,
                 otlp_endpoint: str | None = None, use_uvloop: bool | None = False,
                 start_timeout_s: float = 30.0) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child_main, name="warden-router", daemon=True,
            args=(child, config.model_dump(mode="json"), host, port, otlp_endpoint, use_uvloop))
        self._proc.start()
        child.close()
        if not self._conn.poll(start_timeout_s):
            self.stop()
            raise TimeoutError(f"router process did not start within {start_timeout_s} s")
        status, value = self._conn.recv()
        if status != "ok":
            self.stop()
            raise RuntimeError(f"router process failed to start: {value}")
        self.port: int = value
        self.url = f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the child to stop, then terminate it if it does not. Safe to call twice."""
        if self._proc.is_alive():
            try:
                self._conn.send("stop")
            except OSError:
                pass
            self._proc.join(timeout_s)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
