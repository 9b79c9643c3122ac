"""The guard layer: every limit refuses or clamps, with a reason, under an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediation.actuators.dryrun import DryRun
from remediation.changes import Change
from remediation.guards import GuardConfig, Guards


def scale(n: int, model: str = "synth", **kw) -> Change:
    return Change("scale", model, {"replicas": n}, **kw)


def variant(f: float) -> Change:
    return Change("variant", "synth", {"variant": "lite", "fraction": f}, target="synth/variant")


@pytest.fixture()
def fleet() -> DryRun:
    return DryRun.simple({"synth": 3})


def guards(clock, **cfg) -> Guards:
    return Guards(GuardConfig(**cfg), clock=clock)


def test_scale_is_clamped_to_max_and_refused_at_it(clock, fleet):
    g = guards(clock, max_replicas=4)
    d = g.check(scale(9), fleet.state(), key="k1")
    assert d.allowed and d.change.args["replicas"] == 4
    fleet.scale("synth", 4)
    d = g.check(scale(5), fleet.state(), key="k2")
    assert not d.allowed and d.guard == "replica_bounds" and d.escalate


def test_never_below_min_healthy(clock, fleet):
    g = guards(clock, min_healthy=2)
    fleet.mark_unhealthy("r0")
    fleet.mark_unhealthy("r1")
    # 3 replicas, 1 healthy: scaling in could remove the healthy one
    d = g.check(scale(2, reduces_capacity=True), fleet.state(), key="k")
    assert not d.allowed and d.guard == "min_healthy"


def test_weights_never_leave_no_healthy_replica_serving(clock):
    fleet = DryRun.simple({"synth": 2})
    fleet.mark_unhealthy("r1")
    g = guards(clock)
    d = g.check(Change("weights", "synth", {"weights": {"r0": 0.0}}, target="synth/r0"),
                fleet.state(), key="k")
    assert not d.allowed and d.guard == "min_healthy"
    d = g.check(Change("weights", "synth", {"weights": {"r1": 0.0}}, target="synth/r1"),
                fleet.state(), key="k2")
    assert d.allowed


def test_restart_of_the_only_healthy_replica_is_refused(clock):
    fleet = DryRun.simple({"synth": 2})
    fleet.mark_unhealthy("r1")
    g = guards(clock)
    bad = Change("restart", "synth", {"replica": "r0"}, target="synth/r0")
    ok = Change("restart", "synth", {"replica": "r1"}, target="synth/r1")
    assert not g.check(bad, fleet.state(), key="a").allowed
    assert g.check(ok, fleet.state(), key="b").allowed


def test_degrade_cap_clamps_then_refuses(clock, fleet):
    g = guards(clock, max_degraded_fraction=0.4)
    d = g.check(variant(1.0), fleet.state(), key="k")
    assert d.allowed and d.change.args["fraction"] == pytest.approx(0.4)
    fleet.set_variant("synth", "lite", 0.4)
    d = g.check(variant(0.9), fleet.state(), key="k2")
    assert not d.allowed and d.guard == "degrade_cap"


def test_cooldown_per_kind_and_target_but_not_within_one_execution(clock, fleet):
    g = guards(clock, cooldown_s=60)
    g.note_applied(scale(4), execution="e1")
    assert g.check(scale(5), fleet.state(), key="a", execution="e1").allowed
    d = g.check(scale(5), fleet.state(), key="b", execution="e2")
    assert not d.allowed and d.guard == "cooldown"
    # another kind on the same model is not in that cooldown
    assert g.check(variant(0.3), fleet.state(), key="c", execution="e2").allowed
    clock.advance(61)
    assert g.check(scale(5), fleet.state(), key="d", execution="e2").allowed


def test_rollback_skips_cooldown_but_not_bounds(clock, fleet):
    g = guards(clock, cooldown_s=60, max_replicas=3)
    g.note_applied(scale(2), execution="e1")
    assert g.check(scale(2, reduces_capacity=True), fleet.state(), key="r", rollback=True).allowed
    assert not g.check(scale(5), fleet.state(), key="r2", rollback=True).allowed


def test_max_actions_per_hour_slides(clock, fleet):
    g = guards(clock, max_actions_per_hour=3, cooldown_s=0)
    for i in range(3):
        g.note_applied(scale(3 + i), execution=f"e{i}")
        clock.advance(10)
    d = g.check(scale(2, reduces_capacity=True), fleet.state(), key="x")
    assert not d.allowed and d.guard == "rate_limit"
    clock.advance(3600)
    assert g.check(scale(2, reduces_capacity=True), fleet.state(), key="y").allowed


def test_kill_switch_flag_and_file(clock, fleet, tmp_path: Path):
    flag = tmp_path / "STOP"
    g = guards(clock, kill_switch_file=flag)
    assert g.check(scale(4), fleet.state(), key="a").allowed
    flag.touch()
    assert g.check(scale(4), fleet.state(), key="a").guard == "kill_switch"
    flag.unlink()
    g.kill()
    assert g.check(scale(4), fleet.state(), key="a").guard == "kill_switch"


def test_missing_data_never_reduces_capacity(clock, fleet):
    g = guards(clock)
    d = g.check(scale(2, reduces_capacity=True), fleet.state(), key="a", data_fresh=False)
    assert not d.allowed and d.guard == "missing_data"
    # adding capacity on missing data is allowed (holding is about never scaling in)
    assert g.check(scale(4), fleet.state(), key="b", data_fresh=False).allowed


def test_idempotency_uses_the_audit(clock, fleet):
    seen = {"k"}
    g = Guards(GuardConfig(), clock=clock, seen=seen.__contains__)
    assert g.check(scale(4), fleet.state(), key="k").guard == "idempotency"
    assert g.check(scale(4), fleet.state(), key="other").allowed


def test_dry_run_mode_marks_the_decision(clock, fleet):
    d = guards(clock, dry_run=True).check(scale(4), fleet.state(), key="a")
    assert d.allowed and d.dry_run


def test_config_rejects_min_above_max():
    with pytest.raises(ValueError, match="min_replicas"):
        GuardConfig(min_replicas=5, max_replicas=2)
    with pytest.raises(ValueError):
        GuardConfig(unknown_key=1)
