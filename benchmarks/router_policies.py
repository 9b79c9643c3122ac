"""P99 with one of three replicas slowed 5x, under each router policy, same run.

Starts the lab with three real Triton replicas (synthetic model) and the router in its own
process, then for each phase and policy sends the same open-loop Poisson traffic through the
router and records client-side P50/P99. Phases: all healthy, then replica r2 slowed 5x (the
replica's ``latency_factor`` fault: its model code takes five times as long). Policies are
interleaved within each repeat so drift hits all alike; the table gives medians over repeats.

    python benchmarks/router_policies.py [--rate 120] [--seconds 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed one

from serving.loadgen import LoadGenerator, LoadProfile  # noqa: E402
from serving.replica_control import ReplicaControl  # noqa: E402
from warden.config import load_config  # noqa: E402
from warden.lab import Lab  # noqa: E402

POLICIES = ("round_robin", "least_outstanding", "peak_ewma")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=120.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=8.0, help="per policy and phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="warden-policies-"))
    config = load_config(home=home, lab={"replicas": 3, "router_port": 0},
                         fleet={"models": ["synth"]})
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with Lab(config, with_traffic=False, with_telemetry=False) as lab:
        assert lab.admin is not None
        slow = lab.fleet.replicas[2]
        for phase, fault in (("healthy", None), ("r2 slowed 5x", {"latency_factor": 5.0})):
            if fault:
                ReplicaControl(slow.control_url).set_faults(**fault)
            for rep in range(args.repeats):
                for policy in POLICIES:
                    lab.admin.set_policy(policy)
                    LoadGenerator(lab.router_url, LoadProfile(rate=args.rate),
                                  seed=rep).run(args.warmup)
                    s = LoadGenerator(lab.router_url, LoadProfile(rate=args.rate),
                                      seed=100 + rep).run(args.seconds)
                    results.setdefault((phase, policy), []).append((s.p50_ms, s.p99_ms))
                    print(f"  {phase:<13} {policy:<18} repeat {rep + 1}: P50 {s.p50_ms:6.1f} ms "
                          f"P99 {s.p99_ms:6.1f} ms errors {s.errors}", file=sys.stderr)
        ReplicaControl(slow.control_url).clear_faults()
    healthy_p99 = statistics.median(
        p for pol in POLICIES for _, p in results[("healthy", pol)])
    print(f"\n{args.rate:g} req/s open loop, {args.seconds:g} s per cell, median of "
          f"{args.repeats} repeats; 3 replicas, synthetic model")
    print(f"{'phase':<14} {'policy':<18} {'P50 ms':>7} {'P99 ms':>7} {'P99 / healthy P99':>18}")
    for (phase, policy), vals in results.items():
        p50 = statistics.median(v[0] for v in vals)
        p99 = statistics.median(v[1] for v in vals)
        print(f"{phase:<14} {policy:<18} {p50:>7.1f} {p99:>7.1f} {p99 / healthy_p99:>17.2f}x")
    print(f"\nall-healthy P99 (median over policies): {healthy_p99:.1f} ms")


if __name__ == "__main__":
    main()
