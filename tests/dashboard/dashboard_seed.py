"""A small, fully known Warden store for the dashboard tests (written through the real APIs).

Everything the pages show is derived from the lists kept in :class:`Seeded`, so the tests can
recompute every number independently of the dashboard's own queries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediation.audit import AuditLog, AuditRow
from remediation.changes import Change
from warden.alerting.outbox import Outbox
from warden.alerting.payload import build_webhook_payload
from warden.alerting.silences import SilenceStore
from warden.alerting.webhook import DeliveryResult
from warden.db import open_db
from warden.records import (
    Alert,
    AlertStatus,
    Anomaly,
    GpuReading,
    RequestChain,
    Sample,
    Span,
    freeze_labels,
)
from warden.store import Store

T0 = 1_700_000_000.0
DURATION_S = 600
REPLICAS = ("r0", "r1", "r2")
MODELS = ("synth", "mlp")


@dataclass
class Seeded:
    db: Path
    home: Path
    samples: list[Sample] = field(default_factory=list)
    chains: list[RequestChain] = field(default_factory=list)
    gpu: list[GpuReading] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    journals: list[dict[str, Any]] = field(default_factory=list)
    span_trace: str = ""

    @property
    def end(self) -> float:
        return T0 + DURATION_S - 1


def _gpu(ts: float, device: str, replica: str, simulated: bool, i: int) -> GpuReading:
    hot = ts >= T0 + DURATION_S - 60 and device == "gpu0"
    return GpuReading(
        ts=ts, device=device, simulated=simulated, temperature_c=60.0 + (25.0 if hot else 0.0)
        + i % 3, power_w=150.0 + i % 10, power_limit_w=300.0,
        sm_clock_mhz=1200.0 if hot else 1800.0, sm_clock_max_mhz=1800.0, mem_clock_mhz=5000.0,
        utilization=0.5 + (i % 5) / 10, memory_used_bytes=4 * 2**30, memory_total_bytes=16 * 2**30,
        throttle_reasons=("sw_thermal_slowdown",) if hot else (),
        alloc_allocated_bytes=2 * 2**30, alloc_reserved_bytes=3 * 2**30, alloc_retries=0,
        alloc_ooms=0, replica=replica)


def baselines_table(db: Path, rows: list[tuple[Any, ...]]) -> None:
    """Add the anomaly part's optional ``baselines`` table (as the dashboard expects it)."""
    store = Store(db)
    store.ensure_table("baselines", "CREATE TABLE IF NOT EXISTS baselines (series TEXT, "
                       "labels TEXT, ts REAL, lower REAL, median REAL, upper REAL)")
    store.insert_rows("baselines", ("series", "labels", "ts", "lower", "median", "upper"), rows)
    store.close()


