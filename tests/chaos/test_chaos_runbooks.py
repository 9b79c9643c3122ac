"""Runbook experiments on a real closed loop: fault in, alert out, action taken, SLO back.

They run against the default engine (:func:`chaos.engine.lab_engine`): its own lab with two
real Triton replicas, the router (round robin), open-loop traffic, traces, detection and
remediation, started once for this module and stopped at its end so the other chaos modules do
not share the two cores with its traffic. Every assertion reads what the store recorded: the
``alerts`` and ``action_audit`` tables and the request ``chains``.

A runbook experiment whose alert no detection rule raises yet is skipped with that reason (the
journal says so too). A deliberately broken copy of a built-in runbook (its verify step can
never pass) must make its experiment fail, with the reason in the journal and in the pytest
failure text: the suite catches a runbook that does not work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from chaos.engine import LabEngine
from chaos.experiment import load_experiment
from chaos.journal import Journal
from chaos.ledger import Ledger, revert_leftovers
from chaos.probes import faults_cleared, latency_p99_ms, model_ready
from remediation.runbook import BUILTIN_DIR

ROOT = Path(__file__).parents[2]
EXPERIMENTS = [p for p in sorted((ROOT / "chaos" / "experiments").glob("rb_*.yaml"))]
pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def engine(chaos_engine):
    if not isinstance(chaos_engine, LabEngine):
        pytest.skip("runbook experiments here need the default engine lab (chaos.engine)")
    yield chaos_engine
    chaos_engine.release()  # the later modules need not share the CPU with its traffic


def _audit(engine: LabEngine, since: float):
    return engine.store.query("SELECT * FROM action_audit WHERE ts >= ? ORDER BY id", (since,))


@pytest.mark.timeout(240)  # the first test also starts the engine lab (~60 s on 2 cores)
@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_runbook_experiment(path, run_experiment, engine):
    exp = load_experiment(path)
    journal: Journal = run_experiment(path)
    saved = Journal.load(journal.path)
    assert saved.verdict == "passed", saved.reasons
    t0 = saved.fault_at
    fault = next(a for a in exp.method if a.type == "fault")
    victim = fault.arguments.get("replica")  # None: the fault hits a whole model (a surge)
    model = fault.arguments.get("model", exp.sli.model)
    # alert out: the engine wrote it to the store, for the replica (or model) the fault hit
    alerts = engine.store.query("SELECT * FROM alerts WHERE ts >= ? AND status = 'firing'",
                                (t0,))
    wanted = {a.alertname for a in exp.expectations.alerts}
    hits = alerts[alerts.alertname.isin(wanted)]
    labels = [json.loads(lbl) for lbl in hits.labels]
    if victim:
        assert {lb["replica"] for lb in labels} == {victim}
    else:
        assert {lb.get("model") for lb in labels} == {model}
    # action taken: the runbook's step moved the fleet, then its verify step passed
    audit = _audit(engine, t0)
    runbook = exp.expectations.actions[0].runbook
    rows = audit[audit.runbook == runbook]
    applied = rows[(rows.phase == "after") & (rows.status == "applied")]
    assert len(applied) >= 1, rows.to_dict("records")
    target = applied.iloc[0].target
    assert target.endswith(f"/{victim}") if victim else target.split("/")[0] == model, target
    verify = rows[rows.step == "verify"]
    assert list(verify.status) == ["verified"], verify.to_dict("records")
    acted_at, verified_at = float(applied.iloc[0].ts), float(verify.iloc[0].ts)
    assert float(hits.ts.min()) <= acted_at <= verified_at
    # SLO back: the SLI windows recovered, within the experiment's bounds
    assert saved.time_to_detect_s is not None
    assert saved.time_to_detect_s <= exp.expectations.max_time_to_detect_s
    assert saved.time_to_recover_s is not None
    assert saved.slo_violation_s <= exp.expectations.max_slo_violation_s
    # the traffic itself (the lab's load generator, not the probes) moved as the runbook said:
    # from 1 s after the action (requests in flight) until the fault was reverted, or until
    # the verify for a runbook that gives the weight back once verified (hung-replica); a
    # model's action (lite share, replicas added) stays until the next reset, so at least 10 s
    reverted_at = saved.faults[0]["reverted_at"]
    gives_back = victim and (applied.ts > verified_at).any()
    until = verified_at if gives_back else reverted_at
    if not victim:
        until = max(until, acted_at + 11.0)
    # chains land seconds after their request: a runbook verified at once (the model's P99 was
    # fine as soon as the weight moved) leaves a short window whose chains are still on the way
    _wait_for(lambda: _chains_until(engine) >= until - 0.5, 20, "chains to land")
    chains = engine.store.query("SELECT replica, variant, latency_s FROM chains WHERE ts > ? "
                                "AND ts < ? AND error = 0 ORDER BY ts", (acted_at + 1.0, until))
    assert len(chains) > 20
    if victim:
        assert (chains.replica == victim).mean() < 0.02, chains.replica.value_counts().to_dict()
        fast = chains
    else:
        moved = _model_action_share(applied, chains, engine)
        assert moved >= 0.15, (runbook, moved, chains.replica.value_counts().to_dict(),
                               chains.variant.value_counts().to_dict())
        fast = chains[chains.index >= len(chains) // 2]  # a backlog drains after the action
    assert float(np.median(fast.latency_s)) * 1e3 < exp.sli.threshold_ms
    # faults reverted, the fleet serving
    for name in engine.target.replicas:
        assert faults_cleared(engine.target, replica=name)
        assert model_ready(engine.target, replica=name, model="synth")
    print(f"{path.stem}: detect {saved.time_to_detect_s:.1f} s, act {saved.time_to_act_s:.1f} s,"
          f" recover {saved.time_to_recover_s:.1f} s, SLO violation {saved.slo_violation_s:.1f} s,"
          f" chains after the action: {len(chains)}, P99 "
          f"{np.percentile(chains.latency_s, 99) * 1e3:.0f} ms")


def _chains_until(engine) -> float:
    return float(engine.store.query("SELECT COALESCE(MAX(ts), 0) AS t FROM chains").iloc[0].t)


def _model_action_share(applied, chains, engine) -> float:
    """The share of the traffic the model-level action moved: to the replicas a scale-out
    added, or to the lite variant (shed, degrade)."""
    if any("scale" in step for step in applied.step):
        added = {r.name for r in engine.lab.fleet.replicas} - {f"r{i}" for i in
                                                                range(engine.replicas)}
        return float(chains.replica.isin(added).mean())
    return float((chains.variant == "lite").mean())


def _broken_drift_runbook(tmp_path: Path) -> Path:
    """The built-in replica-p99-drift runbook, copied and broken: its verify wants the model's
    P99 under 0 s, which no fleet can meet. Same name, so it replaces the built-in."""
    books = yaml.safe_load((BUILTIN_DIR / "replica_drift.yaml").read_text())
    book = next(b for b in books if b["name"] == "replica-p99-drift")
    assert book["verify"]["sli"] == "p99_latency_seconds"
    book["verify"].update(value=0.0, deadline_s=6)
    path = tmp_path / "replica_drift_broken.yaml"
    path.write_text(yaml.safe_dump([book]))
    return path


@pytest.mark.timeout(240)
def test_a_broken_runbook_fails_its_experiment_with_the_reason(request, tmp_path, engine,
                                                               run_experiment):
    exp = load_experiment(ROOT / "chaos" / "experiments" / "rb_replica_p99_drift.yaml"
                          ).model_copy(deep=True)
    exp.title = "slow replica, broken runbook (verify can never pass)"
    fault = next(a for a in exp.method if a.type == "fault")
    fault.arguments["replica"] = "r1"  # not r0: its alert from the experiment above may linger
    exp.watch.duration_s = 18  # detect (~7 s) + reroute + a verify that gives up after 6 s
    t0 = time.time()
    with engine.runbooks([_broken_drift_runbook(tmp_path)]):
        with pytest.raises(pytest.fail.Exception) as failed:
            run_experiment(exp)  # expects "passed", so the fixture fails the test
    report = str(failed.value)
    journal = Journal.load(dict(request.node.user_properties)["chaos_journal"])
    assert journal.verdict == "failed"
    reason = next(r for r in journal.reasons if r.startswith("action replica-p99-drift:verify"))
    # the reason names the broken step, what it saw and the impossible threshold
    assert "ran but ended failed (expected verified)" in reason
    assert "p99_latency_seconds=" in reason and "not < 0.0 within 6s" in reason
    assert reason in report and "FAILED" in report and str(journal.path) in report
    # the loop ran up to the verify: alert, reroute, failed verify, rollback, all in the store
    # (r1's rows: r0's drift alert from the experiment above can re-fire as its traffic comes
    # back, and this broken runbook fails on it too; seen once in CI)
    audit = _audit(engine, t0)
    rows = audit[(audit.runbook == "replica-p99-drift") & (audit.target == "synth/r1")]
    assert ("shift-weight", "applied") in set(zip(rows.step, rows.status))
    assert list(rows[rows.step == "verify"].status) == ["failed"]
    assert ("rollback", "rolled_back") in set(zip(rows.step, rows.status))
    assert any(a["alertname"] == "ReplicaP99Drift" and a["labels"].get("replica") == "r1"
               for a in journal.alerts)
    # and the fault is still reverted, the fleet serving
    assert faults_cleared(engine.target, replica="r1")
    assert [h.phase for h in journal.hypotheses] == ["before", "during", "after"]
    assert journal.hypotheses[2].ok


def _wait_for(pred, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(180)
def test_runner_killed_while_remediation_acts_then_the_lab_is_restored(tmp_path, engine):
    """SIGKILL of a runner (its own process, as ``warden chaos run --target``) while the engine
    is rerouting around its fault: the ledger still reverts the fault, and the engine lab comes
    back to its steady state (the experiment's own hypothesis holds again)."""
    engine.ready()
    engine.reset(replicas={"r0"})  # an alert still firing on r0 would not fire (nor act) again
    target_file = engine.target.write(tmp_path / "target.json")
    ledger_path = tmp_path / "faults.ledger"
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                   "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaos.cli", "run", str(ROOT / "chaos/experiments/"
                                                       "rb_replica_p99_drift.yaml"),
         "--target", str(target_file), "--journal-dir", str(tmp_path / "j"), "--ledger",
         str(ledger_path), "--db", str(engine.target.db_path), "--capabilities",
         "detection,remediation"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        def acting() -> bool:
            audit = _audit(engine, t0)
            return bool(len(audit[(audit.runbook == "replica-p99-drift")
                                  & (audit.status == "applied")]))
        _wait_for(acting, 90, "the engine to reroute around the injected fault")
        assert len(Ledger(ledger_path).outstanding()) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not faults_cleared(engine.target, replica="r0")  # nobody reverted it yet
    result = revert_leftovers(Ledger(ledger_path), engine.target)
    assert result.ok and len(result.reverted) == 1, result
    assert Ledger(ledger_path).outstanding() == []
    engine.reset(alerts_timeout_s=0)  # weights back, as the next experiment does first
    for name in engine.target.replicas:
        assert faults_cleared(engine.target, replica=name)
        assert model_ready(engine.target, replica=name, model="synth")
    exp = load_experiment(ROOT / "chaos" / "experiments" / "rb_replica_p99_drift.yaml")
    probe = exp.steady_state_hypothesis.probes[0]
    lo, hi = probe.tolerance
    values = []
    for _ in range(1 + exp.steady_state_hypothesis.retries):
        values.append(latency_p99_ms(engine.target, **probe.arguments))
        if lo <= values[-1] <= hi:
            break
        time.sleep(exp.steady_state_hypothesis.retry_delay_s)
    assert lo <= values[-1] <= hi, f"steady state not back: router P99 {values} ms"
    weights = {r["name"]: r["weight"] for r in engine.lab.admin.state()["replicas"]}
    assert set(weights.values()) == {1.0}, weights
