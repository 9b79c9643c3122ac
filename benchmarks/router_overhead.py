"""How much latency the router adds: the same infer, straight to a replica and via the router.

Requests alternate (straight, via router, straight, ...) in one run, so both series see the same
machine load. With ``--upstream`` the replicas are real KServe v2 servers (Triton); without, a
tiny echo server (``serving.router.upstream.EchoUpstream``) starts in a child process. The router
runs in a child process by default so the client's GIL does not count against it;
``--router-in-thread`` runs it in this process as ``warden up`` does.

    python benchmarks/router_overhead.py --quick
    python benchmarks/router_overhead.py --upstream http://127.0.0.1:8000,http://127.0.0.1:8010 \
        --model synth --n 2000 --body-file req.json

Reusable pieces: ``start_router_process``, ``measure``, ``summarise``, ``format_table``, ``run``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                            "data": [0.1, 0.2, 0.3, 0.4]}]}

__all__ = ["format_table", "measure", "run", "start_router_process", "start_upstream_process",
           "summarise"]


class _Conn:
    """A keep-alive HTTP/1.1 connection that reconnects once if the server closed it."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        for attempt in (0, 1):
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                resp.read()
                return resp.status
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def measure(straight_urls: Sequence[str], router_url: str, *, model: str, n: int,
            body: bytes, warmup: int = 20) -> dict[str, np.ndarray]:
    """Alternate ``n`` infers straight (round robin over ``straight_urls``) and via the router.

    Returns seconds per request, ``{"straight": array(n), "router": array(n)}``; non-200 answers
    raise, since a failing request's latency would mean nothing.
    """
    headers = {"Content-Type": "application/json"}
    path = f"/v2/models/{model}/infer"
    straight = [_Conn(u) for u in straight_urls]
    via = _Conn(router_url)
    out = {"straight": np.empty(n), "router": np.empty(n)}
    try:
        for i in range(-warmup, n):
            for key, conn in (("straight", straight[i % len(straight)]), ("router", via)):
                t0 = time.perf_counter()
                status = conn.post(path, body, headers)
                dt = time.perf_counter() - t0
                if status != 200:
                    raise RuntimeError(f"{key} request answered HTTP {status}")
                if i >= 0:
                    out[key][i] = dt
    finally:
        for c in [*straight, via]:
            c.close()
    return out