def write_audit(conn: Any) -> list[AuditRow]:
    """Remediation's own audit writer (:class:`remediation.audit.AuditLog`), phase by phase.

    Five executions: one applied and verified, one applied, failed its verify and rolled back,
    one refused by a guard, one whose actuator failed, one stopped mid-action (a ``before`` row
    only). Returns the rows as remediation's reader gives them back.
    """
    now = [0.0]
    log = AuditLog(conn, clock=lambda: now[0])

    def at(t: float, **kw: Any) -> None:
        now[0] = T0 + t
        log.record(**kw)

    scale = Change("scale", "synth", {"replicas": 3}, inverse=Change("scale", "synth",
                                                                      {"replicas": 2}))
    lite = Change("variant", "mlp", {"variant": "lite", "fraction": 0.3},
                  inverse=Change("variant", "mlp", {"variant": "lite", "fraction": 0.0},
                                 reduces_capacity=True))
    state = {"models": {"synth": {"replicas": 2, "healthy": 2}}}
    e1 = dict(runbook="p99_drift", step="scale_out", change=scale, key="e1/scale_out/0",
              execution="e1")
    at(505, **e1, phase="before", status="applying", evidence={"p99_ms": 200, "state": state})
    at(506, **e1, phase="after", status="applied", result=scale.describe())
    at(530, runbook="p99_drift", step="verify", change=scale, key="e1", phase="verify",
       status="verified", evidence={"sli": "p99_s", "value": 0.031, "ok": True},
       result="p99_s=0.031 < 0.05 after 24.0s", execution="e1")
    e2 = dict(runbook="degrade", step="variant_split", change=lite, key="e2/variant_split/0",
              execution="e2")
    at(560, **e2, phase="before", status="applying", evidence={"error_ratio": 0.2})
    at(561, **e2, phase="after", status="applied", result=lite.describe())
    at(570, runbook="degrade", step="verify", change=lite, key="e2", phase="verify",
       status="failed", evidence={"sli": "error_ratio", "value": 0.2, "ok": False},
       result="error_ratio=0.2 not < 0.05 within 10s", execution="e2")
    rb = dict(runbook="degrade", step="rollback", change=lite.inverse, key="e2/rollback/0",
              execution="e2")
    at(571, **rb, phase="before", status="applying")
    at(572, **rb, phase="after", status="rolled_back", result=lite.inverse.describe())
    at(580, runbook="p99_drift", step="scale_out", change=scale, key="e3/scale_out/0",
       phase="refused", status="skipped", result="cooldown: synth changed 74 s ago",
       execution="e3")
    restart = Change("restart", "synth", {"replica": "r9"}, target="synth/r9")
    e4 = dict(runbook="replica_down", step="restart", change=restart, key="e4/restart/0",
              execution="e4")
    at(585, **e4, phase="before", status="applying")
    at(586, **e4, phase="after", status="failed", result="KeyError: replica r9 unknown")
    at(595, runbook="p99_drift", step="scale_out", change=Change("scale", "synth",
                                                                 {"replicas": 4}),
       key="e5/scale_out/0", phase="before", status="applying", execution="e5")
    return AuditLog(conn, clock=lambda: now[0], create=False).rows()


