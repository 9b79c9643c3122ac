"""How much latency the router adds: the same infer, straight to a replica and via the router.

Requests alternate (straight, via router, straight, ...) in one run, so both series see the same
machine load. With ``--triton N`` the benchmark starts N real Triton replicas (``serving.fleet``,
model ``synth``) and measures against them; with ``--upstream`` the replicas are KServe v2
servers already running; without either, a tiny echo server
(``serving.router.upstream.EchoUpstream``) starts in a child process (``--echo-delay-ms`` makes
it answer late, as a real model does). The router runs in a child process by default so the
client's GIL does not count against it; ``--router-in-thread`` runs it in this process.

Tracing as the lab runs it (``--tracing``): every request arrives with a sampled
``traceparent`` (the load generator's client span), the router records its ``warden.router``
span on the lean ``SpanRecorder`` and posts them as OTLP/JSON to a sink in another child
process, and 1 in 16 traces goes deep (``trace_deep_ratio``). ``--tracer sdk`` uses the
OpenTelemetry SDK instead (spans dropped by the exporter).

``--triton N`` (and ``--matrix``) measure several router set-ups, interleaved within each of
``--repeats`` repeats, and print one table of medians over the repeats: tracing off and on, on
the asyncio loop and on uvloop when it is installed.

    python benchmarks/router_overhead.py --triton 1             # the figure in README.md
    python benchmarks/router_overhead.py --quick --echo-delay-ms 10 --matrix
    python benchmarks/router_overhead.py --upstream http://127.0.0.1:8000,http://127.0.0.1:8010 \
        --model synth --n 2000 --body-file req.json --tracing

Reusable pieces: ``start_router_process``, ``measure``, ``summarise``, ``format_table``, ``run``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                            "data": [0.1, 0.2, 0.3, 0.4]}]}
#: The lab's default share of traces sent on to the replicas (``lab.trace_deep_ratio``).
LAB_DEEP_RATIO = 1 / 16
TRACERS = ("off", "lite", "sdk")

__all__ = ["format_matrix", "format_table", "measure", "run", "start_router_process",
           "start_span_sink_process", "start_upstream_process", "summarise"]


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
            body: bytes, warmup: int = 20, traceparent: bool = False) -> dict[str, np.ndarray]:
    """Alternate ``n`` infers straight (round robin over ``straight_urls``) and via the router.

    With ``traceparent`` every request carries a fresh sampled one (made before the clock
    starts), as the lab's load generator sends. Returns seconds per request,
    ``{"straight": array(n), "router": array(n)}``; non-200 answers raise, since a failing
    request's latency would mean nothing.
    """
    headers = {"Content-Type": "application/json"}
    path = f"/v2/models/{model}/infer"
    straight = [_Conn(u) for u in straight_urls]
    via = _Conn(router_url)
    rng = random.Random(7)
    out = {"straight": np.empty(n), "router": np.empty(n)}
    try:
        for i in range(-warmup, n):
            for key, conn in (("straight", straight[i % len(straight)]), ("router", via)):
                if traceparent:
                    headers["traceparent"] = (f"00-{rng.getrandbits(128) or 1:032x}-"
                                              f"{rng.getrandbits(64) or 1:016x}-01")
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


def format_matrix(results: dict[str, list[list[dict[str, Any]]]], title: str = "") -> str:
    """One line per set-up, medians over repeats: straight and via-router P50 and P99, what
    the router added at each (each repeat's difference, then the median; the P99 difference
    with its range over repeats, as it is noisy) and the router's CPU per request."""
    width = max([14, *(len(label) for label in results)]) + 2
    lines = [title] if title else []
    lines.append(f"{'router set-up':<{width}}{'runs':>5}{'p50 straight':>13}{'p50 router':>11}"
                 f"{'p50 added':>10}{'p99 straight':>13}{'p99 router':>11}{'p99 added':>10}"
                 f"{'p99 added range':>17}{'router CPU us/req':>19}")
    for label, runs in results.items():
        def med(path: str, key: str, runs: list[list[dict[str, Any]]] = runs) -> float:
            return statistics.median(next(r[key] for r in rows if r["path"] == path)
                                     for rows in runs)
        p99s = [next(r["p99_ms"] for r in rows if r["path"] == "added") for rows in runs]
        cpu = statistics.median(next(r["router_cpu_us"] for r in rows if r["path"] == "router")
                                or 0.0 for rows in runs)
        lines.append(f"{label:<{width}}{len(runs):>5}{med('straight', 'p50_ms'):>13.3f}"
                     f"{med('router', 'p50_ms'):>11.3f}{med('added', 'p50_ms'):>10.3f}"
                     f"{med('straight', 'p99_ms'):>13.3f}{med('router', 'p99_ms'):>11.3f}"
                     f"{med('added', 'p99_ms'):>10.3f}"
                     f"{f'{min(p99s):.2f} .. {max(p99s):.2f}':>17}{cpu:>19.0f}")
    return "\n".join(lines)


