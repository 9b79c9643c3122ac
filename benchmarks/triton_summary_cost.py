"""What Triton's latency summaries cost: throughput with and without ``summary_latencies=true``.

triton-inference-server/server issue 8561 reports that enabling the summary metrics costs about
a third of throughput. This starts one real PyTriton replica (the ``mlp`` y=2x model of the
test fixtures, so Triton's own overhead dominates) per configuration, alternating
off/on ``--rounds`` times, drives the same closed loop (``--threads`` HTTP clients, one request
in flight each) for ``--seconds``, and prints the throughput of each run and the on/off ratio.

    python benchmarks/triton_summary_cost.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tests.fixtures.capture_triton import start_replica  # noqa: E402


def closed_loop(url: str, threads: int, seconds: float) -> tuple[float, float]:
    """Requests/s and P50 latency (ms) of ``threads`` clients, each one request at a time."""
    import tritonclient.http as httpclient

    counts = [0] * threads
    lat: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        client = httpclient.InferenceServerClient(url)
        inp = httpclient.InferInput("x", [1, 16], "FP32")
        inp.set_data_from_numpy(np.ones((1, 16), dtype=np.float32))
        while time.monotonic() < stop:
            t = time.perf_counter()
            client.infer("mlp", [inp])
            lat[k].append(time.perf_counter() - t)
            counts[k] += 1
        client.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    all_lat = sorted(x for xs in lat for x in xs)
    return sum(counts) / wall, 1000 * all_lat[len(all_lat) // 2] if all_lat else float("nan")


def one_run(summary: bool, threads: int, seconds: float, warmup_s: float) -> tuple[float, float]:
    cfg = ["summary_latencies=true"] if summary else None
    rep = start_replica(metrics_config=cfg)
    try:
        rep.wait_ready(timeout_s=90)
        closed_loop(rep.http_url, threads, warmup_s)
        return closed_loop(rep.http_url, threads, seconds)
    finally:
        rep.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="1 round of 5 s each")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()
    seconds, rounds = (5.0, 1) if args.quick else (args.seconds, args.rounds)
    print(f"Triton summary cost: {args.threads} closed-loop HTTP clients, {seconds:g} s per run, "
          f"{rounds} round(s), model mlp (y=2x, dynamic batching)")
    print("| run | summary_latencies | req/s | P50 ms |\n|---|---|---|---|")
    rates: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for summary in (False, True):
            rps, p50 = one_run(summary, args.threads, seconds, warmup_s=1.0)
            rates[summary].append(rps)
            print(f"| {r + 1} | {str(summary).lower()} | {rps:,.0f} | {p50:.2f} |", flush=True)
    off, on = statistics.mean(rates[False]), statistics.mean(rates[True])
    print(f"\nthroughput with summaries / without: {on / off:.3f} "
          f"({(1 - on / off) * 100:+.1f}% cost)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
