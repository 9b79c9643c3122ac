"""A minimal closed loop on the real lab, for the reroute scenario's test and benchmark.

Why it exists: the engine (``warden/engine.py``) that wires collectors, detectors and alert rules
to the runbook executor is being written elsewhere; until it lands, this drives the same pieces
with the least code that is still real. Every request is a real KServe v2 call through the real
router to real Triton replicas; the slowdown is the replica's own fault injection; the store is
the real SQLite store; the runbook, guards, audit and :class:`LocalFleet` are the production ones.

* :class:`ReplicaLatencyFeed` scrapes the router's ``/metrics`` (histogram
  ``warden_router_upstream_request_duration_seconds{replica}``) each ``interval_s`` and writes
  each replica's P99 over the last ``window_s`` to the store as ``router_replica_p99_seconds``;
  it also moves the load generator's finished requests into the store as chains (client-side
  latency: the SLI the user feels).
* :func:`detect` fires ``ReplicaP99Drift{model, replica}`` when one replica's P99 stays above the
  SLO for ``for_s`` while another replica is fine (a drift of one, not a saturation of all).
* :func:`timeline` measures, from what the store recorded, time to detect, to mitigate, to
  restore the SLO, and SLO-violation seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from warden.records import Alert, AlertStatus, RequestChain, Sample, freeze_labels

__all__ = ["ReplicaLatencyFeed", "ScenarioResult", "Timeline", "detect", "histogram_quantile",
           "run_reroute_scenario", "timeline"]

HIST = "warden_router_upstream_request_duration_seconds"
P99_SERIES = "router_replica_p99_seconds"


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` over cumulative ``(le, count)`` pairs (linear in a
    bucket); NaN without observations."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c
                                               else 0.0)
        prev_le, prev_c = le, c
    return prev_le


class ReplicaLatencyFeed:
    """Background thread: router histogram -> per-replica P99 samples; client results -> chains."""

    def __init__(self, router_url: str, store: Any, loadgen: Any, *, model: str,
                 window_s: float = 2.0, interval_s: float = 0.5) -> None:
        self.url = router_url.rstrip("/") + "/metrics"
        self.store = store
        self.loadgen = loadgen
        self.model = model
        self.window_s = window_s
        self.interval_s = interval_s
        self._snaps: list[tuple[float, dict[str, list[tuple[float, float]]]]] = []
        self._moved = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-feed", daemon=True)
        self.errors = 0

    def _scrape(self) -> dict[str, list[tuple[float, float]]]:
        text = httpx.get(self.url, timeout=2.0).text
        out: dict[str, list[tuple[float, float]]] = {}
        for fam in text_string_to_metric_families(text):
            if fam.name != HIST:
                continue
            for s in fam.samples:
                if s.name.endswith("_bucket"):
                    out.setdefault(s.labels["replica"], []).append(
                        (float(s.labels["le"]), float(s.value)))
        return out

    def step(self, now: float) -> None:
        snap = self._scrape()
        self._snaps.append((now, snap))
        while len(self._snaps) > 2 and self._snaps[1][0] <= now - self.window_s:
            self._snaps.pop(0)
        old = self._snaps[0][1]
        samples = []
        for replica, buckets in snap.items():
            before = dict(old.get(replica, []))
            delta = [(le, c - before.get(le, 0.0)) for le, c in buckets]
            p99 = histogram_quantile(0.99, delta)
            if math.isfinite(p99):
                samples.append(Sample(P99_SERIES, freeze_labels({"replica": replica,
                                                                 "model": self.model}),
                                      now, p99))
        results = self.loadgen.results[self._moved:]
        self._moved += len(results)
        chains = [RequestChain(trace_id=f"lg-{id(self)}-{self._moved - len(results) + i}",
                               ts=r.scheduled, model=r.model, variant="", replica="",
                               latency_s=r.latency_s, stages={}, error=not r.ok)
                  for i, r in enumerate(results)]
        if samples:
            self.store.write_samples(samples)
        if chains:
            self.store.write_chains(chains)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step(time.time())
            except Exception:  # a failed scrape is counted; the feed keeps going
                self.errors += 1

    def start(self) -> ReplicaLatencyFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def detect(store: Any, *, model: str, slo_s: float, now: float, for_s: float = 1.0,
           started: Callable[[], float] | None = None) -> Alert | None:
    """``ReplicaP99Drift`` for the worst replica above ``slo_s`` for ``for_s`` (others fine)."""
    df = store.series(P99_SERIES, {"model": model}, now - for_s - 0.01, now + 0.01)
    if df.empty:
        return None
    worst: tuple[float, str] | None = None
    for replica, g in df.groupby("replica"):
        if len(g) >= 2 and (g["value"] > slo_s).all():
            peak = float(g["value"].min())
            if worst is None or peak > worst[0]:
                worst = (peak, str(replica))
    healthy = [r for r, g in df.groupby("replica") if float(g["value"].iloc[-1]) <= slo_s]
    if worst is None or not healthy:
        return None
    return Alert(labels=freeze_labels({"alertname": "ReplicaP99Drift", "model": model,
                                       "replica": worst[1], "severity": "warning"}),
                 annotations=freeze_labels({"summary": f"{worst[1]} P99 {worst[0]:.3f}s > "
                                                       f"SLO {slo_s:.3f}s"}),
                 starts_at=started() if started else now, ends_at=None,
                 status=AlertStatus.FIRING)


@dataclass(frozen=True)
class Timeline:
    fault_at: float
    detected_s: float | None
    mitigated_s: float | None
    restored_s: float | None
    violation_s: float
    p99_before: float
    p99_fault: float
    p99_after: float

    def row(self) -> tuple[str, ...]:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.1f}"
        return (f(self.detected_s), f(self.mitigated_s), f(self.restored_s),
                f"{self.violation_s:.0f}", f"{self.p99_before * 1e3:.0f}",
                f"{self.p99_fault * 1e3:.0f}", f"{self.p99_after * 1e3:.0f}")


def timeline(store: Any, *, model: str, slo_s: float, fault_at: float, end: float,
             detected_at: float | None, mitigated_at: float | None, start: float,
             window_s: float = 2.0, step_s: float = 0.5, hold_s: float = 3.0) -> Timeline:
    """Time to detect/mitigate/restore and SLO-violation seconds, from the chains in the store.

    The SLI is the trailing ``window_s`` client P99, evaluated every ``step_s``; restored is the
    first evaluation after mitigation from which it stays under the SLO for ``hold_s``.
    """
    df = store.chains(start, end, model=model)
    ts = df["ts"].to_numpy(float)
    lat = df["latency_s"].to_numpy(float)

    def p99(a: float, b: float) -> float:
        sel = lat[(ts >= a) & (ts < b)]
        return float(np.quantile(sel, 0.99)) if len(sel) >= 5 else math.nan

    grid = np.arange(fault_at + window_s, end, step_s)
    values = [p99(t - window_s, t) for t in grid]
    violation = sum(step_s for v in values if math.isfinite(v) and v > slo_s)
    restored = None
    hold = max(1, int(round(hold_s / step_s)))
    if mitigated_at is not None:
        for i, t in enumerate(grid):
            if t < mitigated_at:
                continue
            run = [v for v in values[i:i + hold] if math.isfinite(v)]
            if len(run) == hold and all(v <= slo_s for v in run):
                restored = t - fault_at
                break
    return Timeline(
        fault_at=fault_at,
        detected_s=None if detected_at is None else detected_at - fault_at,
        mitigated_s=None if mitigated_at is None else mitigated_at - fault_at,
        restored_s=restored, violation_s=violation,
        p99_before=p99(start, fault_at),
        p99_fault=p99(fault_at, mitigated_at if mitigated_at else end),
        p99_after=p99(end - 4 * window_s, end))


@dataclass
class ScenarioResult:
    timeline: Timeline
    slo_s: float
    outcome: str
    audit: list[Any]
    requests: int
    errors: int


def run_reroute_scenario(fleet: Any, admin: Any, router_url: str, db_path: Any, *,
                         remediation: bool = True, rate: float = 60.0, slow: str | None = None,
                         factor: float = 5.0, warmup_s: float = 5.0, fault_s: float = 25.0,
                         slo_s: float | None = None, seed: int = 3) -> ScenarioResult:
    """One replica slowed ``factor``x under load; Warden's drift runbook reroutes (or not).

    The SLO, when not given, is 1.5x the healthy client P99 measured in the warm-up (at least
    250 ms), so the scenario means the same on a fast or a crowded machine.
    """
    from remediation.actions import builtin_registry
    from remediation.actuators.local import LocalFleet
    from remediation.applier import Applier
    from remediation.audit import AuditLog
    from remediation.executor import RunbookExecutor
    from remediation.guards import GuardConfig, Guards
    from remediation.runbook import load_runbooks
    from remediation.sli import StoreSli
    from serving.loadgen import LoadGenerator, LoadProfile
    from warden.store import Store

    slow = slow or fleet.replicas[-1].name
    store = Store(db_path)
    audit = AuditLog.open(db_path, clock=time.time)
    actuator = LocalFleet(fleet, admin)
    applier = Applier(actuator, Guards(GuardConfig(), clock=time.time), audit, clock=time.time)
    lg = LoadGenerator(router_url, LoadProfile(kind="constant", rate=rate), {"synth": 1.0},
                       seed=seed, timeout_s=5.0)
    feed = ReplicaLatencyFeed(router_url, store, lg, model="synth")
    control = fleet.get(slow).control_url
    start = time.time()
    lg.start()
    feed.start()
    outcome, detected_at, mitigated_at = "no alert", None, None
    try:
        time.sleep(warmup_s)
        if slo_s is None:
            base = store.chains(start + 1.0, time.time(), model="synth")["latency_s"]
            slo_s = max(1.5 * float(np.quantile(base, 0.99)) if len(base) >= 20 else 0.25, 0.25)
        executor = RunbookExecutor(load_runbooks(builtin_registry()), applier, StoreSli(store),
                                   clock=time.time, sleep=time.sleep,
                                   vars={"slo_p99_s": slo_s})
        fault_at = time.time()
        httpx.post(f"{control}/faults", json={"latency_factor": factor}, timeout=5).raise_for_status()
        end = fault_at + fault_s
        while time.time() < end:
            now = time.time()
            alert = detect(store, model="synth", slo_s=slo_s, now=now, started=lambda: fault_at)
            if alert is not None and detected_at is None:
                detected_at = now
                if remediation:
                    reports = executor.handle(alert)
                    outcome = reports[0].outcome if reports else "no runbook"
                    rows = [r for r in audit.rows(since=start)
                            if r.phase == "after" and r.status == "applied"]
                    mitigated_at = rows[0].ts if rows else None
                else:
                    outcome = "remediation off"
            time.sleep(0.25)
    finally:
        lg.stop()
        feed.stop()
        feed.step(time.time())
        httpx.delete(f"{control}/faults", timeout=5)
        admin.set_weights({r.name: 1.0 for r in fleet.replicas})
    tl = timeline(store, model="synth", slo_s=slo_s, fault_at=fault_at, end=end,
                  detected_at=detected_at, mitigated_at=mitigated_at, start=start + 1.0)
    summary = lg.summary()
    rows = audit.rows(since=start)
    store.close()
    return ScenarioResult(tl, slo_s, outcome, rows, summary.sent, summary.sent - summary.ok)
