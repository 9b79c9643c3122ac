"""Serving throughput with tracing and collection on, against off, same run: a bisect table.

Several stacks start side by side, each one replica behind its own router process, and each
traced one with its own trace receiver process (so the receiver's decoding and SQLite writes
are charged to the stack that causes them):

    off          no tracing anywhere
    edge         client span + router span for every request; the replica has tracing set up
                 (Triton trace_rate 0), but no context goes past the router
    deep 1/N     edge, and the share 1/N of traces (by trace id) goes on to the replica: Triton's
                 spans, PyTriton's stub and proxy spans, the model span; the lab's default
    sampled 1/N  head sampling at the client: 1/N of requests traced end to end (full chains),
                 the rest not at all (no chain: detection would see 1/N of the requests)
    full-triton  every trace goes deep, Triton's spans only (no stub, proxy or model spans)
    full         every trace goes deep with all spans (what the lab did before: 6 more spans
                 per request)

Each stack is saturated by closed-loop clients through its router, then driven open loop (Poisson
arrivals at 30% of the "off" capacity) for latency; stacks take turns within each repeat, in a
rotating order, so machine noise (2 shared cores) lands on all of them alike. One engine (scrapes
Triton and the GPU twin every second, runs detection) follows every replica throughout, so
collection costs every stack the same; its own CPU use is printed. Medians over repeats.

    python benchmarks/telemetry_overhead.py [--quick] [--seconds 5] [--repeats 3]
        [--clients 16] [--per-batch-ms 4] [--deep-ratio 0.0625] [--no-open-loop]

``--per-batch-ms`` sets the synthetic model's cost per batch (slept, as GPU time is spent off
the CPU). At 4 ms the stack is CPU-bound on a 2-core machine and every span's CPU cost comes out
of throughput; at 40 ms with a few clients the model time dominates, as on a GPU server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _closed_loop import saturate  # noqa: E402

from serving.fleet import Fleet, FleetConfig  # noqa: E402
from serving.loadgen import LoadGenerator, LoadProfile  # noqa: E402
from serving.router import RouterConfig  # noqa: E402
from serving.router.process import RouterProcess  # noqa: E402
from serving.router.tracing import goes_deep  # noqa: E402
from serving.router_client import RouterAdmin  # noqa: E402
from serving.spans import SpanRecorder  # noqa: E402
from warden.lab_telemetry import Telemetry  # noqa: E402
from warden.records import Stage  # noqa: E402
from warden.store import Store  # noqa: E402


@dataclass
class Setup:
    name: str
    traced: bool
    deep_ratio: float = 0.0
    model_spans: bool = True
    client_ratio: float = 1.0
    sent: int = 0
    closed: list[tuple[float, float, float]] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)
    open: list[tuple[float, float]] = field(default_factory=list)
    telemetry: Telemetry | None = None
    fleet: Fleet | None = None
    router: RouterProcess | None = None
    provider: Any = None
    tracer: Any = None


def _client_tracer(otlp_url: str, ratio: float = 1.0) -> tuple[Any, Any]:
    """The lab's load-generator tracer: the lean recorder, OTLP/JSON every 200 ms."""
    recorder = SpanRecorder(otlp_url, "warden-loadgen", sample_ratio=ratio)
    return recorder, recorder


def _start(s: Setup, root: Path, per_batch_ms: float) -> None:
    home = root / s.name.replace(" ", "_").replace("/", "-")
    home.mkdir(parents=True)
    url = None
    if s.traced:
        s.telemetry = Telemetry(home / "warden.db", home)
        url = s.telemetry.start_receiver()
        s.provider, s.tracer = _client_tracer(url, s.client_ratio)
    s.fleet = Fleet(FleetConfig(models=["synth"], otlp_url=url, model_spans=s.model_spans,
                                synth_cost={"per_batch_ms": per_batch_ms}), home)
    s.fleet.start(1)
    s.router = RouterProcess(RouterConfig(lite_models={"synth"},
                                          ready_models=s.fleet.model_names(),
                                          trace_deep_ratio=s.deep_ratio),
                             port=0, otlp_endpoint=url)
    admin = RouterAdmin(s.router.url)
    admin.sync_replicas({r.name: r.url for r in s.fleet.replicas})
    admin.close()


