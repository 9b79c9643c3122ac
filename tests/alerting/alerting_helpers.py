"""Helpers for alerting tests (fixtures in conftest.py): a recording HTTP receiver, and real Alertmanager / Prometheus.

The recording receiver is a real HTTP server on a loopback port whose behaviour the test sets
(answer 2xx, 500, sleep past the client's timeout, or be down); it records every request.
Alertmanager and Prometheus are Debian's binaries started on free loopback ports with generated
configs in a tmp dir, a bounded readiness wait on ``/-/ready``, and always terminated.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PROMETHEUS = "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class RecordingServer:
    """A real HTTP receiver with a switchable mode: ``ok``, ``error`` (500), ``slow``."""

    port: int = 0
    mode: str = "ok"
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.arrived = threading.Condition(self._lock)

    def start(self) -> RecordingServer:
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    outer.attempts += 1
                    mode, delay = outer.mode, outer.delay_s
                if mode == "slow" or delay:
                    time.sleep(delay)
                code = 500 if mode == "error" else 200
                if code == 200:
                    with outer.arrived:
                        outer.received.append(Received(self.path, dict(self.headers.items()),
                                                       body, time.time()))
                        outer.arrived.notify_all()
                out = b"{}"
                self.close_connection = True  # no keep-alive: "down" must really be down
                try:
                    self.send_response(code)
                    self.send_header("Connection", "close")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.arrived:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
        return True

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout_s} s: {log.read_text()[-2000:]}")


class Proc:
    """A started binary on a loopback port; ``stop()`` terminates it (kill after 5 s)."""

    def __init__(self, args: list[str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._fh, stderr=subprocess.STDOUT)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()


def start_alertmanager(tmp: Path, config: dict[str, object]) -> Proc:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    p = Proc([ALERTMANAGER, f"--config.file={tmp / 'alertmanager.yml'}",
              f"--storage.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
              "--cluster.listen-address=", "--log.level=warn"], port, tmp / "alertmanager.log")
    try:
        wait_ready(p.base_url + "/-/ready", p.proc, 20, p.log)
    except Exception:
        p.stop()
        raise
    return p


def start_prometheus(tmp: Path, config: dict[str, object], rules: dict[str, object]) -> Proc:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {**config, "rule_files": [str(tmp / "rules.yml")]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    p = Proc([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
              f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
              "--log.level=warn"], port, tmp / "prometheus.log")
    try:
        wait_ready(p.base_url + "/-/ready", p.proc, 30, p.log)
    except Exception:
        p.stop()
        raise
    return p


def am_config(webhook_url: str, *, token: str | None = None, group_wait: str = "0s",
              group_interval: str = "1s", repeat_interval: str = "1h",
              group_by: list[str] | None = None) -> dict[str, object]:
    """A minimal Alertmanager config routing everything to one webhook, with short timers."""
    wh: dict[str, object] = {"url": webhook_url, "send_resolved": True}
    if token is not None:
        wh["http_config"] = {"authorization": {"type": "Bearer", "credentials": token}}
    return {
        "route": {"receiver": "warden", "group_by": group_by or ["alertname"],
                  "group_wait": group_wait, "group_interval": group_interval,
                  "repeat_interval": repeat_interval},
        "receivers": [{"name": "warden", "webhook_configs": [wh]}],
    }
