"""The traffic surge fault: its own process, the requests it sends, and that it always stops.

A stub KServe endpoint (``http.server`` on loopback) records what arrives: the surge's rows per
request and its trace context. No fleet needed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chaos.faults.surge import MARKER, TrafficSurge
from chaos.target import UrlTarget

ROOT = Path(__file__).parents[2]


class Stub:
    """Answers every inference with an empty 200 and remembers the requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, str]] = []  # (request header JSON, traceparent)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                size = int(self.headers.get("Inference-Header-Content-Length", len(body)))
                stub.requests.append((json.loads(body[:size]),
                                      self.headers.get("traceparent", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def stub():
    s = Stub()
    yield s
    s.close()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_untraced_batched_surge_runs_in_its_own_process_until_reverted(stub):
    fault = TrafficSurge(UrlTarget(router_url=stub.url), rate=10, factor=2, items=3,
                         traced=False)
    fault.inject()
    pid = fault.state()["pid"]
    assert pid != os.getpid() and _running(pid)
    time.sleep(1.5)
    fault.revert()
    assert not _running(pid)
    n = len(stub.requests)
    assert 15 <= n <= 60, n  # ~20/s, started before inject() returned
    shapes = {tuple(h["inputs"][0]["shape"]) for h, _ in stub.requests}
    assert shapes == {(3, 4)}
    flags = {tp.split("-")[-1] for _, tp in stub.requests}
    assert flags == {"00"}  # a trace context, not sampled: the router records nothing
    time.sleep(0.5)
    assert len(stub.requests) == n  # nothing after the revert
    fault.revert()  # idempotent
    assert "x 3 rows" in fault.describe()


def test_a_traced_surge_sends_no_context_of_its_own(stub):
    fault = TrafficSurge(UrlTarget(router_url=stub.url), rate=10, factor=1)
    fault.inject()
    time.sleep(0.8)
    fault.revert()
    assert stub.requests and {tp for _, tp in stub.requests} == {""}  # the router starts one


def test_a_cleanup_kills_only_a_marked_surge_process(stub):
    """From the ledger (another runner's state): the pid is killed only if it is a surge."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        bogus = TrafficSurge(UrlTarget(router_url=stub.url))
        bogus.restore({"pid": other.pid})
        bogus.revert()
        assert other.poll() is None  # not ours: untouched
    finally:
        other.kill()
        other.wait()
    first = TrafficSurge(UrlTarget(router_url=stub.url), rate=5)
    first.inject()
    pid = first.state()["pid"]
    try:
        again = TrafficSurge(UrlTarget(router_url=stub.url))
        again.restore(first.state())
        again.revert()
        deadline = time.monotonic() + 5
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid)
    finally:
        first.revert()


def test_the_surge_dies_with_the_runner(stub, tmp_path):
    """SIGKILL of the process that started it: the kernel stops the surge too."""
    script = tmp_path / "runner.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from chaos.faults.surge import TrafficSurge\n"
        "from chaos.target import UrlTarget\n"
        f"f = TrafficSurge(UrlTarget(router_url={stub.url!r}), rate=5)\n"
        "f.inject()\n"
        "print(f.state()['pid'], flush=True)\n"
        "time.sleep(60)\n")
    runner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(runner.stdout.readline())
        assert MARKER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(pid)
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.stdout.close()


def test_bad_arguments_fail_before_anything_starts(stub):
    with pytest.raises(ValueError, match="items"):
        TrafficSurge(UrlTarget(router_url=stub.url), items=0)
    with pytest.raises(ValueError, match="rate and factor"):
        TrafficSurge(UrlTarget(router_url=stub.url), rate=0)
