"""``warden runbooks validate|list|dry-run`` and ``warden audit`` through their argparse hooks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from remediation.audit import AuditLog
from remediation.changes import Change
from remediation.cli import register


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    args = p.parse_args(argv)
    return args.func(args)


def test_validate_ok_and_bad(tmp_path: Path, capsys):
    assert run(["runbooks", "validate"]) == 0
    assert "ok  saturation" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrigger: {alertname: A}\nsteps: [{name: s, action: nuke}]\n")
    assert run(["runbooks", "validate", str(bad)]) == 1
    assert "bad.yaml: x: steps[0]: unknown action 'nuke'" in capsys.readouterr().out


def test_dry_run_prints_plan_and_changes_nothing(tmp_path: Path, capsys):
    alert = tmp_path / "a.json"
    alert.write_text(json.dumps({"labels": {"alertname": "ModelSaturated", "model": "synth",
                                            "severity": "critical"}}))
    assert run(["runbooks", "dry-run", str(alert), "--replicas", "synth=2", "--cold-start",
                "30", "--sli", "p99_latency_seconds=0.9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    [rep] = out["reports"]
    assert rep["runbook"] == "saturation" and rep["outcome"] == "verify_failed"
    assert [c[0] for c in out["calls"]] == ["set_variant", "scale"]
    assert out["pages"][0]["alertname"] == "WardenRemediationFailed"


def test_dry_run_accepts_an_alertmanager_webhook_and_rejects_junk(tmp_path: Path, capsys):
    body = {"version": "4", "groupKey": "{}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "warden", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "", "alerts": [
                {"status": "firing", "labels": {"alertname": "ReplicaHung", "model": "synth",
                                                "replica": "r1"}, "annotations": {},
                 "startsAt": "2026-11-22T05:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "", "fingerprint": "x"}]}
    f = tmp_path / "wh.json"
    f.write_text(json.dumps(body))
    assert run(["runbooks", "dry-run", str(f), "--replicas", "synth=3"]) == 0
    assert "runbook hung-replica" in capsys.readouterr().out
    f.write_text("[1, 2]")
    assert run(["runbooks", "dry-run", str(f)]) == 1
    assert "warden:" in capsys.readouterr().out


def test_audit_lists_rows(tmp_path: Path, capsys):
    db = tmp_path / "w.db"
    audit = AuditLog.open(db, clock=lambda: 1.8e9)
    ch = Change("scale", "synth", {"replicas": 3})
    audit.record(runbook="saturation", step="scale-out", change=ch, key="k1", phase="before",
                 status="applying")
    audit.record(runbook="saturation", step="scale-out", change=ch, key="k1", phase="after",
                 status="applied", result="scale synth to 3")
    assert run(["audit", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "applying" in out and "scale synth to 3" in out
    assert run(["audit", "--db", str(tmp_path / "none.db")]) == 1
