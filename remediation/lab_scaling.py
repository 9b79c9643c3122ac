"""Scaling scenarios on the real lab: the autoscaler driving real replicas under shaped traffic.

Two shapes: a surge to twice capacity (:func:`run_surge_scenario`) and a compressed diurnal day
(:func:`run_diurnal_scenario`, where the predictive scaler is seeded from the store's history of
the same traffic). Both share :func:`run_scenario`, so policies are compared on identical load.

Real parts: Triton replicas (dynamic batching off, so a replica's capacity is one request per
``per_batch_ms`` and utilisation is exactly its busy fraction), the router process, Poisson
traffic through it, the real :class:`~collectors.triton.TritonMetricsCollector` writing the store,
:class:`~remediation.actuators.local.LocalFleet` starting and stopping real replicas (the cold
start is whatever Triton takes here, plus ``FleetConfig.weights_load_s`` where an experiment
models a large model's weight load). Signals are read back from the store: utilisation per
replica = ``triton_request_success_per_second x triton_compute_infer_duration_seconds``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from remediation.autoscaler import AutoscalerConfig
from remediation.store_signals import store_signals

__all__ = ["ScenarioResult", "load_history", "reset_fleet", "run_diurnal_scenario",
           "run_scenario", "run_surge_scenario"]


@dataclass
class ScenarioResult:
    policy: str
    violation_s: float
    detect_s: float | None
    mitigate_s: float | None
    restore_s: float | None
    actions: int
    max_replicas: int
    end_replicas: int
    reversals: int
    replica_s: float
    requests: int
    errors: int
    errors_before_surge: int
    started: float
    ended: float
    #: what the scaler decided when it changed its mind: (s since start, current, desired, why)
    changes: list[tuple[float, int, int, str]] = field(default_factory=list)
    #: replicas each second (the fleet's count, ready or not)
    replicas_per_s: list[int] = field(default_factory=list)


def load_history(store: Any, model: str, start: float, end: float, bucket_s: float
                 ) -> list[float]:
    """The model's demand (requests/s served plus backlog growth, summed over replicas) per
    ``bucket_s``, from the store.

    Why from the store: the predictive scaler forecasts from what the fleet recorded, as it
    would from yesterday's traffic in production; a bucket without samples carries the last.
    """
    rate = store.series("triton_request_success_per_second", {"model": model}, start, end)
    if rate.empty:
        return []
    per_second = _per_second_total(rate)
    pending = store.series("triton_pending_requests", {"model": model}, start, end)
    if not pending.empty:  # demand, not only what was served: add the backlog's growth
        growth = _per_second_total(pending).diff().clip(lower=0.0).fillna(0.0)
        per_second = per_second.add(growth, fill_value=0.0)
    out: list[float] = []
    for b in range(int((end - start) // bucket_s)):
        lo = int(start + b * bucket_s)
        sel = per_second[(per_second.index >= lo) & (per_second.index < lo + bucket_s)]
        out.append(float(sel.mean()) if len(sel) else (out[-1] if out else 0.0))
    return out


def _per_second_total(series: Any) -> Any:
    """Sum over replicas (and variants) of each one's mean value in each whole second."""
    keys = ["sec", "replica"] + (["variant"] if "variant" in series else [])
    per = series.assign(sec=(series["ts"] // 1.0)).groupby(keys)["value"].mean()
    return per.groupby(level="sec").sum()


def run_surge_scenario(lab: Any, db_path: Any, policy: str, config: AutoscalerConfig | None, *,
                       base_rps: float, surge_rps: float, surge_at: float, surge_len: float,
                       duration_s: float, slo_s: float, seed: int = 1) -> ScenarioResult:
    """Base load, a surge, base load again; ``config=None`` means remediation off."""
    from serving.loadgen import LoadProfile

    profile = LoadProfile(kind="surge", rate=base_rps, burst_factor=surge_rps / base_rps,
                          surge_at_s=surge_at, burst_len_s=surge_len)
    return run_scenario(lab, db_path, policy, config, profile, event_at=surge_at,
                        duration_s=duration_s, slo_s=slo_s, seed=seed)


def run_diurnal_scenario(lab: Any, db_path: Any, policy: str, config: AutoscalerConfig | None,
                         *, mean_rps: float, amplitude: float, period_s: float,
                         duration_s: float, slo_s: float, history: list[float] | None = None,
                         seed: int = 1, score_from_s: float = 0.0) -> ScenarioResult:
    """A compressed day (sine around ``mean_rps``, starting at the mean, rising);
    ``history``: load buckets to seed the predictive scaler with (see :func:`load_history`)."""
    from serving.loadgen import LoadProfile

    profile = LoadProfile(kind="diurnal", rate=mean_rps, amplitude=amplitude,
                          period_s=period_s)
    return run_scenario(lab, db_path, policy, config, profile, event_at=0.0,
                        duration_s=duration_s, slo_s=slo_s, seed=seed, history=history,
                        align_s=(config.bucket_s if config is not None else None),
                        score_from_s=score_from_s)


def run_scenario(lab: Any, db_path: Any, policy: str, config: AutoscalerConfig | None,
                 profile: Any, *, event_at: float, duration_s: float, slo_s: float,
                 seed: int = 1, history: list[float] | None = None,
                 align_s: float | None = None, score_from_s: float = 0.0) -> ScenarioResult:
    """Drive ``profile`` through the router for ``duration_s`` with the autoscaler (``None``:
    remediation off) ticking every 0.5 s in its own thread; score from the store's chains. ``event_at``: seconds
    after the start from which detection, mitigation and restore are timed. ``align_s``: start
    on a multiple of it (the forecast's bucket), so seeded history and live buckets line up.
    ``score_from_s``: SLO-violation seconds count from here (e.g. the second compressed day)."""
    from prometheus_client import CollectorRegistry

    from collectors.self_metrics import WardenMetrics
    from collectors.triton import TritonMetricsCollector
    from remediation.actuators.local import LocalFleet
    from remediation.applier import Applier
    from remediation.audit import AuditLog
    from remediation.autoscaler import Autoscaler
    from remediation.closed_loop import ReplicaLatencyFeed
    from remediation.guards import GuardConfig, Guards
    from serving.loadgen import LoadGenerator
    from warden.store import Store

    store = Store(db_path)
    audit = AuditLog.open(db_path, clock=time.time)
    fleet, admin = lab.fleet, lab.admin
    actuator = LocalFleet(fleet, admin)
    guards = Guards(GuardConfig(max_replicas=5, cooldown_s=0, max_actions_per_hour=60),
                    clock=time.time)
    applier = Applier(actuator, guards, audit, clock=time.time)
    collector = TritonMetricsCollector({}, metrics=WardenMetrics(CollectorRegistry()))
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
        if scaler.predictive is not None and history:
            scaler.predictive.seed(history)
    if align_s:
        time.sleep(align_s - time.time() % align_s)
    start = time.time()
    collector_thread = threading.Thread(target=collect, daemon=True)
    lg.start()
    feed.start()
    collector_thread.start()
    counts = [len(fleet.replicas)]

    def autoscale() -> None:  # its own thread: a scale-out blocks through the cold start
        while scaler is not None and not stop.wait(0.5):
            scaler.tick()

    scaler_thread = threading.Thread(target=autoscale, daemon=True)
    scaler_thread.start()
    try:
        while time.time() - start < duration_s:
            counts.append(len(fleet.replicas))
            time.sleep(0.5)
    finally:
        stop.set()
        lg.stop()
        scaler_thread.join(timeout=90)  # a scale in flight finishes (and is audited)
        feed.stop()
        feed.step(time.time())
        collector_thread.join(timeout=5)
    end = time.time()
    surge_t = start + event_at
    df = store.chains(start + 2, end, model="synth")
    ts, lat = df["ts"].to_numpy(float), df["latency_s"].to_numpy(float)
    grid = np.arange(start + 4, min(end, start + duration_s) + 1e-6, 1.0)
    bad = []
    for t in grid:
        sel = lat[(ts >= t - 2) & (ts < t)]
        bad.append(len(sel) >= 5 and float(np.quantile(sel, 0.99)) > slo_s)
    violation = float(sum(b for t, b in zip(grid, bad) if t >= start + score_from_s))
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
    dirs, prev = [], counts[0]
    for c in counts[1:]:
        if c != prev:
            dirs.append(1 if c > prev else -1)
            prev = c
    reversals = sum(1 for a, b in zip(dirs, dirs[1:]) if a != b)
    summary = lg.summary()
    before = sum(1 for r in lg.results if r.scheduled < surge_t and not r.ok)
    store.close()
    return ScenarioResult(policy, violation, detect, (ups[0] - surge_t) if ups else None,
                          restore, len(applied), max(counts), counts[-1], reversals,
                          0.5 * sum(counts[1:]), summary.sent, summary.sent - summary.ok,
                          before, start, end,
                          [(round(d[0] - start, 1), d[1], d[2], d[3]) for d in
                           (scaler.decisions if scaler is not None else []) if d[1] != d[2]],
                          counts[1::2])


def reset_fleet(lab: Any, n: int) -> None:
    """Put the fleet back to ``n`` replicas between runs (not counted as actions)."""
    if len(lab.fleet.replicas) != n:
        lab.fleet.scale(n)
    lab.admin.sync_replicas({r.name: r.url for r in lab.fleet.replicas})
    lab.admin.set_variant_split("synth", 0.0)
