"""Serving throughput with tracing and collection on, against off, same run: a bisect table.

Two stacks start side by side, each one replica behind its own router process: "untraced" (no
tracing anywhere: what "off" means) and "traced" (router spans, the replica set up for tracing,
its own trace receiver process, the router sending 1/N of traces deep). Every mode but the first
runs on the *traced* stack, the client steering what gets traced, so modes differ only in the
telemetry and not in which processes serve (on this shared 2-core machine, two stacks with the
same settings differ by 10-30% in throughput from run to run; the same stack does not):

    off          the untraced stack, collection paused
    off (00)     traced stack, client sends traceparent with sampled=00: no span anywhere;
                 collection paused: the same processes with all telemetry off, the reference
    edge         client span + router span per request; trace ids the router keeps shallow
    deep 1/N     edge, and 1/N of traces (by trace id) go deep: Triton's spans, PyTriton's
                 stub and proxy spans, the model span (the lab's default)
    full         every trace deep: the 6 more spans per request the lab had before

Each mode is saturated by closed-loop clients, then driven open loop (Poisson, 30% of "off"
capacity) for latency and for CPU per request; modes take turns within each repeat in a rotating
order. One engine (scrapes Triton and the GPU twin every second, runs detection) follows both
replicas, paused during the two "off" modes, so they have no collection either; its CPU is
printed. Medians. "cost" is against "off (00)" (same processes); "vs off" against the separate
untraced stack, which also carries the stack-to-stack difference.

    python benchmarks/telemetry_overhead.py [--quick] [--seconds 4] [--repeats 3]
        [--clients 16] [--per-batch-ms 4] [--deep-ratio 0.0625] [--no-open-loop]

``--per-batch-ms`` sets the synthetic model's cost per batch (slept, as GPU time is spent off
the CPU). At 4 ms the stack is CPU-bound on a 2-core machine and every span's CPU cost comes out
of throughput; at 40 ms with a few clients the model time dominates, as on a GPU server.
"""

from __future__ import annotations

import argparse
import random
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
    """One stack: a replica behind its router, and (traced) its own trace receiver."""

    name: str
    traced: bool
    deep_ratio: float = 0.0
    model_spans: bool = True
    client_ratio: float = 1.0
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
    return (f"{len(chains)} chains (one per sampled request); {len(deep)} went deep, "
            f"{len(complete) / max(len(deep), 1):.0%} of them complete (every stage)")


class SteeredClient:
    """The client's tracer for one mode: the lean recorder, with trace ids chosen so the router
    keeps every trace shallow, sends every one deep, or decides (``natural``); or no sampling."""

    def __init__(self, recorder: SpanRecorder, mode: str, ratio: float) -> None:
        self.recorder, self.mode = recorder, mode
        self.cut = int(ratio * 2**32)
        self.rng = random.Random(hash(mode))

    def start_span(self, name: str, context: Any = None, kind: Any = None,
                   attributes: Any = None, start_time: int | None = None) -> Any:
        if self.mode == "unsampled":
            return self.recorder.start_span(name, attributes=attributes, start_time=start_time,
                                            sampled=False)
        tid = self.rng.getrandbits(128) | (1 << 100)
        if self.mode == "deep":
            tid = (tid & ~0xFFFFFFFF) | self.rng.randrange(0, max(self.cut, 1))
        elif self.mode == "shallow":
            tid = (tid & ~0xFFFFFFFF) | self.rng.randrange(min(self.cut, 2**32 - 1), 2**32)
        return self.recorder.start_span(name, attributes=attributes, start_time=start_time,
                                        trace_id=tid)