def summarise(samples: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """P50/P95/P99 in ms per series, plus the router's added ms at each."""
    rows = []
    for key in ("straight", "router"):
        q = np.percentile(samples[key], [50, 95, 99]) * 1e3
        rows.append({"path": key, "n": len(samples[key]), "p50_ms": q[0], "p95_ms": q[1],
                     "p99_ms": q[2], "mean_ms": samples[key].mean() * 1e3})
    added = {k: rows[1][k] - rows[0][k] for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")}
    rows.append({"path": "added", "n": rows[0]["n"], **added})
    return rows


def format_table(rows: list[dict[str, Any]], title: str = "") -> str:
    """A plain text table."""
    lines = [title] if title else []
    lines.append(f"{'path':<10}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'mean ms':>10}"
                 f"{'router CPU us/req':>19}")
    for r in rows:
        cpu = r.get("router_cpu_us")
        lines.append(f"{r['path']:<10}{r['n']:>7}{r['p50_ms']:>10.3f}{r['p95_ms']:>10.3f}"
                     f"{r['p99_ms']:>10.3f}{r['mean_ms']:>10.3f}"
                     f"{'' if cpu is None else f'{cpu:.0f}':>19}")
    return "\n".join(lines)


# -- child processes -------------------------------------------------------------------------
def _upstream_child(conn: Any, name: str) -> None:
    from serving.router.upstream import EchoUpstream

    up = EchoUpstream(name)
    up.record = False
    conn.send(up.url)
    _serve_pipe(conn)
    up.close()


def _serve_pipe(conn: Any) -> None:
    """Answer 'cpu' with this process's CPU seconds until 'stop' (or the parent goes away)."""
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg == "cpu":
            conn.send(time.process_time())
        else:
            return


def _router_child(conn: Any, config: dict[str, Any], tracing: bool, use_uvloop: bool) -> None:
    from prometheus_client import CollectorRegistry

    from serving.router.config import RouterConfig
    from serving.router.thread import RouterThread

    provider = None
    if tracing:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        from serving.router.tracing import make_tracer_provider

        class _DropExporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = make_tracer_provider(_DropExporter())
    handle = RouterThread(RouterConfig.model_validate(config), CollectorRegistry(),
                          tracer_provider=provider, use_uvloop=use_uvloop)
    conn.send(handle.url)
    _serve_pipe(conn)
    handle.stop()


class ChildServer:
    """A server in a child process: its ``url`` and its CPU time so far."""

    def __init__(self, url: str, conn: Any) -> None:
        self.url = url
        self._conn = conn

    def cpu_seconds(self) -> float:
        self._conn.send("cpu")
        return float(self._conn.recv())


@contextmanager
def _child(target: Callable[..., None], *args: Any) -> Iterator[ChildServer]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError(f"{target.__name__} did not start in 30 s")
        yield ChildServer(parent.recv(), parent)
    finally:
        try:
            parent.send("stop")
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


def start_upstream_process(name: str = "r0") -> Any:
    """Context manager: an ``EchoUpstream`` in a child process; yields a ``ChildServer``."""
    return _child(_upstream_child, name)


def start_router_process(config: dict[str, Any], *, tracing: bool = False,
                         use_uvloop: bool = False) -> Any:
    """Context manager: a router (``RouterConfig`` as a dict) in a child process.

    Yields a ``ChildServer`` (``.url``, ``.cpu_seconds()``).
    """
    return _child(_router_child, config, tracing, use_uvloop)


def run(upstreams: Sequence[str], *, model: str, n: int, body: bytes, policy: str = "round_robin",
        tracing: bool = False, in_thread: bool = False,
        use_uvloop: bool = False) -> list[dict[str, Any]]:
    """Start a router over ``upstreams`` (in a child process or a thread), measure, summarise."""
    config = {"replicas": [{"name": f"r{i}", "url": u} for i, u in enumerate(upstreams)],
              "policy": policy, "health_interval_s": 5.0}
    if in_thread:
        from prometheus_client import CollectorRegistry

        from serving.router.config import RouterConfig
        from serving.router.thread import RouterThread

        with RouterThread(RouterConfig.model_validate(config), CollectorRegistry(),
                          use_uvloop=use_uvloop) as handle:
            return summarise(measure(upstreams, handle.url, model=model, n=n, body=body))
    with start_router_process(config, tracing=tracing, use_uvloop=use_uvloop) as child:
        cpu0 = child.cpu_seconds()
        rows = summarise(measure(upstreams, child.url, model=model, n=n, body=body))
        cpu_per_request = (child.cpu_seconds() - cpu0) / (n + 20)
    for row in rows:
        row["router_cpu_us"] = cpu_per_request * 1e6 if row["path"] == "router" else None
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", default="", help="comma-separated KServe v2 base URLs")
    p.add_argument("--model", default="mlp")
    p.add_argument("--n", type=int, default=1000, help="requests per path")
    p.add_argument("--quick", action="store_true", help="300 requests per path")
    p.add_argument("--body-file", type=Path, help="infer request body (JSON); default 4 floats")
    p.add_argument("--policy", default="round_robin")
    p.add_argument("--tracing", action="store_true", help="router span on (exporter drops)")
    p.add_argument("--router-in-thread", action="store_true",
                   help="router in this process (as warden up runs it), not a child process")
    p.add_argument("--uvloop", action="store_true", help="router on uvloop (must be installed)")
    args = p.parse_args(argv)
    n = 300 if args.quick else args.n
    body = args.body_file.read_bytes() if args.body_file else json.dumps(DEFAULT_BODY).encode()
    urls = [u.strip() for u in args.upstream.split(",") if u.strip()]
    where = "thread" if args.router_in_thread else "child process"
    if urls:
        rows = run(urls, model=args.model, n=n, body=body, policy=args.policy,
                   tracing=args.tracing, in_thread=args.router_in_thread, use_uvloop=args.uvloop)
        label = f"{len(urls)} given upstream(s)"
    else:
        with start_upstream_process() as up:
            rows = run([up.url], model=args.model, n=n, body=body, policy=args.policy,
                       tracing=args.tracing, in_thread=args.router_in_thread,
                       use_uvloop=args.uvloop)
        label = "in-process echo upstream (child process)"
    print(format_table(rows, f"router overhead: {label}, model={args.model}, policy="
                             f"{args.policy}, tracing={'on' if args.tracing else 'off'}, "
                             f"router in {where}, loop={'uvloop' if args.uvloop else 'asyncio'}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
