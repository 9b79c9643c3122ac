"""The executor end to end over a DryRun fleet, a real SQLite audit and a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediation.actions import builtin_registry
from remediation.actuators.dryrun import DryRun
from remediation.applier import Applier
from remediation.audit import AuditLog, reconcile
from remediation.executor import RunbookExecutor
from remediation.guards import GuardConfig, Guards
from remediation.runbook import load_runbooks
from remediation.sli import StaticSli
from warden.records import Alert, AlertStatus, freeze_labels


class Killed(BaseException):
    """Stands for the engine process dying: not an Exception, so nothing catches it."""


class SliBoard:
    """SLI values the test sets; a callable may depend on the fleet (e.g. P99 after reroute)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def __call__(self, name, labels, now):
        v = self.values.get(name)
        return v(labels) if callable(v) else v


def make(clock, audit, fleet, board, *, pages=None, **guard_cfg):
    guards = Guards(GuardConfig(**guard_cfg), clock=clock)
    applier = Applier(fleet, guards, audit, clock=clock)
    return RunbookExecutor(load_runbooks(builtin_registry()), applier, StaticSli(board),
                           clock=clock, sleep=clock.sleep,
                           page=(pages.append if pages is not None else None))


def alert(name: str, t: float, **labels: str) -> Alert:
    return Alert(freeze_labels({"alertname": name, **labels}), (), t, None, AlertStatus.FIRING)


def statuses(audit: AuditLog) -> list[tuple[str, str, str]]:
    return [(r.step, r.phase, r.status) for r in audit.rows()]


def test_drift_reroutes_verifies_and_audits_before_and_after(clock, audit):
    fleet = DryRun.simple({"synth": 3})
    board = SliBoard()
    # P99 is bad while r1 carries weight, good once it does not
    board.values["p99_latency_seconds"] = lambda labels: (
        0.9 if fleet.models["synth"].weights["r1"] > 0 else 0.05)
    ex = make(clock, audit, fleet, board)
    [rep] = ex.handle(alert("ReplicaP99Drift", clock(), model="synth", replica="r1"))
    assert rep.outcome == "verified"
    assert fleet.applied("set_weights") == [("set_weights", {"model": "synth",
                                                             "weights": {"r1": 0.0}})]
    assert statuses(audit) == [("shift-weight", "before", "applying"),
                               ("shift-weight", "after", "applied"),
                               ("verify", "verify", "verified")]


def test_same_alert_twice_applies_once(clock, audit):
    fleet = DryRun.simple({"synth": 3})
    board = SliBoard()
    board.values["p99_latency_seconds"] = 0.05
    ex = make(clock, audit, fleet, board)
    a = alert("ReplicaP99Drift", clock(), model="synth", replica="r1")
    assert ex.handle(a)[0].outcome == "verified"
    assert ex.handle(a)[0].outcome == "duplicate"
    assert len(fleet.applied("set_weights")) == 1


def test_verify_failure_rolls_back_and_pages_with_evidence(clock, audit):
    fleet = DryRun.simple({"synth": 3})
    board = SliBoard()
    board.values["p99_latency_seconds"] = 0.9  # never recovers
    pages: list[Alert] = []
    ex = make(clock, audit, fleet, board, pages=pages)
    t0 = clock()
    [rep] = ex.handle(alert("ReplicaP99Drift", t0, model="synth", replica="r1"))
    assert rep.outcome == "verify_failed"
    assert clock() - t0 == pytest.approx(30, abs=1.01)  # the runbook's deadline, no real sleep
    assert fleet.models["synth"].weights["r1"] == 1.0  # rolled back
    assert [s.status for s in rep.rolled_back] == ["applied"]
    assert ("rollback", "after", "rolled_back") in statuses(audit)
    [page] = pages
    ann = dict(page.annotations)
    assert dict(page.labels)["alertname"] == "WardenRemediationFailed"
    assert "shift-weight: applied" in ann["description"] and ann["outcome"] == "verify_failed"
    assert '"value": 0.9' in ann["evidence"]


def test_saturation_degrades_first_when_cold_start_exceeds_budget_then_restores(clock, audit):
    fleet = DryRun.simple({"synth": 2}, cold_start_s=20.0)
    board = SliBoard()
    calls = {"n": 0}

    def p99(labels):
        calls["n"] += 1
        return 0.9 if calls["n"] == 1 else 0.1  # precondition sees overload, verify sees recovery

    board.values["p99_latency_seconds"] = p99
    ex = make(clock, audit, fleet, board)
    [rep] = ex.handle(alert("ModelSaturated", clock(), model="synth", severity="critical"))
    assert rep.outcome == "verified"
    assert [c[0] for c in fleet.calls] == ["set_variant", "scale", "set_variant"]
    assert fleet.calls[0][1]["fraction"] == 0.5 and fleet.calls[2][1]["fraction"] == 0.0
    assert fleet.replicas("synth") == 3


