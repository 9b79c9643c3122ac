"""Traffic surge to twice capacity on the real lab, with the autoscaler driving real replicas.

Real parts: Triton replicas (dynamic batching off, so a replica's capacity is one request per
``per_batch_ms`` and utilisation is exactly its busy fraction), the router process, Poisson
traffic through it, the real :class:`~collectors.triton.TritonMetricsCollector` writing the store,
:class:`~remediation.actuators.local.LocalFleet` starting and stopping real replicas (the cold
start is whatever Triton takes here). Signals are read back from the store: utilisation per
replica = ``triton_request_success_per_second x triton_compute_infer_duration_seconds``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from remediation.autoscaler import AutoscalerConfig, Signals

__all__ = ["SurgeResult", "run_surge_scenario", "store_signals"]


def store_signals(store: Any, model: str, now: float, window_s: float = 3.0) -> Signals:
    """Model utilisation (mean over replicas), queue time and load from the store's samples."""
    rate = store.series("triton_request_success_per_second", {"model": model}, now - window_s,
                        now + 0.01)
    infer = store.series("triton_compute_infer_duration_seconds", {"model": model},
                         now - window_s, now + 0.01)
    queue = store.series("triton_queue_duration_seconds", {"model": model}, now - window_s,
                         now + 0.01)
    if rate.empty or infer.empty:
        return Signals(None)
    busy = []
    load = 0.0
    for replica, g in rate.groupby("replica"):
        r = float(g.groupby("variant")["value"].last().sum()) if "variant" in g else float(
            g["value"].iloc[-1])
        load += r
        gi = infer[infer["replica"] == replica]
        if gi.empty:
            continue
        busy.append(min(r * float(gi["value"].iloc[-1]), 1.5))
    if not busy:
        return Signals(None)
    q = float(queue["value"].mean()) if not queue.empty else None
    return Signals(float(np.mean(busy)), queue_s=q, load_rps=load)


@dataclass
class SurgeResult:
    policy: str
    violation_s: float
    detect_s: float | None
    mitigate_s: float | None
    restore_s: float | None
    actions: int
    max_replicas: int
    end_replicas: int
    reversals: int
    requests: int
    errors: int
    errors_before_surge: int


def run_surge_scenario(lab: Any, db_path: Any, policy: str, config: AutoscalerConfig | None, *,
                       base_rps: float, surge_rps: float, surge_at: float, surge_len: float,
                       duration_s: float, slo_s: float, seed: int = 1) -> SurgeResult:
    """Base load, a surge, base load again; ``config=None`` means remediation off."""
    from prometheus_client import CollectorRegistry

    from collectors.self_metrics import WardenMetrics
    from collectors.triton import TritonMetricsCollector
    from remediation.actuators.local import LocalFleet
    from remediation.applier import Applier
    from remediation.audit import AuditLog
    from remediation.autoscaler import Autoscaler
    from remediation.closed_loop import ReplicaLatencyFeed
    from remediation.guards import GuardConfig, Guards
    from serving.loadgen import LoadGenerator, LoadProfile
    from warden.store import Store

    store = Store(db_path)
    audit = AuditLog.open(db_path, clock=time.time)
    fleet, admin = lab.fleet, lab.admin
    actuator = LocalFleet(fleet, admin)
    guards = Guards(GuardConfig(max_replicas=5, cooldown_s=0, max_actions_per_hour=60),
                    clock=time.time)
    applier = Applier(actuator, guards, audit, clock=time.time)
    collector = TritonMetricsCollector({}, metrics=WardenMetrics(CollectorRegistry()))
    # burst profile: the surge is the last surge_len seconds of each burst_every_s period
    profile = LoadProfile(kind="burst", rate=base_rps, burst_factor=surge_rps / base_rps,
                          burst_every_s=surge_at + surge_len, burst_len_s=surge_len)
    lg = LoadGenerator(lab.router_url, profile, {"synth": 1.0}, seed=seed, timeout_s=5.0,
                       max_in_flight=512)
    feed = ReplicaLatencyFeed(lab.router_url, store, lg, model="synth")
    stop = threading.Event()

    def collect() -> None:
        while not stop.wait(1.0):
            try:
                collector.set_targets({r.name: r.metrics_url for r in fleet.replicas})
                store.write_samples(collector.collect(time.time()))
            except Exception:  # a scrape during a scale must not end the run
                pass

    scaler = None
    if config is not None:
        scaler = Autoscaler("synth", config, applier,
                            lambda now: store_signals(store, "synth", now), clock=time.time,
                            name=f"autoscaler-{policy}")
    start = time.time()
    collector_thread = threading.Thread(target=collect, daemon=True)
    lg.start()
    feed.start()
    collector_thread.start()
    counts = [len(fleet.replicas)]
    try:
        while time.time() - start < duration_s:
            if scaler is not None:
                scaler.tick()
            counts.append(len(fleet.replicas))
            time.sleep(0.5)
    finally:
        stop.set()
        lg.stop()
        feed.stop()
        feed.step(time.time())
        collector_thread.join(timeout=5)
    end = time.time()
    surge_t = start + surge_at
    df = store.chains(start + 2, end, model="synth")
    ts, lat = df["ts"].to_numpy(float), df["latency_s"].to_numpy(float)
    grid = np.arange(start + 4, end, 1.0)
    bad = []
    for t in grid:
        sel = lat[(ts >= t - 2) & (ts < t)]
        bad.append(len(sel) >= 5 and float(np.quantile(sel, 0.99)) > slo_s)
    violation = float(sum(bad))
    restore = None
    for i, t in enumerate(grid):
        if t >= surge_t and any(bad[:i]) and i + 3 <= len(bad) and not any(bad[i:i + 3]):
            restore = t - surge_t
            break
    applied = [r for r in audit.rows(since=start) if r.phase == "after" and r.status == "applied"]
    ups = [r.ts for r in applied if r.ts >= surge_t]
    detect = None
    if scaler is not None:
        first = [d[0] for d in scaler.decisions if d[0] >= surge_t and d[2] > d[1]]
        detect = first[0] - surge_t if first else None
    dirs, prev, reversals = [], counts[0], 0
    for c in counts[1:]:
        if c != prev:
            dirs.append(1 if c > prev else -1)
            prev = c
    reversals = sum(1 for a, b in zip(dirs, dirs[1:]) if a != b)
    summary = lg.summary()
    before = sum(1 for r in lg.results if r.scheduled < surge_t and not r.ok)
    store.close()
    return SurgeResult(policy, violation, detect, (ups[0] - surge_t) if ups else None, restore,
                       len(applied), max(counts), counts[-1], reversals, summary.sent,
                       summary.sent - summary.ok, before)


def reset_fleet(lab: Any, n: int) -> None:
    """Put the fleet back to ``n`` replicas between runs (not counted as actions)."""
    if len(lab.fleet.replicas) != n:
        lab.fleet.scale(n)
    lab.admin.sync_replicas({r.name: r.url for r in lab.fleet.replicas})
    lab.admin.set_variant_split("synth", 0.0)
