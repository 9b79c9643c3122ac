"""What remediation did about an alert, read from its audit, as annotations for on-call.

Why read the audit and not be told: remediation writes every action to ``action_audit`` before
and after it runs (``remediation/audit.py``); that table is the record on-call would check by
hand. Reading it here keeps the two sides decoupled (remediation never calls alerting, alerting
never imports remediation) and makes the annotation say exactly what the audit says, including
after an engine restart.

Which rows belong to an alert: an execution of a runbook for an alert is keyed
``stable_key(runbook, fingerprint, starts_at)`` (``remediation/executor.py``), and every action
row carries that key in ``execution``; action rows also carry the alert's labels in
``evidence.labels``. An execution belongs to the alert when its key matches, or when one of its
rows names labels with the alert's fingerprint (so an execution recorded under another start
time of the same alert is not missed). Only rows from ``starts_at - slack_s`` on are read, through
the audit's ``ts`` index.

The :class:`RemediationStage` runs just before the outbox, so the *next* notification of the
group after remediation acted (the resolved one, or a repeat) carries, for the latest execution:

``remediation_action``     what was done, step by step (``runbook/step on target: status``)
``remediation_outcome``    ``verified``, ``rolled_back``, ``verify_failed``, ``failed``,
                           ``blocked by guard``, ``applied``, ``dry_run`` or ``in_progress``
``remediation_audit_id``   the ``action_audit.id`` of the row that decided the outcome
``remediation_execution``  the execution key (all its rows: ``warden audit``)
``remediation_runbook``, ``remediation_detail`` (the deciding row's result text)
``remediation_paged``      ``true`` with ``remediation_page_fingerprint`` when the runbook's
                           escalation page (``WardenRemediationFailed``/``...Verified``, labels
                           ``runbook`` and ``trigger``) passed through this alerting service;
                           paging is not audited, so this is what alerting itself saw

Idempotency keys do not change (they hash fingerprints and start times, not annotations). A
malformed audit row is skipped and counted in :attr:`AuditNotes.rejected_rows`; a failed read is
counted in :attr:`RemediationStage.errors` and the alert goes on unannotated: never dropped.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from warden.alerting.enrich import MAX_ANNOTATION_CHARS
from warden.alerting.grouping import GroupFlush
from warden.records import Alert, alert_fingerprint, freeze_labels, stable_key

__all__ = ["AUDIT_TABLE", "PAGE_ALERTNAMES", "AuditNotes", "RemediationNote", "RemediationStage",
           "find_page"]

logger = logging.getLogger("warden.alerting.remediation")

AUDIT_TABLE = "action_audit"
PAGE_ALERTNAMES = frozenset({"WardenRemediationFailed", "WardenRemediationVerified"})
"""What ``remediation/executor.py`` names the alerts it pages on-call with."""
MAX_AUDIT_ROWS = 5000
"""Rows read per alert at most (the newest win): a long-firing alert cannot make a flush slow."""

_SQL = (f"SELECT id, ts, runbook, step, target, phase, status, evidence, result, execution "
        f"FROM {AUDIT_TABLE} WHERE ts >= ? ORDER BY id DESC LIMIT ?")


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    ts: float
    runbook: str
    step: str
    target: str
    phase: str
    status: str
    evidence: dict[str, Any]
    result: str
    execution: str


@dataclass(frozen=True, slots=True)
class RemediationNote:
    """One runbook execution for one alert, summarised from its audit rows."""

    execution: str
    runbook: str
    action: str
    outcome: str
    audit_id: int
    detail: str

    def annotations(self) -> dict[str, str]:
        clip = (lambda t: t if len(t) <= MAX_ANNOTATION_CHARS
                else t[: MAX_ANNOTATION_CHARS - 1] + "…")
        return {"remediation_action": clip(self.action),
                "remediation_outcome": self.outcome,
                "remediation_audit_id": str(self.audit_id),
                "remediation_execution": self.execution,
                "remediation_runbook": self.runbook,
                "remediation_detail": clip(self.detail)}


def _summarise(execution: str, rows: Sequence[_Row]) -> RemediationNote:
    """The headline of one execution: the most final thing its rows say, in this order."""
    rows = sorted(rows, key=lambda r: r.id)
    after = [r for r in rows if r.phase == "after"]
    verify = [r for r in rows if r.phase == "verify"]
    rolled = [r for r in rows if r.phase == "rollback" or r.status == "rolled_back"]
    refused = [r for r in rows if r.phase == "refused"]

    if verify and verify[-1].status == "verified":
        outcome, deciding = ("verified", verify[-1])
    elif rolled:
        outcome, deciding = ("rolled_back", rolled[-1])
    elif verify:
        outcome, deciding = ("verify_failed", verify[-1])
    elif failed := [r for r in after if r.status == "failed"]:
        outcome, deciding = ("failed", failed[-1])
    elif refused:
        outcome, deciding = ("blocked by guard", refused[-1])
    elif applied := [r for r in after if r.status == "applied"]:
        outcome, deciding = ("applied", applied[-1])
    elif after:
        outcome, deciding = ("dry_run" if after[-1].result.startswith("dry run")
                                 else after[-1].status, after[-1])
    else:
        outcome, deciding = ("in_progress", rows[-1])
    steps = [f"{r.runbook}/{r.step} on {r.target}: "
             f"{'refused' if r.phase == 'refused' else r.status}"
             + (f" ({r.result})" if r.result else "")
             for r in rows if r.phase in ("after", "refused")]
    return RemediationNote(execution, deciding.runbook, "; ".join(steps) or "no action taken",
                           outcome, deciding.id, deciding.result)


class AuditNotes:
    """Reads ``action_audit`` for the executions that acted on an alert.

    Args:
        conn: a connection to the store (``warden.db.open_db``); read only here.
        slack_s: rows this long before the alert's start are read too (clock skew between the
            detector's tick time and the audit's clock).
    """

    def __init__(self, conn: sqlite3.Connection, *, slack_s: float = 60.0,
                 max_rows: int = MAX_AUDIT_ROWS) -> None:
        self.conn = conn
        self.slack_s = slack_s
        self.max_rows = max_rows
        self.rejected_rows = 0
        self._lock = threading.Lock()

    def _rows(self, since: float) -> list[_Row]:
        try:
            raw = self.conn.execute(_SQL, (since, self.max_rows)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # remediation never ran against this store
                return []
            raise
        out = []
        for r in raw:
            try:
                ev = json.loads(r[7]) if r[7] else {}
                if not isinstance(ev, dict):
                    raise ValueError("evidence is not an object")
                out.append(_Row(int(r[0]), float(r[1]), str(r[2]), str(r[3]), str(r[4]),
                                str(r[5]), str(r[6]), ev, str(r[8] or ""), str(r[9] or "")))
            except (ValueError, TypeError):
                with self._lock:
                    self.rejected_rows += 1
                logger.warning("action_audit row %s is malformed; skipped", r[0])
        return out

    def for_alert(self, alert: Alert) -> list[RemediationNote]:
        """Executions for ``alert`` (oldest first); empty when remediation did nothing."""
        fp = alert.fingerprint
        rows = self._rows(alert.starts_at - self.slack_s)
        mine: set[str] = set()
        for r in rows:
            if not r.execution or r.execution in mine:
                continue
            labels = r.evidence.get("labels")
            if r.execution == stable_key(r.runbook, fp, alert.starts_at) or (
                    isinstance(labels, dict) and _fingerprint(labels) == fp):
                mine.add(r.execution)
        by_exec: dict[str, list[_Row]] = {}
        for r in rows:
            if r.execution in mine:
                by_exec.setdefault(r.execution, []).append(r)
        notes = [_summarise(e, rs) for e, rs in by_exec.items()]
        return sorted(notes, key=lambda n: n.audit_id)

    def annotate(self, alert: Alert) -> Alert:
        """``alert`` with the latest execution's annotations (unchanged if there is none)."""
        notes = self.for_alert(alert)
        if not notes:
            return alert
        ann = {**dict(alert.annotations), **notes[-1].annotations()}
        if len(notes) > 1:
            ann["remediation_executions"] = str(len(notes))
        return replace(alert, annotations=freeze_labels(ann))