def test_saturation_skips_degrade_when_cold_start_is_fast(clock, audit):
    fleet = DryRun.simple({"synth": 2}, cold_start_s=4.0)
    board = SliBoard()
    seq = iter([0.9, 0.1, 0.1])
    board.values["p99_latency_seconds"] = lambda labels: next(seq)
    [rep] = make(clock, audit, fleet, board).handle(
        alert("ModelSaturated", clock(), model="synth", severity="warning"))
    assert rep.outcome == "verified"
    assert [c[0] for c in fleet.calls] == ["scale"]
    assert rep.steps[0].status == "skipped"


def test_saturation_restores_only_the_degrade_it_applied(clock, audit):
    """A shed by another runbook (budget burn) is not restored by saturation's on_verified:
    its restore-full runs only if its own degrade-first applied (``if_applied``)."""
    fleet = DryRun.simple({"synth": 2}, cold_start_s=4.0)
    fleet.set_variant("synth", "lite", 0.5)  # the budget-burn runbook shed half to lite
    fleet.calls.clear()
    board = SliBoard()
    seq = iter([0.9, 0.1, 0.1])
    board.values["p99_latency_seconds"] = lambda labels: next(seq)
    [rep] = make(clock, audit, fleet, board).handle(
        alert("ModelSaturated", clock(), model="synth", severity="warning"))
    assert rep.outcome == "verified"
    assert [c[0] for c in fleet.calls] == ["scale"]
    assert fleet.models["synth"].lite_fraction == 0.5
    restore = next(s for s in rep.steps if s.step == "restore-full")
    assert restore.status == "skipped" and "degrade-first" in restore.detail


def test_refusal_at_max_replicas_pages_without_rollback(clock, audit):
    fleet = DryRun.simple({"synth": 2}, cold_start_s=20.0)
    board = SliBoard()
    board.values["p99_latency_seconds"] = 0.9
    pages: list[Alert] = []
    [rep] = make(clock, audit, fleet, board, pages=pages, max_replicas=2).handle(
        alert("ModelSaturated", clock(), model="synth", severity="critical"))
    assert rep.outcome == "refused"
    assert fleet.models["synth"].lite_fraction == 0.5  # the degrade that helps stays
    assert len(pages) == 1 and "replica_bounds" in dict(pages[0].annotations)["description"]


def test_flapping_alert_stays_within_guards(clock, audit):
    """An alert that fires anew every 5 s for 2 minutes: cooldown and hourly cap bound actions."""
    fleet = DryRun.simple({"synth": 2})
    board = SliBoard()
    board.values["p99_latency_seconds"] = 0.9
    board.values["cold_start_seconds"] = 1.0
    ex = make(clock, audit, fleet, board, cooldown_s=60, max_actions_per_hour=10,
              max_replicas=6)
    board.values["p99_latency_seconds"] = lambda labels: 0.9
    outcomes = []
    start = clock()
    while clock() - start < 120:
        a = alert("ModelSaturated", clock(), model="synth", severity="critical")
        # verification would take the deadline; make it pass fast so flapping drives the loop
        board.values["p99_latency_seconds"] = iter_values([0.9, 0.1])
        outcomes += [r.outcome for r in ex.handle(a)]
        clock.advance(5)
    scales = fleet.applied("scale")
    assert len(scales) <= 2  # one per 60 s cooldown window over 120 s
    assert outcomes.count("refused") >= 20
    assert fleet.replicas("synth") <= 4


def iter_values(values):
    it = iter(values)
    last = [values[-1]]

    def f(labels):
        try:
            last[0] = next(it)
        except StopIteration:
            pass
        return last[0]
    return f


def test_missing_sli_fails_preconditions_and_never_acts(clock, audit):
    fleet = DryRun.simple({"synth": 2})
    [rep] = make(clock, audit, fleet, SliBoard()).handle(
        alert("ModelSaturated", clock(), model="synth", severity="critical"))
    assert rep.outcome == "precondition_unmet" and fleet.calls == []


