"""What remediation did reaches on-call: read from the real action audit, sent to a real webhook.

Remediation here is the real :class:`RemediationService` (built-in runbooks, real guards, real
audit) over :class:`DryRun`, the actuator named for what it is (no fleet moves); it shares one
SQLite store with the alerting service and never calls it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from remediation.actuators.dryrun import DryRun
from remediation.audit import AuditLog
from remediation.changes import Change
from remediation.service import RemediationConfig, RemediationService
from remediation.sli import StaticSli
from warden.alerting.config import load_alerting_config
from warden.alerting.remediation_notes import AuditNotes
from warden.alerting.service import AlertingService
from warden.db import open_db
from warden.records import Alert, AlertStatus, freeze_labels
from warden.store import Store


class Clock:
    """Injected time: ``sleep`` advances it, so a 30 s verification deadline takes no time."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


LABELS = {"alertname": "ReplicaP99Drift", "model": "synth", "replica": "r1"}


def _alert(clock: Clock, labels: dict[str, str] = LABELS) -> Alert:
    return Alert(freeze_labels(labels), freeze_labels({"summary": "P99 drift on r1"}), clock(),
                 None, AlertStatus.FIRING)


def _setup(tmp_path: Path, url: str, clock: Clock, *, p99_s: float = 0.05,
           guards: dict | None = None) -> tuple[AlertingService, RemediationService]:
    db = tmp_path / "w.db"
    Store(db).close()  # the engine's store, as in the lab
    holder: list[AlertingService] = []
    rem = RemediationService(
        RemediationConfig.model_validate({"guards": {"cooldown_s": 0, **(guards or {})}}),
        DryRun.simple({"synth": 2}), AuditLog.open(db, clock=clock),
        StaticSli(lambda name, labels, now: p99_s), clock=clock, sleep=clock.sleep,
        page=lambda a: holder[0].submit([a]))  # as the lab wires it: pages go to alerting
    cfg = load_alerting_config({
        "receivers": [{"name": "oncall", "url": url}],
        "routes": [{"receiver": "oncall", "group_by": ["alertname", "replica"],
                    "group_wait_s": 0, "group_interval_s": 1, "repeat_interval_s": 60}]})
    svc = AlertingService(cfg, open_db(db), registry=CollectorRegistry(), clock=clock)
    holder.append(svc)
    return svc, rem


def _audit(tmp_path: Path, clock: Clock) -> AuditLog:
    return AuditLog(open_db(tmp_path / "w.db"), clock=clock, create=False)


def _last_annotations(server, alertname: str = "ReplicaP99Drift") -> dict[str, str]:
    bodies = [r.json() for r in server.snapshot()]
    (a,) = [b for b in bodies if b["commonLabels"]["alertname"] == alertname][-1]["alerts"]
    return a["annotations"]


def test_resolved_notification_says_what_was_done_and_that_it_worked(
        tmp_path, recording_server) -> None:
    clock = Clock()
    svc, rem = _setup(tmp_path, recording_server.url, clock)
    try:
        alert = _alert(clock)
        svc.submit([alert])
        assert svc.delivery.run_once() == 1
        assert not any(k.startswith("remediation") for k in _last_annotations(recording_server))
        (report,) = rem.handle(alert).result(timeout=10)
        assert report.outcome == "verified"
        clock.sleep(5)
        svc.submit([replace(alert, status=AlertStatus.RESOLVED, ends_at=clock())])
        assert svc.delivery.run_once() == 1
    finally:
        rem.stop()
    sent = recording_server.snapshot()
    assert sent[-1].json()["status"] == "resolved"
    assert sent[0].headers["Idempotency-Key"] != sent[-1].headers["Idempotency-Key"]
    ann = _last_annotations(recording_server)
    verify = [r for r in _audit(tmp_path, clock).rows() if r.phase == "verify"]
    assert len(verify) == 1 and verify[0].status == "verified"
    assert ann["remediation_outcome"] == "verified"
    assert ann["remediation_audit_id"] == str(verify[0].id)
    assert ann["remediation_execution"] == report.execution == verify[0].execution
    assert ann["remediation_runbook"] == "replica-p99-drift"
    assert ann["remediation_action"].startswith("replica-p99-drift/shift-weight on ")
    assert ": applied" in ann["remediation_action"]
    assert ann["summary"] == "P99 drift on r1"  # the alert's own annotations stay
    assert "remediation_paged" not in ann  # verified: this runbook does not page