def _fingerprint(labels: dict[Any, Any]) -> str | None:
    try:
        return alert_fingerprint({str(k): str(v) for k, v in labels.items()})
    except (TypeError, ValueError):
        return None


def find_page(alert: Alert, runbook: str, candidates: Iterable[Alert]) -> Alert | None:
    """The escalation page a runbook sent for ``alert``, among ``candidates``.

    The executor pages with the alert's labels, ``alertname`` replaced, ``severity`` set by
    the runbook, plus ``runbook`` and ``trigger`` (the alert's name).
    """
    want = {k: v for k, v in alert.labels if k not in ("alertname", "severity")}
    for p in candidates:
        labels = dict(p.labels)
        if (labels.get("alertname") in PAGE_ALERTNAMES and labels.get("runbook") == runbook
                and labels.get("trigger") == alert.name and p.starts_at >= alert.starts_at
                and all(labels.get(k) == v for k, v in want.items())):
            return p
    return None


class RemediationStage:
    """Pipeline stage: adds what remediation did to each alert of a flush; drops nothing.

    ``pages`` lists the alerts this alerting service holds (the dispatcher's), where a
    runbook's escalation page shows up.
    """

    name = "remediation"

    def __init__(self, notes: AuditNotes, *,
                 pages: Callable[[], Iterable[Alert]] | None = None) -> None:
        self.notes = notes
        self.pages = pages
        self.errors = 0

    def _annotate(self, alert: Alert) -> Alert:
        out = self.notes.annotate(alert)
        runbook = dict(out.annotations).get("remediation_runbook")
        if runbook and self.pages is not None:
            page = find_page(alert, runbook, self.pages())
            if page is not None:
                out = replace(out, annotations=freeze_labels({
                    **dict(out.annotations), "remediation_paged": "true",
                    "remediation_page_fingerprint": page.fingerprint}))
        return out

    def process(self, flush: GroupFlush, alerts: list[Alert]) -> list[Alert]:
        out = []
        for a in alerts:
            try:
                out.append(self._annotate(a))
            except Exception:
                self.errors += 1
                logger.exception("reading the action audit for %s failed; sent without it",
                                 a.fingerprint)
                out.append(a)
        return out
