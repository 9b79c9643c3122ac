"""OTLP spans per second received over real HTTP by one receiver process pinned to one core.

The receiver (:class:`collectors.traces.OtlpReceiver`) runs here, pinned to one CPU; sender
processes post prebuilt batches (``--batch`` spans, shaped like Warden's real traces: the
client, router, Triton and model spans with their attributes and events) over keep-alive
connections for ``--seconds`` per case. Cases: protobuf into a counting sink, protobuf into the
chain joiner (what the trace pipeline does), gzip protobuf, and Triton-style JSON.
Target (issue 3): 20,000 spans/s.

    python benchmarks/otlp_receive.py --quick
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)
from prometheus_client import CollectorRegistry  # noqa: E402

from collectors.chains import ChainJoiner  # noqa: E402
from collectors.self_metrics import WardenMetrics  # noqa: E402
from collectors.traces import OtlpReceiver  # noqa: E402

NAMES = ("warden.client", "warden.router", "InferRequest", "mlp", "compute",
         "python_backend_execute", "proxy_inference_callable", "warden.model")


def build_protobuf(n_spans: int, seed: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "warden-replica-r0"
    ss = rs.scope_spans.add()
    t0 = 1_800_000_000_000_000_000
    for i in range(n_spans):
        trace, k = divmod(i, len(NAMES))
        s = ss.spans.add()
        s.trace_id = (seed * 10_000_000 + trace + 1).to_bytes(16, "big")
        s.span_id = (i + 1).to_bytes(8, "big")
        if k:
            s.parent_span_id = i.to_bytes(8, "big")
        s.name = NAMES[k]
        s.start_time_unix_nano = t0 + trace * 1_000_000 + k * 1000
        s.end_time_unix_nano = s.start_time_unix_nano + 5_000_000 - k * 1000
        for key, val in (("warden.model", "mlp"), ("warden.variant", "full"),
                         ("warden.replica", "r0")):
            a = s.attributes.add()
            a.key, a.value.string_value = key, val
        if NAMES[k] == "compute":
            for j, ev in enumerate(("COMPUTE_START", "COMPUTE_INPUT_END",
                                    "COMPUTE_OUTPUT_START", "COMPUTE_END")):
                e = s.events.add()
                e.name, e.time_unix_nano = ev, s.start_time_unix_nano + j * 1000
    return req.SerializeToString()


def build_json(n_spans: int, seed: int) -> bytes:
    """Triton's JSON shape (hex ids, string nanos, intValue as string)."""
    spans = []
    t0 = 1_800_000_000_000_000_000
    for i in range(n_spans):
        trace, k = divmod(i, 3)
        start = t0 + trace * 1_000_000 + k * 1000
        spans.append({
            "traceId": f"{seed * 10_000_000 + trace + 1:032x}", "spanId": f"{i + 1:016x}",
            "parentSpanId": f"{i:016x}" if k else "", "name": ("InferRequest", "mlp", "compute")[k],
            "kind": 2, "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 4_000_000),
            "attributes": [{"key": "triton.model_name", "value": {"stringValue": "mlp"}},
                           {"key": "triton.model_version", "value": {"intValue": "1"}}],
            "events": [{"name": "QUEUE_START", "timeUnixNano": str(start + 10)}],
        })
    doc = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "warden-replica-r0"}}]},
        "scopeSpans": [{"scope": {"name": "triton-server"}, "spans": spans}]}]}
    return json.dumps(doc).encode()


def sender(url: str, body: bytes, headers: dict[str, str], seconds: float, cpu: int | None,
           out: mp.Queue) -> None:
    import httpx

    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    sent = errors = 0
    with httpx.Client(timeout=10) as client:
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            r = client.post(url, content=body, headers=headers)
            if r.status_code == 200:
                sent += 1
            else:
                errors += 1
        active = time.monotonic() - started
    out.put((sent, errors, active))


def run_case(label: str, body: bytes, ctype: str, gz: bool, use_joiner: bool,
             n_spans: int, seconds: float, senders: int, sender_cpu: int | None) -> str:
    count = [0]
    lock = threading.Lock()
    joiner = ChainJoiner(settle_s=1.0, timeout_s=5.0)

    def counting(spans: list) -> None:
        with lock:
            count[0] += len(spans)

    def joining(spans: list) -> None:
        joiner.add(spans)
        with lock:
            count[0] += len(spans)

    metrics = WardenMetrics(CollectorRegistry())
    headers = {"Content-Type": ctype}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    with OtlpReceiver(joining if use_joiner else counting, metrics=metrics) as rx:
        procs = [ctx.Process(target=sender, args=(rx.url, body, headers, seconds, sender_cpu, q))
                 for _ in range(senders)]
        cpu0 = time.process_time()
        for p in procs:
            p.start()
        results = [q.get(timeout=seconds + 60) for _ in procs]
        for p in procs:
            p.join(timeout=10)
        cpu = time.process_time() - cpu0
    errors = sum(r[1] for r in results)
    wall = max(r[2] for r in results)  # the senders' active window, not their start-up
    spans = count[0]
    return (f"| {label:<28} | {n_spans:>5} | {len(body):>9,} | {spans:>9,} | "
            f"{spans / wall:>9,.0f} | {spans / max(cpu, 1e-9):>13,.0f} | {errors:>6} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 s per case")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--senders", type=int, default=2)
    args = ap.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cpus:
        os.sched_setaffinity(0, {cpus[0]})  # the receiver gets one core
    sender_cpu = cpus[1] if len(cpus) > 1 else None
    pb = build_protobuf(args.batch, 1)
    js = build_json(args.batch, 2)
    print(f"OTLP/HTTP receive: receiver pinned to CPU {cpus[0] if cpus else '?'}, "
          f"{args.senders} sender processes on CPU {sender_cpu}, {seconds:g} s per case")
    print("| case                         | spans | body B    | received  | spans/s   "
          "| spans/CPU-s   | errors |")
    print("|------------------------------|-------|-----------|-----------|-----------"
          "|---------------|--------|")
    for label, body, ctype, gz, join in (
        ("protobuf -> count", pb, "application/x-protobuf", False, False),
        ("protobuf -> joiner", pb, "application/x-protobuf", False, True),
        ("protobuf+gzip -> joiner", pb, "application/x-protobuf", True, True),
        ("Triton JSON -> joiner", js, "application/json", False, True),
    ):
        print(run_case(label, body, ctype, gz, join, args.batch, seconds, args.senders,
                       sender_cpu), flush=True)
    print("spans/CPU-s: spans divided by the receiver process's own CPU time (one core).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
