"""The signal hook on a real store: what the collectors write each tick in, alerts out.

Each tick writes what the engine's collectors would (``triton_up``, Triton's queue time and
pending requests, GPU readings) and sets the router's admin state, then runs the hook, as the
engine does after storing a tick.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from warden.lab_telemetry import CAUSES_MUTE_SYMPTOMS
from warden.records import Alert, AlertStatus, GpuReading, Sample, freeze_labels
from warden.signal_hook import UTILIZATION_SERIES, SignalHook
from warden.store import Store

T0 = 1_800_000_000.0
COOL = GpuReading(ts=0.0, device="sim0", simulated=True, temperature_c=44.0, power_w=60.0,
                  power_limit_w=150.0, sm_clock_mhz=1695.0, sm_clock_max_mhz=1695.0,
                  mem_clock_mhz=6251.0, utilization=0.3, memory_used_bytes=1e9,
                  memory_total_bytes=24e9)
HOT = dataclasses.replace(COOL, temperature_c=101.0, sm_clock_mhz=300.0,
                          throttle_reasons=("SW_THERMAL_SLOWDOWN", "HW_THERMAL_SLOWDOWN"))


class Lab:
    """A two-replica fleet's signals, tick by tick."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = Store(tmp_path / "w.db")
        self.router = [{"name": r, "healthy": True, "ejected": False, "weight": 1.0,
                        "outstanding": 0} for r in ("r0", "r1")]
        self.sent: list[list[Alert]] = []
        self.hook = SignalHook(self.store, models=lambda: ["synth"], router=lambda: self.router,
                               alert_sinks=[lambda a, now: self.sent.append(a)])
        self.now = T0

    def tick(self, *, up: dict[str, float] | None = None, gpu: dict[str, GpuReading] | None = None,
             queue_s: dict[str, float] | None = None) -> None:
        self.now += 1.0
        up = {"r0": 1.0, "r1": 1.0} if up is None else up
        gpu = {"r0": COOL, "r1": COOL} if gpu is None else gpu
        queue_s = {"r0": 0.004, "r1": 0.004} if queue_s is None else queue_s
        samples = [Sample("triton_up", freeze_labels({"replica": r}), self.now, v)
                   for r, v in up.items()]
        for r, q in queue_s.items():
            lb = freeze_labels({"model": "synth", "variant": "full", "replica": r})
            samples += [Sample("triton_queue_duration_seconds", lb, self.now, q),
                        Sample("triton_pending_requests", lb, self.now, q * 200)]
        self.store.write_samples(samples)
        self.store.write_gpu_readings([dataclasses.replace(g, ts=self.now, replica=r)
                                       for r, g in gpu.items()])
        self.hook(self.now)

    def alerts(self) -> list[tuple[str, str, dict]]:
        rows = self.store.query("SELECT alertname, status, labels FROM alerts ORDER BY id")
        return [(r.alertname, r.status, json.loads(r.labels)) for r in rows.itertuples()]

    def set_router(self, name: str, **state: object) -> None:
        next(r for r in self.router if r["name"] == name).update(state)


def muted(alert: Alert, firing: list[Alert]) -> bool:
    return any(rule.mutes(alert, firing) is not None for rule in CAUSES_MUTE_SYMPTOMS)


@pytest.fixture()
def lab(tmp_path: Path):
    lab = Lab(tmp_path)
    yield lab
    lab.store.close()


def test_healthy_fleet_raises_nothing_and_records_utilization(lab: Lab) -> None:
    for _ in range(20):
        lab.tick()
    assert lab.alerts() == [] and lab.hook.firing() == []
    util = lab.store.series(UTILIZATION_SERIES, {"model": "synth"})
    assert set(util.replica) == {"r0", "r1"} and util.value.max() == pytest.approx(0.3)
    assert len(lab.sent) == 20  # sinks hear every tick, as detection's do


def test_hung_replica_fires_with_model_and_replica_then_resolves(lab: Lab) -> None:
    for _ in range(3):
        lab.tick()
    lab.set_router("r1", healthy=False, outstanding=96)
    for _ in range(4):
        lab.tick(up={"r0": 1.0, "r1": 0.0}, gpu={"r0": COOL})  # r1's /gpu times out too
    [(name, status, labels)] = lab.alerts()
    assert (name, status) == ("ReplicaHung", "firing")
    assert labels["replica"] == "r1" and labels["model"] == "synth"
    [alert] = lab.hook.firing()
    ann = dict(alert.annotations)
    assert ann["metrics_scrape"] == "failed" and ann["answering_peers"] == "r0"
    saturated = Alert(freeze_labels({"alertname": "ModelSaturated", "model": "synth"}), (), T0,
                      None, AlertStatus.FIRING)
    assert muted(saturated, [alert])  # r0 carries r1's load until the restart
    lab.set_router("r1", healthy=True, outstanding=0)
    for _ in range(12):
        lab.tick()
    assert [a[:2] for a in lab.alerts()] == [("ReplicaHung", "firing"),
                                            ("ReplicaHung", "resolved")]


