"""Time from fault start to alert on the real lab, per fault kind (issue 4; target < 10 s).

One lab (2 replicas of ``synth``, constant traffic, 1 s engine tick, remediation off) takes
turns: a fault goes on one replica, the time until the matching alert fires *on that replica*
is read from the store's ``alerts`` table, the fault is cleared, and the lab rests until the
alert resolves before the next trial. The faults are the lab tests' own:

* ``latency x2``: extra latency equal to the replica's measured median (its latency doubles);
* ``jitter``: 10% of executions stall for an exponential delay (mean 2 x the replica's
  P90 - P50, at least 40 ms), so the median holds and the tail widens.

Also counted: alerts on the *other* replica during a trial (false pages). Prints a table of
medians and maxima over ``--repeats`` trials, and the load average (the machine has 2 cores).

Usage: ``python benchmarks/detection_latency.py [--repeats 3] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.replica_control import ReplicaControl  # noqa: E402
from warden.config import load_config  # noqa: E402
from warden.lab import Lab  # noqa: E402
from warden.store import Store  # noqa: E402

TARGET_S = 10.0
TIMEOUT_S = 45.0
ALERT_FOR = {"latency x2": "ReplicaP99Drift", "jitter": "ReplicaLatencyJitter"}


def _recent(store: Store, replica: str, seconds: float) -> np.ndarray:
    ch = store.query("SELECT latency_s FROM chains WHERE replica = ? AND ts > ? AND error = 0",
                     (replica, time.time() - seconds))
    return ch.latency_s.to_numpy()


def _fault_for(kind: str, lat: np.ndarray, normal_dx_s: float) -> dict[str, float]:
    """Latency x2: the median added. Jitter: 10% of requests stall 5x the replica's learned
    normal |successive difference| (its 0.9 quantile), 50-150 ms, as tests/test_lab_detection.py
    does, so the fault is equally visible on a quiet and on a loaded machine."""
    if kind == "latency x2":
        return {"extra_latency_ms": float(np.median(lat)) * 1e3}
    return {"jitter_ms": min(max(50.0, 5e3 * normal_dx_s), 150.0), "jitter_prob": 0.1}


def _firing(store: Store, since: float) -> list[tuple[float, str, str]]:
    rows = store.query("SELECT ts, alertname, json_extract(labels, '$.replica') AS replica "
                       "FROM alerts WHERE status = 'firing' AND ts >= ?", (since,))
    return list(rows.itertuples(index=False, name=None))


def _quiet(store: Store, timeout_s: float = 40.0) -> None:
    """Wait until no detection alert is firing (the last one resolved)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = store.query("SELECT fingerprint, status FROM alerts WHERE id IN "
                           "(SELECT MAX(id) FROM alerts GROUP BY fingerprint)")
        if (last.status != "firing").all():
            return
        time.sleep(1.0)


def trial(lab: Lab, store: Store, kind: str, victim: str) -> tuple[float | None, int]:
    """Inject one fault; seconds until its alert fired on the victim (None: not within the
    timeout), and how many detection alerts fired on other replicas meanwhile."""
    control = ReplicaControl(lab.fleet.get(victim).control_url)
    variance = lab.telemetry.detection.keys[("synth", victim)].detectors["variance"]
    fault = _fault_for(kind, _recent(store, victim, 10), variance.baseline_.lookup(time.time())[2])
    t0 = time.time()
    control.set_faults(**fault)
    detected: float | None = None
    try:
        while time.time() - t0 < TIMEOUT_S and detected is None:
            time.sleep(0.5)
            hit = [ts for ts, name, rep in _firing(store, t0)
                   if name == ALERT_FOR[kind] and rep == victim]
            detected = min(hit) - t0 if hit else None
    finally:
        control.clear_faults()
    others = sum(1 for _, _, rep in _firing(store, t0) if rep != victim)
    return detected, others


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one trial per fault kind")
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    home = Path(tempfile.mkdtemp(prefix="warden-detect-bench-"))
    config = load_config(home=home, lab={
        "replicas": 2, "router_port": 0, "router_policy": "round_robin",
        "traffic": {"kind": "constant", "rate": 60}, "traffic_models": {"synth": 1}},
        fleet={"models": ["synth"]}, remediation={"enabled": False})
    rng = random.Random(7)
    results: dict[str, list[tuple[float | None, int]]] = {k: [] for k in ALERT_FOR}
    with Lab(config) as lab:
        store = Store(config.db_path, readonly=True)
        print("warming up 30 s (detectors need a few hundred requests per replica)", flush=True)
        time.sleep(30)
        for i in range(repeats):
            for kind in ALERT_FOR:
                victim = rng.choice(["r0", "r1"])
                got = trial(lab, store, kind, victim)
                results[kind].append(got)
                shown = "none" if got[0] is None else f"{got[0]:.1f} s"
                print(f"  trial {i + 1}/{repeats} {kind:<10} on {victim}: alert after {shown}, "
                      f"alerts elsewhere {got[1]}", flush=True)
                _quiet(store)
    print(f"\nfault -> alert on the real lab (tick 1 s, 60 req/s over 2 replicas), "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'fault':<12}{'alert':<22}{'trials':>7}{'detected':>9}{'median s':>10}"
          f"{'max s':>8}{'<10 s':>7}{'false':>7}")
    for kind, rows in results.items():
        times = [t for t, _ in rows if t is not None]
        med = f"{np.median(times):.1f}" if times else "-"
        worst = f"{max(times):.1f}" if times else "-"
        within = sum(t < TARGET_S for t in times)
        print(f"{kind:<12}{ALERT_FOR[kind]:<22}{len(rows):>7}{len(times):>9}{med:>10}"
              f"{worst:>8}{within:>7}{sum(o for _, o in rows):>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
