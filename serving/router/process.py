"""Run the router in a child process, so it shares no GIL with the program that starts it.

Why: in one process with a load generator, an engine loop or collectors, every socket call the
router makes waits for the GIL, and its added latency grows from well under a millisecond to
several. ``RouterThread`` is right for tests and small labs; this is for measuring and for labs
under load.

The child is ``python -m serving.router.cli`` (the ``warden router`` command) given a config
file: a plain subprocess rather than ``multiprocessing``, whose ``spawn`` start method re-imports
the caller's ``__main__`` and so breaks any script that builds a lab without an
``if __name__ == "__main__"`` guard. The child prints its URL once it serves; it is controlled
through the HTTP admin API like any remote router, and SIGTERM stops it. Tracing in the child
needs an OTLP endpoint (a ``TracerProvider`` cannot cross a process boundary).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Self

from serving.router.config import RouterConfig

__all__ = ["RouterProcess"]

_READY_PREFIX = "warden router listening on "


class RouterProcess:
    """A router in a child process. ``url``, ``pid``, ``stop()``; a context manager."""

    def __init__(self, config: RouterConfig, *, host: str = "127.0.0.1", port: int = 0,
                 otlp_endpoint: str | None = None, start_timeout_s: float = 30.0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="warden-router-")
        cfg = Path(self._dir.name) / "router.json"  # JSON is YAML: the CLI reads either
        cfg.write_text(json.dumps(config.model_dump(mode="json")))
        cmd = [sys.executable, "-m", "serving.router.cli", "--config", str(cfg),
               "--host", host, "--port", str(port)]
        if otlp_endpoint:
            cmd += ["--otlp-endpoint", otlp_endpoint]
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        # The SDK's batch exporter waits 5 s by default; chains need the router span sooner.
        env.setdefault("OTEL_BSP_SCHEDULE_DELAY", "200")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env, start_new_session=True)
        self.url = self._wait_ready(start_timeout_s)
        self.port = int(self.url.rsplit(":", 1)[1])
        # Keep draining the child's output so a chatty router never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_ready(self, timeout_s: float) -> str:
        lines: list[str] = []
        result: dict[str, str] = {}

        def read() -> None:
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                lines.append(line)
                if line.startswith(_READY_PREFIX):
                    result["url"] = line[len(_READY_PREFIX):].strip()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout_s)
        if "url" not in result:
            self.stop()
            raise RuntimeError("router process failed to start:\n" + "".join(lines)[-2000:])
        return result["url"]

    def _drain(self) -> None:
        if self._proc.stdout is not None:
            for _ in self._proc.stdout:
                pass

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not go. Safe to call twice."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