def test_router_unreadable_holds_the_hung_state(lab: Lab) -> None:
    lab.set_router("r1", healthy=False)
    for _ in range(4):
        lab.tick(up={"r0": 1.0, "r1": 0.0})
    assert [a[0] for a in lab.alerts()] == ["ReplicaHung"]

    def broken():
        raise OSError("router down")

    lab.hook.router = broken
    for _ in range(15):
        lab.tick()
    assert lab.hook.router_errors == 15
    assert [a.name for a in lab.hook.firing()] == ["ReplicaHung"]  # neither lost nor resolved


def test_a_replica_that_leaves_the_router_has_its_alerts_resolved(lab: Lab) -> None:
    lab.set_router("r1", healthy=False)
    for _ in range(4):
        lab.tick(up={"r0": 1.0, "r1": 0.0})
    lab.router = [r for r in lab.router if r["name"] == "r0"]  # scaled in
    for _ in range(12):
        lab.tick(up={"r0": 1.0}, gpu={"r0": COOL}, queue_s={"r0": 0.004})
    assert [a[:2] for a in lab.alerts()] == [("ReplicaHung", "firing"),
                                            ("ReplicaHung", "resolved")]
    assert not any(dict(k).get("replica") == "r1" for _, k in lab.hook.rules.states)


def test_gpu_throttling_fires_per_device_and_mutes_the_models_latency_runbooks(lab: Lab
                                                                                 ) -> None:
    lab.tick()
    lab.tick(gpu={"r0": HOT, "r1": COOL})
    assert [a.name for a in lab.hook.pending()] == ["GpuThrottling"]  # a cause before its for_s
    for _ in range(4):
        lab.tick(gpu={"r0": HOT, "r1": COOL})
    [(name, status, labels)] = lab.alerts()
    assert (name, status) == ("GpuThrottling", "firing")
    assert labels == {"alertname": "GpuThrottling", "detector": "gpu_throttling",
                      "device": "sim0", "model": "synth", "replica": "r0", "severity": "warning"}
    firing = lab.hook.firing()
    drift = Alert(freeze_labels({"alertname": "ReplicaP99Drift", "model": "synth",
                                 "replica": "r0"}), (), T0, None, AlertStatus.FIRING)
    peer = Alert(freeze_labels({"alertname": "ReplicaP99Drift", "model": "synth",
                                "replica": "r1"}), (), T0, None, AlertStatus.FIRING)
    other = Alert(freeze_labels({"alertname": "ReplicaP99Drift", "model": "mlp",
                                 "replica": "r1"}), (), T0, None, AlertStatus.FIRING)
    # the throttled replica's own drift, and its peer's (it took the load once r0 is drained)
    assert muted(drift, firing) and muted(peer, firing) and not muted(other, firing)


def test_saturation_needs_every_serving_replica_busy_and_queueing(lab: Lab) -> None:
    busy = dataclasses.replace(COOL, utilization=0.95)
    lab.tick()
    for _ in range(5):  # r0 saturated, r1 calm: a replica problem, not the model's
        lab.tick(gpu={"r0": busy, "r1": COOL}, queue_s={"r0": 0.4, "r1": 0.004})
    assert lab.alerts() == []
    lab.set_router("r1", weight=0.0)  # ...unless r0 is all that serves (r1 drained)
    for _ in range(5):
        lab.tick(gpu={"r0": busy, "r1": COOL}, queue_s={"r0": 0.4, "r1": 0.004})
    assert [(a[0], a[1], a[2].get("model")) for a in lab.alerts()] == [
        ("ModelSaturated", "firing", "synth")]
    lab.set_router("r1", weight=1.0)
    for _ in range(8):  # both serve, both saturated: still firing, no second alert
        lab.tick(gpu={"r0": busy, "r1": busy}, queue_s={"r0": 0.4, "r1": 0.3})
    [alert] = lab.hook.firing()
    assert "replica" not in dict(alert.labels)
    drift = Alert(freeze_labels({"alertname": "ReplicaP99Drift", "model": "synth",
                                 "replica": "r1"}), (), T0, None, AlertStatus.FIRING)
    assert muted(drift, [alert])  # saturated, a replica standing out is no drift of its own
    for _ in range(16):
        lab.tick()
    assert [a[1] for a in lab.alerts()] == ["firing", "resolved"]


def test_window_must_be_positive(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    with pytest.raises(ValueError, match="window_s"):
        SignalHook(store, models=lambda: [], window_s=0)
    store.close()