# -- child processes -------------------------------------------------------------------------
def _upstream_child(conn: Any, name: str, delay_s: float = 0.0) -> None:
    from serving.router.upstream import EchoUpstream

    up = EchoUpstream(name, delay_s=delay_s)
    up.record = False
    conn.send(up.url)
    _serve_pipe(conn)
    up.close()


def _sink_child(conn: Any) -> None:
    """An OTLP/HTTP receiver that answers 200 and throws the spans away."""
    import asyncio
    import threading

    from aiohttp import web

    async def traces(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    loop = asyncio.new_event_loop()

    async def start() -> int:
        app = web.Application(client_max_size=1 << 28)
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    port = loop.run_until_complete(start())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    conn.send(f"http://127.0.0.1:{port}/v1/traces")
    _serve_pipe(conn)


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


def _router_child(conn: Any, config: dict[str, Any], tracing: bool | str, use_uvloop: bool | None,
                  sink_url: str | None = None, root: str | None = None) -> None:
    if root is not None:  # the router of another checkout; nothing imported serving yet
        sys.path.insert(0, root)
    from prometheus_client import CollectorRegistry

    from serving.router.config import RouterConfig
    from serving.router.thread import RouterThread

    tracer = _tracer_name(tracing)
    provider: Any = None
    if tracer == "sdk":
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        from serving.router.tracing import make_tracer_provider

        class _DropExporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = make_tracer_provider(_DropExporter())
    elif tracer == "lite":
        from serving.router.tracing import SERVICE_NAME
        from serving.spans import SpanRecorder

        # as serving.router.cli runs it in the lab; nowhere to post to without a sink
        provider = SpanRecorder(sink_url or "http://127.0.0.1:9/v1/traces", SERVICE_NAME)
    handle = RouterThread(RouterConfig.model_validate(config), CollectorRegistry(),
                          tracer_provider=provider, use_uvloop=use_uvloop)
    loop_name = type(handle.loop).__module__.split(".")[0]
    conn.send((handle.url, loop_name))
    _serve_pipe(conn)
    handle.stop()
    if tracer == "lite":
        provider.shutdown()


def _tracer_name(tracing: bool | str) -> str:
    """``tracing`` as one of TRACERS: True means the lab's tracer ("lite")."""
    if tracing is True:
        return "lite"
    if tracing is False:
        return "off"
    if tracing not in TRACERS:
        raise ValueError(f"tracing must be one of {TRACERS}, got {tracing!r}")
    return tracing


class ChildServer:
    """A server in a child process: its ``url`` and its CPU time so far."""

    def __init__(self, url: str, conn: Any, info: Any = None) -> None:
        self.url = url
        self.info = info
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
        hello = parent.recv()
        url, info = hello if isinstance(hello, tuple) else (hello, None)
        yield ChildServer(url, parent, info)
    finally:
        try:
            parent.send("stop")
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


def start_upstream_process(name: str = "r0", *, delay_s: float = 0.0) -> Any:
    """Context manager: an ``EchoUpstream`` (answering after ``delay_s``) in a child process;
    yields a ``ChildServer``."""
    return _child(_upstream_child, name, delay_s)


def start_span_sink_process() -> Any:
    """Context manager: an OTLP/HTTP sink in a child process; ``.url`` is its traces URL."""
    return _child(_sink_child)


def start_router_process(config: dict[str, Any], *, tracing: bool | str = False,
                         use_uvloop: bool | None = None, sink_url: str | None = None,
                         root: str | None = None) -> Any:
    """Context manager: a router (``RouterConfig`` as a dict) in a child process.

    ``tracing``: "off", "lite" (``SpanRecorder`` posting to ``sink_url``, as the lab) or
    "sdk"; ``root``: import the router from this checkout instead. Yields a ``ChildServer``
    (``.url``, ``.cpu_seconds()``, ``.info``: the loop's package, "asyncio" or "uvloop").
    """
    return _child(_router_child, config, tracing, use_uvloop, sink_url, root)


def run(upstreams: Sequence[str], *, model: str, n: int, body: bytes, policy: str = "round_robin",
        tracing: bool | str = False, in_thread: bool = False, use_uvloop: bool | None = None,
        sink_url: str | None = None, root: str | None = None) -> list[dict[str, Any]]:
    """Start a router over ``upstreams`` (in a child process or a thread), measure, summarise."""
    tracer = _tracer_name(tracing)
    config: dict[str, Any] = {
        "replicas": [{"name": f"r{i}", "url": u} for i, u in enumerate(upstreams)],
        "policy": policy, "health_interval_s": 5.0}
    if tracer != "off":
        config["trace_deep_ratio"] = LAB_DEEP_RATIO
    traced = tracer != "off"
    if in_thread:
        from prometheus_client import CollectorRegistry

        from serving.router.config import RouterConfig
        from serving.router.thread import RouterThread

        with RouterThread(RouterConfig.model_validate(config), CollectorRegistry(),
                          use_uvloop=use_uvloop) as handle:
            return summarise(measure(upstreams, handle.url, model=model, n=n, body=body,
                                     traceparent=traced))
    with start_router_process(config, tracing=tracer, use_uvloop=use_uvloop,
                              sink_url=sink_url, root=root) as child:
        cpu0 = child.cpu_seconds()
        rows = summarise(measure(upstreams, child.url, model=model, n=n, body=body,
                                 traceparent=traced))
        cpu_per_request = (child.cpu_seconds() - cpu0) / (n + 20)
    for row in rows:
        row["router_cpu_us"] = cpu_per_request * 1e6 if row["path"] == "router" else None
        row["loop"] = child.info
    return rows


def _uvloop_installed() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run_matrix(upstreams: Sequence[str], setups: Sequence[tuple[str, str, bool, str | None]], *,
               model: str, n: int, body: bytes, policy: str, repeats: int,
               sink_url: str | None) -> dict[str, list[list[dict[str, Any]]]]:
    """Each ``(label, tracer, uvloop, checkout root or None)`` set-up once per repeat,
    interleaved so drift in the machine's load reaches them all; every run's rows per label."""
    results: dict[str, list[list[dict[str, Any]]]] = {label: [] for label, *_ in setups}
    for rep in range(repeats):
        for label, tracer, uv, root in setups:
            rows = run(upstreams, model=model, n=n, body=body, policy=policy, tracing=tracer,
                       use_uvloop=uv, sink_url=sink_url, root=root)
            results[label].append(rows)
            added = rows[2]
            print(f"  repeat {rep + 1}/{repeats} {label:<24} added p50 {added['p50_ms']:.3f} ms "
                  f"p99 {added['p99_ms']:.3f} ms, router CPU {rows[1]['router_cpu_us']:.0f} "
                  f"us/req", file=sys.stderr, flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--upstream", default="", help="comma-separated KServe v2 base URLs")
    where.add_argument("--triton", type=int, default=0, metavar="N",
                       help="start N real Triton replicas (model synth) and measure against them")
    p.add_argument("--echo-delay-ms", type=float, default=0.0,
                   help="the echo upstream answers this late (no --upstream/--triton)")
    p.add_argument("--model", help="default: synth with --triton, else mlp")
    p.add_argument("--n", type=int, default=1000, help="requests per path")
    p.add_argument("--quick", action="store_true", help="300 requests per path")
    p.add_argument("--repeats", type=int, help="matrix repeats; default 3 (1 with --quick)")
    p.add_argument("--matrix", action="store_true",
                   help="tracing off/on x asyncio/uvloop in one table (the default with --triton)")
    p.add_argument("--body-file", type=Path, help="infer request body (JSON); default 4 floats")
    p.add_argument("--policy", default="round_robin")
    p.add_argument("--tracing", action="store_true", help="router spans on, as in the lab")
    p.add_argument("--tracer", choices=("lite", "sdk"), default="lite",
                   help="with --tracing: lean SpanRecorder (lab) or OpenTelemetry SDK")
    p.add_argument("--router-in-thread", action="store_true",
                   help="router in this process, not a child process (no tracing, no CPU)")
    loop = p.add_mutually_exclusive_group()
    loop.add_argument("--uvloop", action="store_true", help="router on uvloop (must be installed)")
    loop.add_argument("--asyncio", action="store_true", help="router on the plain asyncio loop")
    p.add_argument("--compare-root", type=Path, metavar="DIR",
                   help="matrix: also the router of another checkout (e.g. git archive REV "
                        "unpacked in DIR), tracing off and on, asyncio, interleaved")
    args = p.parse_args(argv)
    n = 300 if args.quick else args.n
    repeats = args.repeats or (1 if args.quick else 3)
    model = args.model or ("synth" if args.triton else "mlp")
    body = args.body_file.read_bytes() if args.body_file else json.dumps(DEFAULT_BODY).encode()
    use_uvloop: bool | None = True if args.uvloop else False if args.asyncio else None
    with ExitStack() as stack:
        if args.triton:
            from serving.fleet import Fleet, FleetConfig

            fleet = stack.enter_context(Fleet(FleetConfig(models=[model]),
                                              Path(tempfile.mkdtemp(prefix="warden-overhead-"))))
            fleet.start(args.triton)
            urls = [r.url for r in fleet.replicas]
            label = f"{args.triton} real Triton replica(s) started here"
        elif args.upstream:
            urls = [u.strip() for u in args.upstream.split(",") if u.strip()]
            label = f"{len(urls)} given upstream(s)"
        else:
            up = stack.enter_context(start_upstream_process(delay_s=args.echo_delay_ms / 1e3))
            urls = [up.url]
            label = (f"echo upstream (child process, answers after {args.echo_delay_ms:g} ms)"
                     if args.echo_delay_ms else "echo upstream (child process)")
        sink = stack.enter_context(start_span_sink_process())
        title = f"router overhead: {label}, model={model}, policy={args.policy}"
        if args.triton or args.matrix:
            tracer = args.tracer
            loops = [False, True] if _uvloop_installed() and use_uvloop is None else \
                [bool(use_uvloop)]
            setups: list[tuple[str, str, bool, str | None]] = [
                (f"tracing {t}, {'uvloop' if uv else 'asyncio'}", t, uv, None)
                for uv in loops for t in ("off", tracer)]
            if args.compare_root:
                root = str(args.compare_root.resolve())
                setups = [(f"{args.compare_root.name}: tracing {t}, asyncio", t, False, root)
                          for t in ("off", tracer)] + setups
            results = run_matrix(urls, setups, model=model, n=n, body=body, policy=args.policy,
                                 repeats=repeats, sink_url=sink.url)
            print(format_matrix(results, f"{title}, {n} requests per path and set-up, medians "
                                         f"over {repeats} repeat(s), milliseconds"))
            return 0
        tracing = args.tracer if args.tracing else "off"
        rows = run(urls, model=model, n=n, body=body, policy=args.policy, tracing=tracing,
                   in_thread=args.router_in_thread, use_uvloop=use_uvloop, sink_url=sink.url)
    where_ = "thread" if args.router_in_thread else "child process"
    print(format_table(rows, f"{title}, tracing={tracing}, router in {where_}, "
                             f"loop={rows[0].get('loop') or 'default'}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
