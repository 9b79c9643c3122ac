"""What Warden did during an experiment, read back from the store: alerts and actions.

The one place that knows the table and column names of other components, so they can be
adjusted at merge in one spot:

* fired alerts: table :data:`ALERTS_TABLE` (ts, fingerprint, alertname, labels JSON, status...),
  written by the engine; and the notification outbox :data:`OUTBOX_TABLE` (``created_at``,
  ``body`` = the Alertmanager webhook JSON with its ``alerts[].labels``), written by alerting;
* remediation steps: :data:`ACTIONS_TABLE` (ts, runbook, step, target, status, result...).

A table that does not exist yet is not an error: the reader returns nothing and a note
("no alerts table") that the journal carries, so a missing engine reads as "nothing observed",
and the expectation that needed it fails saying why.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from warden.store import Store

__all__ = ["ACTIONS_TABLE", "ALERTS_TABLE", "OUTBOX_TABLE", "ObservedAction", "ObservedAlert",
           "StoreObserver"]

logger = logging.getLogger("warden.chaos")
ALERTS_TABLE = "alerts"
OUTBOX_TABLE = "alert_outbox"
ACTIONS_TABLE = "action_audit"


@dataclass(frozen=True)
class ObservedAlert:
    ts: float
    alertname: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    source: str = ALERTS_TABLE


@dataclass(frozen=True)
class ObservedAction:
    ts: float
    runbook: str
    step: str
    target: str
    status: str
    result: str = ""


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        out = json.loads(value or "{}")
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


class StoreObserver:
    """Reads alerts and actions newer than a timestamp. ``notes`` says what was missing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.notes: set[str] = set()

    def _has(self, table: str) -> bool:
        df = self.store.query("SELECT name FROM sqlite_master WHERE type='table' AND name=?",
                              (table,))
        if df.empty:
            self.notes.add(f"no {table} table in the store")
            return False
        return True

    def alerts_since(self, since: float) -> list[ObservedAlert]:
        """Fired alerts (engine table) and notified ones (outbox), oldest first."""
        out: list[ObservedAlert] = []
        if self._has(ALERTS_TABLE):
            try:
                df = self.store.query(f"SELECT ts, alertname, labels, status FROM {ALERTS_TABLE} "
                                      "WHERE ts >= ? ORDER BY ts", (since,))
                out += [ObservedAlert(float(r.ts), str(r.alertname), str(r.status),
                                      _json(r.labels), ALERTS_TABLE) for r in df.itertuples()]
            except Exception as exc:  # a schema we do not know yet: note it, go on
                self.notes.add(f"cannot read {ALERTS_TABLE}: {exc}")
        if self._has(OUTBOX_TABLE):
            df = self.store.query(f"SELECT created_at, body, status FROM {OUTBOX_TABLE} "
                                  "WHERE created_at >= ? ORDER BY created_at", (since,))
            for r in df.itertuples():
                for alert in _json(r.body).get("alerts", []) or []:
                    labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
                    out.append(ObservedAlert(float(r.created_at), labels.get("alertname", ""),
                                             str(alert.get("status", r.status)), labels,
                                             OUTBOX_TABLE))
        return sorted(out, key=lambda a: a.ts)

    def actions_since(self, since: float) -> list[ObservedAction]:
        if not self._has(ACTIONS_TABLE):
            return []
        try:
            df = self.store.query(f"SELECT ts, runbook, step, target, status, result "
                                  f"FROM {ACTIONS_TABLE} WHERE ts >= ? ORDER BY ts", (since,))
        except Exception as exc:
            self.notes.add(f"cannot read {ACTIONS_TABLE}: {exc}")
            return []
        return [ObservedAction(float(r.ts), str(r.runbook), str(r.step), str(r.target),
                               str(r.status), str(r.result or "")) for r in df.itertuples()]