def _stop(s: Setup) -> None:
    for step in (lambda: s.provider and s.provider.shutdown(),
                 lambda: s.router and s.router.stop(),
                 lambda: s.fleet and s.fleet.stop_all(),
                 lambda: s.telemetry and s.telemetry.stop()):
        try:
            step()
        except Exception as exc:  # keep stopping the rest
            print(f"stopping {s.name}: {exc}", file=sys.stderr)


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _tree(pid: int | None) -> list[int]:
    """``pid`` and all its descendants (a replica: python, tritonserver, the backend stubs)."""
    if pid is None:
        return []
    found = [pid]
    for child in _children(pid):
        found += _tree(child)
    return found


def _proc_cpu_s(pid: int) -> float:
    import os

    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class CpuMeter:
    """CPU seconds spent by one stack's processes (router, replica tree, receiver) and by this
    process's client side (this process less the engine thread) over a window.

    Why: on a shared 2-core machine throughput swings with the neighbours' load, while CPU
    seconds per request at a fixed open-loop rate (so batch sizes match) barely move: on a
    CPU-bound host the ratio of CPU per request is the capacity cost.
    """

    def __init__(self, s: Setup, engine_tid: int | None) -> None:
        import os

        self.engine_tid = engine_tid
        self.pids = {"router": _tree(s.router.pid if s.router else None),
                     "replica": _tree(s.fleet.replicas[0].pid if s.fleet else None),
                     "receiver": _tree(s.telemetry.receiver.pid if s.telemetry and
                                       s.telemetry.receiver else None)}
        self.before = {k: sum(_proc_cpu_s(p) for p in v) for k, v in self.pids.items()}
        t = os.times()
        self.client0 = t.user + t.system - _thread_cpu_s(engine_tid)

    def stop(self, n: int) -> dict[str, float]:
        """Milliseconds of CPU per request, per part and in total."""
        import os

        out = {k: (sum(_proc_cpu_s(p) for p in v) - self.before[k]) / max(n, 1) * 1e3
               for k, v in self.pids.items()}
        t = os.times()
        out["client"] = (t.user + t.system - _thread_cpu_s(self.engine_tid)
                         - self.client0) / max(n, 1) * 1e3
        out["total"] = sum(out.values())
        return out