@dataclass
class Mode:
    name: str
    stack: Setup
    tracer: Any
    collect: bool = True
    closed: list[tuple[float, float, float]] = field(default_factory=list)
    open: list[tuple[float, float]] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)
    sent: int = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s x 2 repeats")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-batch-ms", type=float, default=4.0)
    parser.add_argument("--deep-ratio", type=float, default=1 / 16)
    parser.add_argument("--no-open-loop", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 3.0, 2
    n = round(1 / args.deep_ratio) if args.deep_ratio > 0 else 0
    off, traced = Setup("untraced", False), Setup("traced", True, args.deep_ratio)
    stacks = [off, traced]
    root = Path(tempfile.mkdtemp(prefix="warden-overhead-"))
    engine_cpu = engine_s = 0.0
    open_rate = 0.0
    try:
        for st in stacks:
            _start(st, root, args.per_batch_ms)
        rec = traced.provider
        modes = [Mode("off", off, None, collect=False),
                 Mode("off (00)", traced, SteeredClient(rec, "unsampled", args.deep_ratio),
                      collect=False),
                 Mode("edge", traced, SteeredClient(rec, "shallow", args.deep_ratio)),
                 Mode(f"deep 1/{n}", traced, SteeredClient(rec, "natural", args.deep_ratio)),
                 Mode("full", traced, SteeredClient(rec, "deep", args.deep_ratio))]
        assert traced.telemetry is not None and traced.fleet is not None
        engine = traced.telemetry.start_engine(traced.fleet.replicas)
        traced.telemetry.triton.set_targets(  # type: ignore[union-attr]
            {f"{st.name}/{r.name}": r.metrics_url for st in stacks if st.fleet
             for r in st.fleet.replicas})
        tid = engine._thread.native_id if engine._thread else None
        cpu0, t0 = _thread_cpu_s(tid), time.monotonic()
        for i in range(args.repeats):
            order = modes[i % len(modes):] + modes[:i % len(modes)]
            for m in order:
                assert m.stack.router is not None
                engine.resume() if m.collect else engine.pause()
                rps, lat, errors = saturate(m.stack.router.url, "synth", args.clients,
                                            args.seconds, tracer=m.tracer)
                p50, p99 = np.percentile(lat, [50, 99]) * 1e3
                m.closed.append((rps, p50, p99))
                m.sent += len(lat) + errors
                print(f"  repeat {i + 1}/{args.repeats} {m.name:<10} closed: {rps:6.0f} req/s "
                      f"P50 {p50:6.1f} ms P99 {p99:6.1f} ms errors {errors}", file=sys.stderr)
                time.sleep(0.5)  # let exporters and receivers catch up outside the next window
            if args.no_open_loop:
                continue
            if not open_rate:
                open_rate = 0.3 * statistics.median(r[0] for r in modes[0].closed)
            for m in order:
                assert m.stack.router is not None
                engine.resume() if m.collect else engine.pause()
                gen = LoadGenerator(m.stack.router.url,
                                    LoadProfile(kind="constant", rate=open_rate),
                                    {"synth": 1.0}, tracer=m.tracer, seed=i)
                meter = CpuMeter(m.stack, tid)
                summary = gen.run(args.seconds)
                time.sleep(0.5)  # the exports and the receiver's work for these requests
                m.cpu.append(meter.stop(summary.sent))
                m.open.append((summary.p50_ms, summary.p99_ms))
                m.sent += summary.sent
                print(f"  repeat {i + 1}/{args.repeats} {m.name:<10} open {open_rate:.0f}/s: "
                      f"P50 {summary.p50_ms:6.1f} ms P99 {summary.p99_ms:6.1f} ms "
                      f"errors {summary.errors} dropped {summary.dropped}", file=sys.stderr)
                time.sleep(0.5)
        engine.resume()
        engine_cpu, engine_s = _thread_cpu_s(tid) - cpu0, time.monotonic() - t0
        rec.force_flush()
        time.sleep(4)  # the joiner's settle time
        chains = _chain_stats(traced)
    finally:
        for st in stacks:
            _stop(st)
    _print_table(modes, chains)
    print(f"\nsynthetic model {args.per_batch_ms:g} ms per batch, {args.clients} closed-loop "
          f"clients, open loop at {open_rate:.0f} req/s, {args.seconds:g} s x {args.repeats} "
          f"repeats (medians), modes in rotating order; cost = 1 - req/s / off (00)'s req/s "
          f"(vs off: / off's), CPU "
          f"cost = CPU per request / off (00)'s")
    print(f"collection (one engine scraping both replicas + detection, paused in the off "
          f"modes): "
          f"{engine_cpu / max(engine_s, 1e-9) * 100:.1f}% of one core")


def _print_table(modes: list[Mode], chains: str) -> None:
    other = statistics.median(r[0] for r in modes[0].closed)
    base = statistics.median(r[0] for r in modes[1].closed)
    print(f"\n{'mode':<10} {'req/s':>6} {'cost':>7} {'vs off':>7} {'P50':>6} {'P99':>6} |"
          f" {'open P50':>8}"
          f" {'P99':>6} {'CPU ms/req':>10} {'cost':>7} (router replica receiver client)")
    ref = next((m for m in modes if m.name == "off (00)" and m.cpu), None)
    ref_cpu = statistics.median(c["total"] for c in ref.cpu) if ref else float("nan")
    for m in modes:
        rps = statistics.median(r[0] for r in m.closed)
        row = (f"{m.name:<10} {rps:6.0f} {(1 - rps / base) * 100:+6.1f}% "
               f"{(1 - rps / other) * 100:+6.1f}% "
               f"{statistics.median(r[1] for r in m.closed):6.1f} "
               f"{statistics.median(r[2] for r in m.closed):6.1f} |")
        if m.open:
            med = {k: statistics.median(c[k] for c in m.cpu) for k in m.cpu[0]}
            row += (f" {statistics.median(r[0] for r in m.open):8.1f}"
                    f" {statistics.median(r[1] for r in m.open):6.1f} {med['total']:10.2f}"
                    f" {(med['total'] / ref_cpu - 1) * 100:+6.1f}% ({med['router']:.2f} "
                    f"{med['replica']:.2f} {med['receiver']:.2f} {med['client']:.2f})")
        print(row)
    print(f"\nchains stored by the traced stack: {chains}")


if __name__ == "__main__":
    main()
