"""Serving throughput with full tracing and collection on, against off, same run.

Two labs start side by side, one replica each behind its router. "On": Triton traces every
request (OpenTelemetry, rate 1), the model code and the router emit spans, clients send a
``traceparent`` and a client span, the trace receiver joins chains into the store, and the
engine scrapes Triton and the GPU twin every second. "Off": none of that. Each lab is then
saturated by closed-loop clients through its router, alternating on/off per repeat; the table
gives medians. The "on" lab's engine and receiver keep running during the "off" measurement,
as they would on a shared host, so the comparison is, if anything, kind to "off".

    python benchmarks/telemetry_overhead.py [--seconds 6] [--repeats 3] [--clients 16]
        [--per-batch-ms 4]

``--per-batch-ms`` sets the synthetic model's cost per batch (slept, as GPU time is spent off
the CPU). At 4 ms the lab is CPU-bound on a 2-core machine and every span's CPU cost comes out
of throughput; at 40 ms with a few clients the model time dominates, as on a GPU server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _closed_loop import saturate  # noqa: E402

from warden.config import load_config  # noqa: E402
from warden.lab import Lab  # noqa: E402


def _client_tracer(otlp_url: str):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "warden-loadgen"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_url)))
    return provider, provider.get_tracer("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-batch-ms", type=float, default=4.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="warden-overhead-"))
    labs = {}
    for label, telemetry in (("on", True), ("off", False)):
        cfg = load_config(home=root / label, lab={"replicas": 1, "router_port": 0},
                          fleet={"models": ["synth"],
                                 "synth_cost": {"per_batch_ms": args.per_batch_ms}})
        labs[label] = Lab(cfg, with_traffic=False, with_telemetry=telemetry)
    rows: dict[str, list[tuple[float, float, float]]] = {"on": [], "off": []}
    try:
        for lab in labs.values():
            lab.start()
        provider, tracer = _client_tracer(labs["on"].otlp_url or "")
        for i in range(args.repeats):
            for label in ("on", "off"):
                lab = labs[label]
                rps, lat, errors = saturate(lab.router_url, "synth", args.clients, args.seconds,
                                            tracer=tracer if label == "on" else None)
                p50, p99 = np.percentile(lat, [50, 99]) * 1e3
                rows[label].append((rps, p50, p99))
                print(f"  repeat {i + 1}/{args.repeats} telemetry {label:<3}: {rps:6.0f} req/s "
                      f"P50 {p50:5.1f} ms P99 {p99:6.1f} ms errors {errors}", file=sys.stderr)
        provider.shutdown()
        chains = labs["on"].telemetry.store.query("SELECT COUNT(*) AS n FROM chains")["n"][0]
    finally:
        for lab in labs.values():
            lab.stop()
    med = {k: statistics.median(r[0] for r in v) for k, v in rows.items()}
    print(f"\n{'telemetry':<10} {'req/s (median)':>15} {'P50 ms':>7} {'P99 ms':>7}")
    for label in ("off", "on"):
        print(f"{label:<10} {med[label]:>15.0f} "
              f"{statistics.median(r[1] for r in rows[label]):>7.1f} "
              f"{statistics.median(r[2] for r in rows[label]):>7.1f}")
    print(f"\nsynthetic model {args.per_batch_ms:g} ms per batch, {args.clients} closed-loop "
          f"clients, {args.seconds:g} s x {args.repeats} repeats")
    print(f"throughput on/off: {med['on'] / med['off']:.3f} "
          f"({(1 - med['on'] / med['off']) * 100:+.1f}% cost); chains stored: {chains}")


if __name__ == "__main__":
    main()