def _thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (Linux), 0 when unknown."""
    import os

    if native_id is None:
        return 0.0
    try:
        f = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def _chain_stats(s: Setup) -> str:
    """Chains stored, and the share of deep traces whose chain has every stage."""
    if s.telemetry is None:
        return "-"
    store = Store(s.telemetry.db_path, readonly=True)
    try:
        chains = store.chains()
    finally:
        store.close()
    if not len(chains):
        return "0"
    deep = chains[[goes_deep(int(t, 16), s.deep_ratio) for t in chains.trace_id]]
    complete = deep.dropna(subset=[st.value for st in Stage])
    return (f"{len(chains) / max(s.sent, 1):4.0%} of {s.sent} requests; full chains "
            f"{len(complete)} ({len(complete) / max(len(deep), 1):.0%} of those sent deep)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s x 2 repeats, 4 stacks")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-batch-ms", type=float, default=4.0)
    parser.add_argument("--deep-ratio", type=float, default=1 / 16)
    parser.add_argument("--no-open-loop", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 3.0, 2
    n = round(1 / args.deep_ratio) if args.deep_ratio > 0 else 0
    setups = [Setup("off", False), Setup("edge", True, 0.0),
              Setup(f"deep 1/{n}", True, args.deep_ratio),
              Setup(f"sampled 1/{n}", True, 1.0, client_ratio=args.deep_ratio),
              Setup("full-triton", True, 1.0, model_spans=False), Setup("full", True, 1.0)]
    if args.quick:
        setups = [s for s in setups if s.name in ("off", f"deep 1/{n}", f"sampled 1/{n}", "full")]
    root = Path(tempfile.mkdtemp(prefix="warden-overhead-"))
    engine_cpu = engine_s = 0.0
    n_replicas = 0
    try:
        for s in setups:
            _start(s, root, args.per_batch_ms)
        collector = next(s for s in setups if s.telemetry is not None)
        assert collector.telemetry is not None
        n_replicas = sum(len(s.fleet.replicas) for s in setups if s.fleet)
        engine = collector.telemetry.start_engine(collector.fleet.replicas)  # type: ignore[union-attr]
        collector.telemetry.triton.set_targets(  # type: ignore[union-attr]
            {f"{s.name}/{r.name}": r.metrics_url for s in setups if s.fleet for r in s.fleet.replicas})
        tid = engine._thread.native_id if engine._thread else None
        cpu0, t0 = _thread_cpu_s(tid), time.monotonic()
        open_rate = 0.0
        for i in range(args.repeats):
            order = setups[i % len(setups):] + setups[:i % len(setups)]
            for s in order:
                assert s.router is not None
                rps, lat, errors = saturate(s.router.url, "synth", args.clients, args.seconds,
                                            tracer=s.tracer)
                p50, p99 = np.percentile(lat, [50, 99]) * 1e3
                s.closed.append((rps, p50, p99))
                s.sent += len(lat) + errors
                print(f"  repeat {i + 1}/{args.repeats} {s.name:<13} closed: {rps:6.0f} req/s "
                      f"P50 {p50:6.1f} ms P99 {p99:6.1f} ms errors {errors}", file=sys.stderr)
                time.sleep(0.5)  # let exporters and receivers catch up outside the next window
            if args.no_open_loop:
                continue
            if not open_rate:
                open_rate = 0.3 * statistics.median(r[0] for r in setups[0].closed)
            for s in order:
                assert s.router is not None
                gen = LoadGenerator(s.router.url, LoadProfile(kind="constant", rate=open_rate),
                                    {"synth": 1.0}, tracer=s.tracer, seed=i)
                meter = CpuMeter(s, tid)
                summary = gen.run(args.seconds)
                time.sleep(0.5)  # the exports and the receiver's work for these requests
                s.cpu.append(meter.stop(summary.sent))
                s.open.append((summary.p50_ms, summary.p99_ms))
                s.sent += summary.sent
                print(f"  repeat {i + 1}/{args.repeats} {s.name:<13} open {open_rate:.0f}/s: "
                      f"P50 {summary.p50_ms:6.1f} ms P99 {summary.p99_ms:6.1f} ms "
                      f"errors {summary.errors} dropped {summary.dropped}", file=sys.stderr)
                time.sleep(0.5)
        engine_cpu, engine_s = _thread_cpu_s(tid) - cpu0, time.monotonic() - t0
        for s in setups:
            if s.provider is not None:
                s.provider.force_flush()
        time.sleep(4)  # the joiner's settle time
        chains = {s.name: _chain_stats(s) for s in setups}
    finally:
        for s in setups:
            _stop(s)
    off = statistics.median(r[0] for r in setups[0].closed)
    print(f"\n{'stack':<13} {'req/s':>6} {'cost':>7} {'P50':>6} {'P99':>6} | {'open P50':>8}"
          f" {'P99':>6} {'CPU ms/req':>10} {'cost':>7} (router replica receiver client)")
    off_cpu = (statistics.median(c["total"] for c in setups[0].cpu)
               if setups[0].cpu else float("nan"))
    for s in setups:
        rps = statistics.median(r[0] for r in s.closed)
        row = (f"{s.name:<13} {rps:6.0f} {(1 - rps / off) * 100:+6.1f}% "
               f"{statistics.median(r[1] for r in s.closed):6.1f} "
               f"{statistics.median(r[2] for r in s.closed):6.1f} |")
        if s.open:
            med = {k: statistics.median(c[k] for c in s.cpu) for k in s.cpu[0]}
            row += (f" {statistics.median(r[0] for r in s.open):8.1f}"
                    f" {statistics.median(r[1] for r in s.open):6.1f} {med['total']:10.2f}"
                    f" {(med['total'] / off_cpu - 1) * 100:+6.1f}% ({med['router']:.2f} "
                    f"{med['replica']:.2f} {med['receiver']:.2f} {med['client']:.2f})")
        print(row)
    print("\nchains stored:")
    for s in setups:
        print(f"  {s.name:<13} {chains[s.name]}")
    print(f"\nsynthetic model {args.per_batch_ms:g} ms per batch, {args.clients} closed-loop "
          f"clients, open loop at {open_rate:.0f} req/s, {args.seconds:g} s x {args.repeats} "
          f"repeats (medians), stacks in rotating order")
    print(f"collection (one engine scraping all {n_replicas} replicas + detection): {engine_cpu / max(engine_s, 1e-9) * 100:.1f}% of one core")


if __name__ == "__main__":
    main()
