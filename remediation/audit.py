"""The action audit: a row before each action runs and a row after, in table ``action_audit``.

Why before *and* after, keyed: the ``before`` row (status ``applying``) is written and committed
before the actuator is called, and ``UNIQUE(idempotency_key, phase)`` makes that insert the
claim on the key. If the engine dies mid-action, a ``before`` row without an ``after`` row is the
evidence; :func:`reconcile` compares it with the actuator's real state, writes the missing
``after`` row and never calls the actuator again for that key.

Phases: ``before`` (applying), ``after`` (applied | failed | skipped), ``verify`` (verified |
failed), ``rollback`` (rolled_back | failed), ``refused`` (skipped, with the guard's reason).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remediation.changes import Change
from remediation.guards import HistoryEntry
from warden.db import open_db

__all__ = ["AUDIT_DDL", "AuditLog", "AuditRow", "DuplicateAction", "change_from_json", "reconcile"]

AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS action_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    runbook TEXT NOT NULL,
    step TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    phase TEXT NOT NULL,
    status TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL DEFAULT '',
    execution TEXT NOT NULL DEFAULT '',
    UNIQUE (idempotency_key, phase)
);
CREATE INDEX IF NOT EXISTS action_audit_ts ON action_audit (ts);
"""

_COLS = ("ts", "runbook", "step", "target", "params", "idempotency_key", "phase", "status",
         "evidence", "result", "execution")


class DuplicateAction(Exception):
    """The ``before`` row for this key exists: the action was already claimed or applied."""


@dataclass(frozen=True)
class AuditRow:
    id: int
    ts: float
    runbook: str
    step: str
    target: str
    params: dict[str, Any]
    idempotency_key: str
    phase: str
    status: str
    evidence: dict[str, Any]
    result: str
    execution: str


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class AuditLog:
    """Writes and reads ``action_audit`` over one SQLite connection (WAL, from ``open_db``)."""

    def __init__(self, conn: sqlite3.Connection, *, clock: Callable[[], float],
                 create: bool = True) -> None:
        self.conn = conn
        self.clock = clock
        self._lock = threading.Lock()
        if not create:  # a read-only reader (``warden audit``) in another process
            return
        with self._lock:
            for stmt in (s.strip() for s in AUDIT_DDL.split(";")):
                if stmt:
                    self.conn.execute(stmt)

    @classmethod
    def open(cls, path: str | Path, *, clock: Callable[[], float]) -> AuditLog:
        return cls(open_db(path), clock=clock)

    def _insert(self, row: Mapping[str, Any], *, ignore: bool = False) -> None:
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        sql = (f"{verb} INTO action_audit ({', '.join(_COLS)}) "
               f"VALUES ({', '.join('?' * len(_COLS))})")
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute(sql, [row[c] for c in _COLS])
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def record(self, *, runbook: str, step: str, change: Change, key: str, phase: str,
               status: str, evidence: Mapping[str, Any] | None = None, result: str = "",
               execution: str = "", ignore: bool = False) -> None:
        """Write one row; a second ``before`` for a key raises :class:`DuplicateAction`."""
        params = {"change": change.to_json(),
                  "inverse": change.inverse.to_json() if change.inverse else None}
        row = {"ts": self.clock(), "runbook": runbook, "step": step, "target": change.target,
               "params": _json(params), "idempotency_key": key, "phase": phase,
               "status": status, "evidence": _json(dict(evidence or {})), "result": result,
               "execution": execution}
        try:
            self._insert(row, ignore=ignore)
        except sqlite3.IntegrityError as exc:
            raise DuplicateAction(f"{phase} row for key {key} exists") from exc

    # -- readers ----------------------------------------------------------------------------------

    def seen(self, key: str) -> bool:
        """Whether an action with ``key`` was ever started (its ``before`` row exists)."""
        return self.has(key, "before")

    def has(self, key: str, phase: str) -> bool:
        with self._lock:
            row = self.conn.execute(
                "SELECT 1 FROM action_audit WHERE idempotency_key = ? AND phase = ?",
                (key, phase)).fetchone()
        return row is not None

    def rows(self, *, since: float | None = None, runbook: str | None = None,
             limit: int | None = None) -> list[AuditRow]:
        where, params = [], []
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if runbook:
            where.append("runbook = ?")
            params.append(runbook)
        sql = "SELECT id, " + ", ".join(_COLS) + " FROM action_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) ORDER BY id"
        with self._lock:
            raw = self.conn.execute(sql, params).fetchall()
        return [AuditRow(id=r[0], ts=r[1], runbook=r[2], step=r[3], target=r[4],
                         params=json.loads(r[5]), idempotency_key=r[6], phase=r[7], status=r[8],
                         evidence=json.loads(r[9]), result=r[10], execution=r[11]) for r in raw]

    def unfinished(self) -> list[AuditRow]:
        """``before`` rows with no ``after`` row: actions the engine died in the middle of."""
        with self._lock:
            ids = [r[0] for r in self.conn.execute(
                "SELECT b.id FROM action_audit b WHERE b.phase = 'before' AND NOT EXISTS ("
                "SELECT 1 FROM action_audit a WHERE a.idempotency_key = b.idempotency_key "
                "AND a.phase = 'after') ORDER BY b.id").fetchall()]
        return [r for r in self.rows() if r.id in set(ids)]

    def history(self, since: float) -> list[HistoryEntry]:
        """Applied actions since ``since``, for the guards' cooldowns and hourly cap."""
        out = []
        for r in self.rows(since=since):
            if r.phase == "after" and r.status == "applied":
                out.append(HistoryEntry(r.ts, r.params["change"]["kind"], r.target, r.execution))
        return out


def change_from_json(data: Mapping[str, Any]) -> Change:
    return Change(kind=data["kind"], model=data["model"], args=data["args"],
                  target=data.get("target", ""), reduces_capacity=data.get("reduces_capacity",
                                                                           False))


def reconcile(audit: AuditLog, state_fn: Callable[[], Any]) -> list[tuple[AuditRow, str]]:
    """Close every unfinished action against the actuator's real state; never re-apply one.

    Returns ``(row, status)`` per reconciled action: ``applied`` where the fleet already shows the
    change, ``failed`` where it does not or cannot tell (a restart). The key stays claimed either
    way, so the same action is never applied twice; the runbook's next trigger plans afresh.
    """
    todo = audit.unfinished()
    if not todo:
        return []
    state = state_fn()
    out = []
    for row in todo:
        change = change_from_json(row.params["change"])
        shown = change.satisfied_by(state)
        if shown:
            status, why = "applied", "reconciled after restart: the fleet shows the change"
        elif shown is None:
            status, why = "failed", ("reconciled after restart: cannot tell whether it took "
                                     "effect; not re-applied")
        else:
            status, why = "failed", ("reconciled after restart: the fleet does not show the "
                                     "change; not re-applied")
        audit.record(runbook=row.runbook, step=row.step, change=change, key=row.idempotency_key,
                     phase="after", status=status, evidence={"state": state.to_json()},
                     result=why, execution=row.execution, ignore=True)
        out.append((row, status))
    return out
