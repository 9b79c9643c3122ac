"""Closed loop on the real lab: one replica slowed 5x under load; Warden reroutes and the SLO
comes back. Real Triton replicas (the session fleet), a real router thread, real requests; the
timings are asserted from what the store and the audit table recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from remediation.actuators.local import LocalFleet
from remediation.closed_loop import histogram_quantile, run_reroute_scenario
from serving.fleet import Fleet
from serving.router import RouterConfig, run_router_in_thread
from serving.router_client import RouterAdmin
from warden.config import WardenConfig
from warden.lab import Lab


@pytest.fixture()
def router(fleet: Fleet) -> Iterator[tuple[RouterAdmin, str]]:
    cfg = RouterConfig(replicas=[{"name": r.name, "url": r.url} for r in fleet.replicas],
                       policy="round_robin", lite_models={"synth", "mlp"},
                       health_interval_s=0.5, timeout_s=10, seed=5)
    handle = run_router_in_thread(cfg, CollectorRegistry())
    admin = RouterAdmin(handle.url)
    try:
        yield admin, handle.url
    finally:
        admin.close()
        handle.stop()


def test_histogram_quantile_matches_prometheus():
    b = [(0.01, 50.0), (0.02, 90.0), (0.05, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.01)
    assert histogram_quantile(0.99, b) == pytest.approx(0.02 + 0.03 * 0.9)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_local_fleet_reads_and_moves_the_real_router(fleet: Fleet, router):
    admin, _ = router
    act = LocalFleet(fleet, admin)
    s = act.state().model("synth")
    assert s.replicas == 2 and set(s.weights) == {r.name for r in fleet.replicas}
    slow = fleet.replicas[-1].name
    try:
        act.set_weights("synth", {slow: 0.0})
        act.set_variant("synth", "lite", 0.3)
        s = act.state().model("synth")
        assert s.weights[slow] == 0.0 and s.lite_fraction == pytest.approx(0.3)
    finally:
        admin.set_weights({r.name: 1.0 for r in fleet.replicas})
        admin.set_variant_split("synth", 0.0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The real lab: 3 synth replicas (40 ms per batch, so 5x is 200 ms), router process with
    round robin (a latency-aware policy would hide the fault by itself; here Warden must act)."""
    cfg = WardenConfig(
        home=Path(tmp_path_factory.mktemp("lab")),
        lab={"replicas": 3, "router_port": 0, "router_policy": "round_robin",
             "tracing": False},
        fleet={"models": ["synth"], "synth_cost": {"per_batch_ms": 40.0}})
    with Lab(cfg, with_traffic=False) as lab:
        yield lab


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_slowed_replica_is_rerouted_and_slo_restored(lab: Lab, tmp_path: Path):
    assert lab.admin is not None
    res = run_reroute_scenario(lab.fleet, lab.admin, lab.router_url, tmp_path / "w.db",
                               rate=24, fault_s=20, warmup_s=4)
    tl = res.timeline
    print(f"slo={res.slo_s:.3f}s {tl}")
    assert tl.p99_fault > res.slo_s, f"the fault did not break the SLO: {tl}"
    assert res.outcome == "verified", (res.outcome, [(r.step, r.phase, r.status, r.result)
                                                     for r in res.audit])
    steps = [(r.step, r.phase, r.status) for r in res.audit]
    assert steps[:2] == [("shift-weight", "before", "applying"), ("shift-weight", "after",
                                                                   "applied")]
    assert ("verify", "verify", "verified") in steps
    assert tl.restored_s is not None and tl.restored_s < 15.0, tl
    assert tl.p99_after < res.slo_s
