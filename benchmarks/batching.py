"""Dynamic batching on against off at saturation, same run, on the synthetic model.

Two real Triton replicas start side by side, one with Triton's dynamic batcher on (max batch
64, preferred 16/32/64, 2 ms queue delay) and one with batching off; each is then saturated by
32 closed-loop clients, alternating on/off for each repeat so drift hits both alike. The
synthetic model costs ``per_batch_ms + per_item_ms * batch`` (4 ms + 0.05 ms/item by default),
the shape of a GPU kernel whose cost is mostly per launch.

    python benchmarks/batching.py [--seconds 5] [--repeats 3] [--clients 32]
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

from serving.fleet import Fleet, FleetConfig  # noqa: E402
from serving.replica import BatchingConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="warden-batching-"))
    on = Fleet(FleetConfig(models=["synth"]), home / "on")
    off = Fleet(FleetConfig(models=["synth"], batching=BatchingConfig(enabled=False)),
                home / "off")
    try:
        (r_on,), (r_off,) = on.start(1), off.start(1)
        results: dict[str, list[tuple[float, float, float]]] = {"on": [], "off": []}
        for i in range(args.repeats):
            for label, replica in (("on", r_on), ("off", r_off)):
                rps, lat, errors = saturate(replica.url, "synth", args.clients, args.seconds)
                p50, p99 = np.percentile(lat, [50, 99]) * 1e3
                results[label].append((rps, p50, p99))
                print(f"  repeat {i + 1}/{args.repeats} batching {label:<3}: {rps:7.0f} req/s "
                      f"P50 {p50:6.1f} ms P99 {p99:6.1f} ms errors {errors}", file=sys.stderr)
    finally:
        on.stop_all()
        off.stop_all()
    print(f"\n{'batching':<9} {'req/s (median)':>15} {'P50 ms':>8} {'P99 ms':>8}")
    med = {}
    for label in ("on", "off"):
        rps = statistics.median(r[0] for r in results[label])
        med[label] = rps
        p50 = statistics.median(r[1] for r in results[label])
        p99 = statistics.median(r[2] for r in results[label])
        print(f"{label:<9} {rps:>15.0f} {p50:>8.1f} {p99:>8.1f}")
    print(f"\nthroughput ratio on/off: {med['on'] / med['off']:.2f}x "
          f"({args.clients} clients, {args.seconds:g} s x {args.repeats} repeats)")


if __name__ == "__main__":
    main()
