"""The engine process SIGKILLed in the middle of an action, then restarted: reconciliation closes
the audit from the actuator's real state and the redelivered alert applies nothing twice.

The "fleet" is a JSON file (its state survives the kill, as a real fleet's would); the engine is a
real Python process running the production executor, guards, audit and runbook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from remediation.actions import builtin_registry
from remediation.applier import Applier
from remediation.audit import AuditLog, reconcile
from remediation.executor import RunbookExecutor
from remediation.guards import GuardConfig, Guards
from remediation.runbook import load_runbooks
from remediation.sli import StaticSli
from warden.records import Alert, AlertStatus, freeze_labels

ROOT = Path(__file__).resolve().parents[2]

FILE_FLEET = textwrap.dedent('''
    import json, time
    from pathlib import Path
    from remediation.changes import FleetState, ModelState

    class FileFleet:
        """A fleet whose state is a JSON file; scale() takes effect, then waits for readiness."""
        name = "file"

        def __init__(self, path, wait_s=0.0):
            self.path, self.wait_s = Path(path), wait_s

        def _load(self):
            return json.loads(self.path.read_text())

        def _save(self, d):
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(d))
            tmp.replace(self.path)

        def replicas(self, model):
            return self._load()["replicas"]

        def scale(self, model, n):
            d = self._load()
            d["replicas"] = n
            d["calls"].append(["scale", n])
            self._save(d)
            Path(str(self.path) + ".applied").touch()
            time.sleep(self.wait_s)  # waiting for the new replica to be ready: killed here

        def set_weights(self, model, weights):
            raise NotImplementedError

        def set_variant(self, model, variant, fraction):
            d = self._load()
            d["lite"] = fraction
            d["calls"].append(["set_variant", fraction])
            self._save(d)

        def restart(self, replica):
            raise NotImplementedError

        def state(self):
            d = self._load()
            names = tuple(f"r{i}" for i in range(d["replicas"]))
            return FleetState(models={"synth": ModelState(
                replicas=d["replicas"], healthy=d["replicas"], weights={n: 1.0 for n in names},
                healthy_replicas=names, lite_fraction=d.get("lite", 0.0))}, cold_start_s=1.0)
''')

ENGINE = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from file_fleet import FileFleet
    from remediation.actions import builtin_registry
    from remediation.applier import Applier
    from remediation.audit import AuditLog
    from remediation.executor import RunbookExecutor
    from remediation.guards import GuardConfig, Guards
    from remediation.runbook import load_runbooks
    from remediation.sli import StaticSli
    from warden.records import Alert, AlertStatus, freeze_labels

    db, state = sys.argv[1], sys.argv[2]
    clock = time.time
    audit = AuditLog.open(db, clock=clock)
    applier = Applier(FileFleet(state, wait_s=60), Guards(GuardConfig(), clock=clock), audit,
                      clock=clock)
    ex = RunbookExecutor(load_runbooks(builtin_registry()), applier,
                         StaticSli(lambda n, l, now: 0.9), clock=clock, sleep=time.sleep)
    alert = Alert(freeze_labels({"alertname": "ModelSaturated", "model": "synth",
                                 "severity": "critical"}), (), 1800000000.0, None,
                  AlertStatus.FIRING)
    ex.handle(alert)
''')


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_sigkill_mid_action_then_restart(tmp_path: Path):
    (tmp_path / "file_fleet.py").write_text(FILE_FLEET)
    (tmp_path / "engine.py").write_text(ENGINE)
    db, state = tmp_path / "warden.db", tmp_path / "fleet.json"
    state.write_text(json.dumps({"replicas": 2, "calls": []}))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{tmp_path}"}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "engine.py"), str(db), str(state),
                             str(tmp_path)], env=env, cwd=ROOT)
    try:
        deadline = time.time() + 40
        while not Path(str(state) + ".applied").exists():
            assert proc.poll() is None, "engine exited before acting"
            assert time.time() < deadline, "engine never reached the action"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the engine dies inside actuator.scale()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    sys.path.insert(0, str(tmp_path))
    try:
        from file_fleet import FileFleet  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    fleet = FileFleet(state)
    t = [time.time()]
    clock = lambda: t[0]  # noqa: E731
    audit = AuditLog.open(db, clock=clock)
    [row] = audit.unfinished()
    assert row.step == "scale-out" and row.status == "applying"
    [(_, status)] = reconcile(audit, fleet.state)
    assert status == "applied"  # the fleet shows 3 replicas: the change had taken effect

    # restarted engine: the alert is delivered again
    applier = Applier(fleet, Guards(GuardConfig(), clock=clock), audit, clock=clock)
    seq = iter([0.9, 0.1, 0.1, 0.1])
    ex = RunbookExecutor(load_runbooks(builtin_registry()), applier,
                         StaticSli(lambda n, l, now: next(seq)), clock=clock,
                         sleep=lambda s: t.__setitem__(0, t[0] + s))
    alert = Alert(freeze_labels({"alertname": "ModelSaturated", "model": "synth",
                                 "severity": "critical"}), (), 1800000000.0, None,
                  AlertStatus.FIRING)
    [rep] = ex.handle(alert)
    calls = json.loads(state.read_text())["calls"]
    assert calls == [["scale", 3]], calls  # applied exactly once
    assert [s.status for s in rep.steps if s.step == "scale-out"] == ["duplicate"]
    rows = [(r.step, r.phase, r.status) for r in audit.rows() if r.step == "scale-out"]
    assert rows == [("scale-out", "before", "applying"), ("scale-out", "after", "applied")]
    assert "reconciled after restart" in [r for r in audit.rows()
                                          if r.step == "scale-out"][1].result
