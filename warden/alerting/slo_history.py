"""SLO alerts kept in the store's ``alerts`` history, so an engine restart forgets none.

Why: an SLO alert's state (which tiers fire since when) lives in the evaluator's memory. If the
engine restarts while a page fires and the burn stops meanwhile, a fresh evaluator sees nothing
and the receiver never hears "resolved": a page left open forever. So each SLO alert transition
is written to ``alerts`` (the table detection writes and ``chaos`` and the dashboard read; same
columns), and on start the alerts whose last row says ``firing`` are restored, announced again
(same fingerprint and ``startsAt``, so the same idempotency key at the first flush: receivers
deduplicate it) and then resolved by the next evaluation if the burn is over.

The DDL is the one of :data:`warden.detection.ALERTS_DDL` (a test holds them equal), repeated
here so that alerting does not import detection's numerical stack.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence

from warden.records import Alert, AlertStatus, freeze_labels

__all__ = ["ALERTS_DDL", "SloAlertHistory"]

logger = logging.getLogger("warden.alerting.slo")

ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    alertname TEXT NOT NULL,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts);
"""

_LATEST = ("SELECT a.fingerprint, a.status, a.labels, a.annotations, a.starts_at FROM alerts a "
           "JOIN (SELECT fingerprint, MAX(id) AS id FROM alerts WHERE alertname = ? "
           "GROUP BY fingerprint) m ON a.id = m.id")


class SloAlertHistory:
    """Writes SLO alert transitions to ``alerts`` and reads back the ones still firing.

    A row that cannot be read back (bad JSON, labels that are not a mapping, a fingerprint
    that does not match) is skipped and counted in :attr:`rejected_rows`; a failed write is
    logged and counted in :attr:`write_errors`, and the caller still hands the alert on.
    """

    def __init__(self, conn: sqlite3.Connection, *, alertname: str) -> None:
        self.conn = conn
        self.alertname = alertname
        self.rejected_rows = 0
        self.write_errors = 0
        self._lock = threading.Lock()
        with self._lock:
            for stmt in (s.strip() for s in ALERTS_DDL.split(";")):
                if stmt:
                    conn.execute(stmt)

    def record(self, alerts: Sequence[Alert], now: float) -> bool:
        """Append one row per alert in one transaction; ``False`` (and counted) on failure."""
        rows = [(now, a.fingerprint, a.name, a.status.value, json.dumps(dict(a.labels)),
                 json.dumps(dict(a.annotations)), a.starts_at, a.ends_at) for a in alerts]
        if not rows:
            return True
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    self.conn.executemany(
                        "INSERT INTO alerts (ts, fingerprint, alertname, status, labels, "
                        "annotations, starts_at, ends_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            except sqlite3.Error:
                self.write_errors += 1
                logger.exception("writing %d SLO alert transitions failed", len(rows))
                return False
        return True

    def firing(self) -> list[Alert]:
        """The SLO alerts whose latest row says ``firing``, as they were."""
        with self._lock:
            raw = self.conn.execute(_LATEST, (self.alertname,)).fetchall()
        out = []
        for fp, status, labels, annotations, starts_at in raw:
            if status != AlertStatus.FIRING.value:
                continue
            try:
                lab, ann = json.loads(labels), json.loads(annotations)
                if not isinstance(lab, dict) or not isinstance(ann, dict):
                    raise ValueError("labels and annotations must be objects")
                alert = Alert(freeze_labels({str(k): str(v) for k, v in lab.items()}),
                              freeze_labels({str(k): str(v) for k, v in ann.items()}),
                              float(starts_at), None, AlertStatus.FIRING)
                if alert.fingerprint != fp:
                    raise ValueError("fingerprint does not match the labels")
            except (ValueError, TypeError):
                self.rejected_rows += 1
                logger.warning("alerts row for %s is malformed; not restored", fp)
                continue
            out.append(alert)
        return out
