"""P99 with one slow replica: each routing policy against the same fleet, same run.

Three echo replicas (``serving.router.upstream.EchoUpstream``, one child process) answer after
``--fast-ms``; one of them after ``--slow-factor`` times that. For each policy a router starts in
its own child process and ``--clients`` closed-loop clients send ``--n`` infers through it. The
table shows latency percentiles and the slow replica's share of the requests.

    python benchmarks/router_policies.py --quick
    python benchmarks/router_policies.py --upstream URL,URL,URL --model synth   # real replicas

Reusable: ``start_echo_fleet``, ``closed_loop``, ``compare_policies``, ``format_rows``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from router_overhead import DEFAULT_BODY, _Conn, start_router_process  # noqa: E402

__all__ = ["closed_loop", "compare_policies", "format_rows", "start_echo_fleet"]

POLICIES = ("round_robin", "least_outstanding", "peak_ewma")


def _fleet_child(conn: Any, delays: list[float]) -> None:
    from serving.router.upstream import EchoUpstream

    ups = [EchoUpstream(f"r{i}", delay_s=d) for i, d in enumerate(delays)]
    for u in ups:
        u.record = False
    conn.send([u.url for u in ups])
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            break
        if msg == "counts":
            conn.send([u.total() for u in ups])
        else:
            break
    for u in ups:
        u.close()


class EchoFleet:
    """Handle on the child process: ``urls`` and ``counts()`` (requests served per replica)."""

    def __init__(self, urls: list[str], conn: Any) -> None:
        self.urls = urls
        self._conn = conn

    def counts(self) -> list[int]:
        self._conn.send("counts")
        return list(self._conn.recv())


@contextmanager
def start_echo_fleet(delays: Sequence[float]) -> Iterator[EchoFleet]:
    """Echo replicas with the given delays (seconds) in one child process."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_fleet_child, args=(child, list(delays)), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("echo fleet did not start in 30 s")
        yield EchoFleet(parent.recv(), parent)
    finally:
        try:
            parent.send("stop")
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


def closed_loop(url: str, *, model: str, n: int, clients: int, body: bytes) -> np.ndarray:
    """``clients`` threads, each sending its share of ``n`` infers back to back; seconds each."""
    out: list[float] = []
    lock = threading.Lock()
    path = f"/v2/models/{model}/infer"
    headers = {"Content-Type": "application/json"}

    def worker(k: int) -> None:
        conn = _Conn(url)
        mine = []
        try:
            for _ in range(k):
                t0 = time.perf_counter()
                status = conn.post(path, body, headers)
                mine.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"HTTP {status}")
        finally:
            conn.close()
            with lock:
                out.extend(mine)

    shares = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=worker, args=(k,)) for k in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.array(out)


def compare_policies(urls: Sequence[str], *, model: str, n: int, clients: int, body: bytes,
                     fleet: EchoFleet | None = None, slow_index: int | None = None,
                     warmup: int = 30, policies: Sequence[str] = POLICIES,
                     ewma_decay_s: float = 10.0) -> list[dict[str, Any]]:
    """One row per policy: percentiles in ms, throughput, and the slow replica's share."""
    rows = []
    for policy in policies:
        config = {"replicas": [{"name": f"r{i}", "url": u} for i, u in enumerate(urls)],
                  "policy": policy, "health_interval_s": 2.0, "ewma_decay_s": ewma_decay_s}
        with start_router_process(config) as router:
            closed_loop(router.url, model=model, n=warmup, clients=clients, body=body)
            before = fleet.counts() if fleet else None
            t0 = time.perf_counter()
            lat = closed_loop(router.url, model=model, n=n, clients=clients, body=body)
            wall = time.perf_counter() - t0
            after = fleet.counts() if fleet else None
        q = np.percentile(lat, [50, 95, 99]) * 1e3
        share = None
        if before is not None and after is not None and slow_index is not None:
            share = (after[slow_index] - before[slow_index]) / max(1, sum(after) - sum(before))
        rows.append({"policy": policy, "n": len(lat), "p50_ms": q[0], "p95_ms": q[1],
                     "p99_ms": q[2], "req_per_s": len(lat) / wall, "slow_share": share})
    return rows


def format_rows(rows: list[dict[str, Any]], title: str = "") -> str:
    """A plain text table."""
    lines = [title] if title else []
    lines.append(f"{'policy':<19}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>8}"
                 f"{'slow share':>12}")
    for r in rows:
        share = "-" if r["slow_share"] is None else f"{r['slow_share']:.1%}"
        lines.append(f"{r['policy']:<19}{r['n']:>6}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}"
                     f"{r['p99_ms']:>9.2f}{r['req_per_s']:>8.0f}{share:>12}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", default="", help="comma-separated KServe v2 base URLs")
    p.add_argument("--model", default="mlp")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="600 requests, 6 clients")
    p.add_argument("--fast-ms", type=float, default=5.0)
    p.add_argument("--slow-factor", type=float, default=5.0)
    p.add_argument("--body-file", type=Path)
    args = p.parse_args(argv)
    n, clients = (600, 6) if args.quick else (args.n, args.clients)
    body = args.body_file.read_bytes() if args.body_file else json.dumps(DEFAULT_BODY).encode()
    urls = [u.strip() for u in args.upstream.split(",") if u.strip()]
    if urls:
        rows = compare_policies(urls, model=args.model, n=n, clients=clients, body=body)
        title = f"policies over {len(urls)} given replicas, {clients} clients"
    else:
        fast = args.fast_ms / 1e3
        with start_echo_fleet([fast, fast, fast * args.slow_factor]) as fleet:
            rows = compare_policies(fleet.urls, model=args.model, n=n, clients=clients,
                                    body=body, fleet=fleet, slow_index=2)
        title = (f"policies over 3 echo replicas ({args.fast_ms:g} ms, one {args.slow_factor:g}x "
                 f"slower), {clients} closed-loop clients")
    print(format_rows(rows, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
