"""Alert delivery: time from an alert firing to its webhook arriving, and backlog drain time.

    python benchmarks/alert_delivery.py            # 200 alerts, 60 s outage
    python benchmarks/alert_delivery.py --quick    # 50 alerts, 5 s outage

Everything is real except the on-call system: Warden's AlertingService (grouping with
group_wait 0, the notify pipeline, the SQLite outbox in WAL mode, the delivery thread, HMAC
signing, httpx) posts to a stdlib HTTP receiver on a loopback port that records arrival time.
Part 1 fires alerts one by one (each its own group) and measures fire -> arrival. Part 2 takes
the receiver down for the outage while alerts keep firing, brings it back, and measures the
time until the outbox holds nothing pending, with the default backoff (0.5 s doubling to 30 s,
jittered) so the number includes waiting for the next probe.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry  # noqa: E402

from warden.alerting.config import load_alerting_config  # noqa: E402
from warden.alerting.service import AlertingService  # noqa: E402
from warden.db import open_db  # noqa: E402
from warden.records import Alert, AlertStatus, freeze_labels  # noqa: E402


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                msg = json.loads(body)
                with outer.lock:
                    outer.count += 1
                    for a in msg["alerts"]:
                        outer.arrivals.setdefault(a["fingerprint"], now)
                self.close_connection = True
                self.send_response(200)
                self.send_header("Connection", "close")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


def _service(db: Path, url: str) -> AlertingService:
    cfg = load_alerting_config({
        "receivers": [{"name": "oncall", "url": url, "hmac_secret": "bench-secret",
                       "timeout_s": 2.0}],
        "routes": [{"receiver": "oncall", "group_by": ["..."], "group_wait_s": 0,
                    "group_interval_s": 300}],
        "rate_limit_per_minute": 100_000,
    })
    return AlertingService(cfg, open_db(db), registry=CollectorRegistry())


def _alert(i: int, tag: str) -> Alert:
    return Alert(freeze_labels({"alertname": "BenchAlert", "tag": tag, "i": str(i)}),
                 freeze_labels({"summary": f"alert {i}"}), time.time(), None, AlertStatus.FIRING)


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def bench_latency(n: int, tmp: Path) -> list[tuple[str, str]]:
    rx = Receiver()
    rx.start()
    svc = _service(tmp / "lat.db", f"http://127.0.0.1:{rx.port}/hook")
    svc.start()
    fired: dict[str, float] = {}
    try:
        for i in range(n):
            a = _alert(i, "lat")
            t0 = time.time()
            fired[a.fingerprint] = t0
            svc.submit([a], now=t0)
            deadline = time.monotonic() + 5
            while a.fingerprint not in rx.arrivals and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(0.01)
    finally:
        svc.stop()
        rx.stop()
    lat = [(rx.arrivals[fp] - t) * 1000 for fp, t in fired.items() if fp in rx.arrivals]
    return [("alerts fired", str(n)), ("delivered", str(len(lat))),
            ("P50 ms", f"{statistics.median(lat):.2f}"), ("P90 ms", f"{_pct(lat, 90):.2f}"),
            ("P99 ms", f"{_pct(lat, 99):.2f}"), ("max ms", f"{max(lat):.2f}"),
            ("P99 < 1 s target", "met" if _pct(lat, 99) < 1000 else "MISSED")]


def bench_drain(outage_s: float, rate_per_s: float, tmp: Path) -> list[tuple[str, str]]:
    rx = Receiver()
    rx.start()
    svc = _service(tmp / "drain.db", f"http://127.0.0.1:{rx.port}/hook")
    svc.start()
    try:
        rx.stop()  # outage begins
        t_down = time.monotonic()
        i = 0
        while time.monotonic() - t_down < outage_s:
            svc.submit([_alert(i, "drain")])
            i += 1
            time.sleep(1.0 / rate_per_s)
        backlog = svc.outbox.counts()["pending"]
        rx.start()  # same port: receiver back
        t_up, wall_up = time.monotonic(), time.time()
        deadline = t_up + 120
        while svc.outbox.counts()["pending"] and time.monotonic() < deadline:
            time.sleep(0.01)
        drain = time.monotonic() - t_up
        with rx.lock:
            first = min(rx.arrivals.values(), default=float("nan")) - wall_up
        counts = svc.outbox.counts()
        attempts = max((it.attempts for it in svc.outbox.items(limit=100_000)), default=0)
    finally:
        svc.stop()
        rx.stop()
    return [("outage s", f"{outage_s:g}"), ("alerts fired during outage", str(i)),
            ("backlog at recovery", str(backlog)), ("drain time s", f"{drain:.2f}"),
            ("  of which waiting for the next probe s", f"{first:.2f}"),
            ("  send rate once probing succeeded notif/s",
             f"{backlog / (drain - first):.0f}" if drain > first else "-"),
            ("delivered / dead / pending", f"{counts['delivered']} / {counts['dead']} / "
                                           f"{counts['pending']}"),
            ("max attempts of one row", str(attempts))]


def _print(title: str, rows: list[tuple[str, str]]) -> None:
    w = max(len(k) for k, _ in rows)
    print(f"\n{title}\n{'-' * (w + 14)}")
    for k, v in rows:
        print(f"{k.ljust(w)}  {v}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50 alerts, 5 s outage")
    p.add_argument("--alerts", type=int, default=None)
    p.add_argument("--outage", type=float, default=None, help="seconds (default 60)")
    p.add_argument("--rate", type=float, default=20.0, help="alerts/s during the outage")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the outage's retry warnings are expected
    n = args.alerts or (50 if args.quick else 200)
    outage = args.outage if args.outage is not None else (5.0 if args.quick else 60.0)
    with tempfile.TemporaryDirectory() as d:
        _print(f"fire -> webhook arrival (group_wait 0, {n} alerts, one at a time)",
               bench_latency(n, Path(d)))
        _print(f"drain after a {outage:g} s receiver outage ({args.rate:g} alerts/s)",
               bench_drain(outage, args.rate, Path(d)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