def seed(db: Path, home: Path) -> Seeded:
    """Fill ``db`` and ``home`` (chaos journals) with ten minutes of a three-replica fleet."""
    out = Seeded(db=db, home=home)
    store = Store(db)
    for i in range(DURATION_S):
        ts = T0 + i
        for k, r in enumerate(REPLICAS):
            down = r == "r2" and i >= DURATION_S - 30  # r2 dies 30 s before the end
            out.samples.append(Sample("triton_up", freeze_labels({"replica": r}), ts,
                                      0.0 if down else 1.0))
            for m in MODELS:
                lab = freeze_labels({"replica": r, "model": m, "variant": "full"})
                ok = 0.0 if down else 10.0 * (k + 1) + (i % 4)
                bad = 0.0 if down else (1.0 if r == "r1" else 0.0)
                out.samples.append(Sample("triton_request_success_per_second", lab, ts, ok))
                out.samples.append(Sample("triton_request_failure_per_second", lab, ts, bad))
    store.write_samples(out.samples)

    n = 0
    for i in range(0, DURATION_S, 2):
        for k, r in enumerate(REPLICAS):
            for m in MODELS:
                n += 1
                base = 0.010 * (k + 1) + (0.002 if m == "mlp" else 0.0)
                lat = base + (n % 7) * 0.001 + (0.2 if n % 97 == 0 else 0.0)
                stages = {"client": lat, "router": lat * 0.9, "triton_http": lat * 0.8,
                          "queue": lat * 0.2, "compute_input": lat * 0.05,
                          "compute_infer": lat * 0.4, "compute_output": lat * 0.05,
                          "model_code": lat * 0.35}
                gpu = _gpu(T0 + i, f"gpu{k}", r, k != 1, i) if m == "synth" else None
                out.chains.append(RequestChain(
                    trace_id=f"{n:032x}", ts=T0 + i + 0.5, model=m, variant="full", replica=r,
                    latency_s=lat, stages=stages, error=(n % 50 == 0), gpu=gpu, span_count=6))
    store.write_chains(out.chains)
    slowest = max(out.chains, key=lambda c: c.latency_s)
    out.span_trace = slowest.trace_id
    t_ns = int(slowest.ts * 1e9)
    spans = []
    for j, (name, svc, d) in enumerate((("warden.client", "warden-loadgen", 1.0),
                                        ("warden.router", "warden-router", 0.9),
                                        ("InferRequest", "triton", 0.8),
                                        ("warden.model", "warden-replica-r0", 0.35))):
        start = t_ns + int(j * 0.02 * slowest.latency_s * 1e9)
        spans.append(Span(slowest.trace_id, f"{j + 1:016x}", f"{j:016x}" if j else "", name,
                          svc.replace("r0", slowest.replica), start,
                          start + int(d * slowest.latency_s * 1e9)))
    store.write_spans(spans)

    for i in range(DURATION_S):
        for k, r in enumerate(REPLICAS):
            out.gpu.append(_gpu(T0 + i, f"gpu{k}", r, k != 1, i))
    store.write_gpu_readings(out.gpu)

    out.anomalies = [
        Anomaly(T0 + 500, "p99_drift", "request_latency_seconds",
                freeze_labels({"model": "synth", "replica": "r2"}), 0.93, 0.031, 0.2,
                {"window": 60}),
        Anomaly(T0 + 560, "variance", "request_latency_seconds",
                freeze_labels({"model": "mlp"}), 0.71, 0.002, 0.009, {}),
    ]
    store.write_anomalies(out.anomalies)

    store.close()

    conn = open_db(db)
    box = Outbox(conn)
    a1 = Alert(freeze_labels({"alertname": "LatencyP99High", "severity": "page", "model": "synth"}),
               freeze_labels({"summary": "P99 of synth above baseline"}), T0 + 502, None,
               AlertStatus.FIRING)
    a2 = Alert(freeze_labels({"alertname": "ReplicaDown", "severity": "ticket", "replica": "r2"}),
               freeze_labels({"summary": "r2 is down"}), T0 + 400, T0 + 450,
               AlertStatus.RESOLVED)
    for key, alert in (("n1", a1), ("n2", a2)):
        body = build_webhook_payload([alert], receiver="oncall", group_labels={"alertname":
                                     alert.name}, external_url="http://warden", now=T0 + 590)
        box.enqueue(key=key, target="http://127.0.0.1:9/hook", group_key=alert.name,
                    status=body["status"], body=json.dumps(body), now=alert.starts_at)
    items = {i.idempotency_key: i for i in box.due(T0 + 1000)}
    box.mark_delivered(items["n1"].id, now=T0 + 503, status_code=200)
    box.mark_failed(items["n2"].id, now=T0 + 451, result=DeliveryResult(False, False, 400, "bad"),
                    next_attempt_at=T0 + 451, dead=True)
    out.audit = write_audit(conn)
    SilenceStore(conn).add(["alertname=ReplicaDown"], now=T0 + 590, duration_s=3600,
                           created_by="oncall", comment="r2 being replaced")
    conn.close()

    chaos = home / "chaos"
    chaos.mkdir(parents=True, exist_ok=True)
    out.journals = [
        {"title": "Thermal throttle on gpu0", "verdict": "passed", "started_at": T0 + 480,
         "ended_at": T0 + 590, "time_to_detect_s": 12.5, "time_to_recover_s": 48.0,
         "slo_violation_s": 20.0, "timeline": [
             {"ts": T0 + 480, "kind": "inject", "message": "cooling failure on gpu0"},
             {"ts": T0 + 492.5, "kind": "detect", "message": "p99_drift fired"},
             {"ts": T0 + 528, "kind": "recover", "message": "P99 back under SLO"},
             {"ts": T0 + 590, "kind": "revert", "message": "cooling restored"}]},
        {"title": "Kill r2", "verdict": "failed", "started_at": T0 + 380, "ended_at": T0 + 460,
         "time_to_detect_s": 5.0, "time_to_recover_s": None, "slo_violation_s": 35.5,
         "timeline": [{"ts": T0 + 380, "kind": "inject", "message": "SIGKILL r2"}]},
    ]
    for j, data in enumerate(out.journals):
        (chaos / f"exp{j}.json").write_text(json.dumps(data))
    (chaos / "broken.json").write_text("{not json")
    return out