class DyingFleet(DryRun):
    """A DryRun fleet whose next scale dies (the engine killed) after or before taking effect."""

    die_after_effect: bool | None = None

    def scale(self, model, n):
        mode, self.die_after_effect = self.die_after_effect, None
        if mode is False:
            raise Killed()
        super().scale(model, n)
        if mode is True:
            raise Killed()


@pytest.mark.parametrize("after_effect, expect", [(True, "applied"), (False, "failed")])
def test_engine_killed_mid_action_reconciles_and_never_applies_twice(
        tmp_path: Path, clock, after_effect, expect):
    db = tmp_path / "w.db"
    fleet = DyingFleet.simple({"synth": 2}, cold_start_s=1.0)
    fleet.die_after_effect = after_effect
    board = SliBoard()
    board.values["p99_latency_seconds"] = iter_values([0.9, 0.1])
    a = alert("ModelSaturated", clock(), model="synth", severity="critical")
    with pytest.raises(Killed):
        make(clock, AuditLog.open(db, clock=clock), fleet, board).handle(a)
    # restart: a new audit connection, reconcile against the fleet's real state
    audit2 = AuditLog.open(db, clock=clock)
    assert len(audit2.unfinished()) == 1
    [(row, status)] = reconcile(audit2, fleet.state)
    assert status == expect and row.step == "scale-out"
    assert audit2.unfinished() == []
    scales_before = len(fleet.applied("scale"))
    board.values["p99_latency_seconds"] = iter_values([0.9, 0.1])
    [rep] = make(clock, audit2, fleet, board).handle(a)  # the alert is delivered again
    assert len(fleet.applied("scale")) == scales_before  # never applied twice
    assert rep.steps[1].status == "duplicate"
    phases = [(r.step, r.phase) for r in audit2.rows() if r.step == "scale-out"]
    assert phases == [("scale-out", "before"), ("scale-out", "after")]  # audit complete


def test_actuator_error_is_audited_rolled_back_and_paged(clock, audit):
    fleet = DryRun.simple({"synth": 2}, cold_start_s=20.0)
    board = SliBoard()
    board.values["p99_latency_seconds"] = 0.9
    pages: list[Alert] = []
    ex = make(clock, audit, fleet, board, pages=pages)
    orig = fleet.scale

    def broken(model, n):
        raise RuntimeError("API server said no")

    fleet.scale = broken  # type: ignore[method-assign]
    [rep] = ex.handle(alert("ModelSaturated", clock(), model="synth", severity="critical"))
    fleet.scale = orig  # type: ignore[method-assign]
    assert rep.outcome == "failed"
    # saturation says rollback: none (keep what helps, page a human)
    assert fleet.models["synth"].lite_fraction == 0.5 and rep.rolled_back == []
    assert ("scale-out", "after", "failed") in statuses(audit)
    assert len(pages) == 1


def test_verify_judges_only_traffic_served_after_the_change(clock, audit, tmp_path):
    """A reroute that works at once verifies in ~min_window_s, not after the slow requests
    that raised the alert have aged out of the window; and the window never reaches back
    before the change, so slow pre-change requests cannot fail it either."""
    from warden.records import RequestChain
    from warden.store import Store
    from remediation.sli import StoreSli

    store = Store(tmp_path / "chains.db")
    fleet = DryRun.simple({"synth": 3})
    t_alert = clock()

    def chain(i: int, ts: float, latency: float) -> RequestChain:
        return RequestChain(f"{i:032x}", ts, "synth", "full", "r1", latency, {})

    # 4 s of slow requests before the change, then fast ones after it (written as time passes)
    store.write_chains(chain(i, t_alert - 4 + i * 0.05, 0.6) for i in range(80))

    class StoreBackedSleep:
        def __init__(self) -> None:
            self.i = 1000

        def __call__(self, s: float) -> None:
            start = clock()
            clock.sleep(s)
            n = int(s / 0.05)
            store.write_chains(chain(self.i + k, start + k * 0.05, 0.02) for k in range(n))
            self.i += n

    guards = Guards(GuardConfig(), clock=clock)
    ex = RunbookExecutor(load_runbooks(builtin_registry()), Applier(fleet, guards, audit,
                         clock=clock), StoreSli(store), clock=clock, sleep=StoreBackedSleep())
    [rep] = ex.handle(alert("ReplicaP99Drift", t_alert, model="synth", replica="r1"))
    assert rep.outcome == "verified", rep.verify
    assert rep.verify["value"] < 0.25
    # judged at min_window_s (2 s) of post-change traffic, long before the 5 s window cleared
    assert rep.verify["elapsed_s"] == pytest.approx(2.0)