def test_a_failed_verification_reads_rolled_back(tmp_path, recording_server) -> None:
    clock = Clock()
    svc, rem = _setup(tmp_path, recording_server.url, clock, p99_s=0.9)  # never recovers
    try:
        alert = _alert(clock)
        (report,) = rem.handle(alert).result(timeout=10)
        assert report.outcome == "verify_failed" and report.rolled_back
        svc.submit([alert])  # the first notification comes after remediation: it says so
        assert svc.delivery.run_once() == 2  # the runbook's page, and the alert
    finally:
        rem.stop()
    ann = _last_annotations(recording_server)
    rows = _audit(tmp_path, clock).rows()
    rollback = [r for r in rows if r.status == "rolled_back"]
    assert ann["remediation_outcome"] == "rolled_back"
    assert ann["remediation_audit_id"] == str(rollback[-1].id)
    assert "replica-p99-drift/rollback on " in ann["remediation_action"]
    # the runbook paged on-call (through this service): the alert says so and which page
    assert report.paged and ann["remediation_paged"] == "true"
    pages = [r.json() for r in recording_server.snapshot()
             if r.json()["commonLabels"].get("alertname") == "WardenRemediationFailed"]
    assert [p["alerts"][0]["fingerprint"] for p in pages] == [
        ann["remediation_page_fingerprint"]]


def test_a_guard_refusal_reads_blocked(tmp_path, recording_server) -> None:
    clock = Clock()
    svc, rem = _setup(tmp_path, recording_server.url, clock, guards={"kill_switch": True})
    try:
        alert = _alert(clock)
        (report,) = rem.handle(alert).result(timeout=10)
        assert report.outcome == "refused"
        svc.submit([alert])
        assert svc.delivery.run_once() == 1
    finally:
        rem.stop()
    ann = _last_annotations(recording_server)
    (refused,) = [r for r in _audit(tmp_path, clock).rows() if r.phase == "refused"]
    assert ann["remediation_outcome"] == "blocked by guard"
    assert ann["remediation_audit_id"] == str(refused.id)
    assert "kill_switch" in ann["remediation_detail"]


def test_other_alerts_and_malformed_rows(tmp_path, recording_server) -> None:
    """Rows for another alert are not borrowed; a malformed row is skipped and counted."""
    clock = Clock()
    svc, rem = _setup(tmp_path, recording_server.url, clock)
    rem.stop()
    audit = AuditLog.open(tmp_path / "w.db", clock=clock)
    other = {**LABELS, "replica": "r0"}
    audit.record(runbook="replica-p99-drift", step="shift-weight",
                 change=Change("reroute", "synth", {"weights": {"r0": 0.0}}, target="r0"),
                 key="k-other", phase="after", status="applied",
                 evidence={"alert": "ReplicaP99Drift", "labels": other}, execution="e-other")
    audit.conn.execute(
        "INSERT INTO action_audit (ts, runbook, step, target, params, idempotency_key, phase, "
        "status, evidence, result, execution) VALUES (?, 'x', 'y', 'r1', '{}', 'k-bad', "
        "'after', 'applied', '{not json', '', 'e-bad')", (clock(),))
    svc.submit([_alert(clock)])
    assert svc.delivery.run_once() == 1
    assert not any(k.startswith("remediation") for k in _last_annotations(recording_server))
    assert svc.remediation is not None and svc.remediation.notes.rejected_rows == 1
    assert svc.remediation.errors == 0
    # the other alert does get its own row
    notes = AuditNotes(open_db(tmp_path / "w.db")).for_alert(_alert(clock, other))
    assert [(n.execution, n.outcome) for n in notes] == [("e-other", "applied")]


def test_no_audit_table_means_no_notes_and_a_broken_read_loses_nothing(
        tmp_path, recording_server) -> None:
    cfg = load_alerting_config({
        "receivers": [{"name": "oncall", "url": recording_server.url}],
        "routes": [{"receiver": "oncall", "group_by": ["replica"], "group_wait_s": 0}]})
    conn = open_db(tmp_path / "bare.db")  # remediation never ran here: no action_audit
    svc = AlertingService(cfg, conn, registry=CollectorRegistry())
    svc.submit([_alert(Clock())])
    assert svc.delivery.run_once() == 1
    assert svc.remediation is not None and svc.remediation.errors == 0

    class Broken(AuditNotes):
        def for_alert(self, alert: Alert) -> list:
            raise RuntimeError("disk on fire")

    svc.remediation.notes = Broken(conn)
    svc.submit([_alert(Clock(), {**LABELS, "replica": "r9"})])
    assert svc.delivery.run_once() == 1  # delivered without the notes
    assert svc.remediation.errors == 1
    assert len(recording_server.snapshot()) == 2


@pytest.mark.parametrize("rows,outcome", [
    ([("before", "applying")], "in_progress"),
    ([("before", "applying"), ("after", "failed")], "failed"),
    ([("before", "applying"), ("after", "applied"), ("verify", "failed")], "verify_failed"),
])
def test_outcome_headline(tmp_path, rows, outcome) -> None:
    clock = Clock()
    audit = AuditLog.open(tmp_path / "w.db", clock=clock)
    for i, (phase, status) in enumerate(rows):
        audit.record(runbook="rb", step="s", change=Change("scale", "synth", {"replicas": 3}),
                     key="k", phase=phase, status=status,
                     evidence={"labels": LABELS} if phase != "verify" else {}, execution="e1")
        clock.sleep(1)
    (note,) = AuditNotes(audit.conn).for_alert(_alert(Clock()))
    assert note.outcome == outcome
