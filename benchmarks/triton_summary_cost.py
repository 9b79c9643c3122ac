"""What Triton's latency summaries cost: throughput with and without ``summary_latencies=true``.

triton-inference-server/server issue 8561 reports that enabling the summary metrics costs about
a third of throughput. This starts two real PyTriton replicas (the ``mlp`` y=2x model of the
test fixtures, so Triton's own overhead dominates), one with and one without summaries, and
drives both AT THE SAME TIME with the same closed loop (``--threads`` HTTP clients each, one
request in flight per client) for ``--seconds``, ``--rounds`` times: on a shared machine the
noise from other work then falls on both alike, and the ratio of their throughputs is the cost.
``--sequential`` runs them one after the other instead.

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


def concurrent_rounds(threads: int, seconds: float, rounds: int) -> list[tuple[float, float]]:
    """(off req/s, on req/s) per round, both replicas loaded at once."""
    off = start_replica()
    on = start_replica(metrics_config=["summary_latencies=true"])
    out = []
    try:
        off.wait_ready(timeout_s=90)
        on.wait_ready(timeout_s=90)
        for r in range(rounds + 1):  # round 0 warms up
            res: dict[str, tuple[float, float]] = {}
            ts = [threading.Thread(target=lambda k=k, rep=rep: res.__setitem__(
                k, closed_loop(rep.http_url, threads, seconds if r else 1.0)))
                for k, rep in (("off", off), ("on", on))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if r:
                out.append((res["off"][0], res["on"][0]))
                print(f"| {r} | {res['off'][0]:,.0f} | {res['off'][1]:.2f} | "
                      f"{res['on'][0]:,.0f} | {res['on'][1]:.2f} | "
                      f"{res['on'][0] / res['off'][0]:.3f} |", flush=True)
    finally:
        off.stop()
        on.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="1 round of 5 s each")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--sequential", action="store_true")
    args = ap.parse_args()
    seconds, rounds = (5.0, 2) if args.quick else (args.seconds, args.rounds)
    if not args.sequential:
        print(f"Triton summary cost: two replicas loaded at once, {args.threads} closed-loop HTTP "
              f"clients each, {seconds:g} s per round, model mlp (y=2x, dynamic batching)")
        print("| round | off req/s | off P50 ms | on req/s | on P50 ms | on/off |\n"
              "|---|---|---|---|---|---|")
        res = concurrent_rounds(args.threads, seconds, rounds)
        ratio = statistics.median(on / off for off, on in res)
        print(f"\nmedian throughput ratio with summaries / without: {ratio:.3f} "
              f"({(1 - ratio) * 100:+.1f}% cost)")
        return 0
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
