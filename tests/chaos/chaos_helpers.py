"""Small real parts for the chaos unit tests: a fault and a probe over a file on disk.

A file is a real, inspectable piece of state that a second process can see, so the runner's
inject/revert/ledger logic is tested without a fleet.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from chaos.faults.base import Fault
from chaos.target import Target
from warden.store import Store

ALERTS_DDL = ("CREATE TABLE IF NOT EXISTS alerts (ts REAL, fingerprint TEXT, alertname TEXT, "
              "labels TEXT, annotations TEXT, status TEXT, starts_at REAL, ends_at REAL)")
AUDIT_DDL = ("CREATE TABLE IF NOT EXISTS action_audit (ts REAL, runbook TEXT, step TEXT, "
             "target TEXT, params TEXT, idempotency_key TEXT, status TEXT, evidence TEXT, "
             "result TEXT)")


class FileFault(Fault):
    """Injected = the file exists with ``value``; reverted = the file is gone."""

    def __init__(self, target: Target, *, path: str, value: str = "on") -> None:
        super().__init__(target)
        if not value:
            raise ValueError("value must not be empty")
        self.path = Path(path)
        self.value = value

    def inject(self) -> None:
        self.path.write_text(self.value)

    def revert(self) -> None:
        self.path.unlink(missing_ok=True)

    def describe(self) -> str:
        return f"file fault {self.path.name}"


class BrokenRevertFault(FileFault):
    def revert(self) -> None:
        raise OSError("revert refused")


def file_absent(path: str) -> bool:
    return not Path(path).exists()


def absent_or_blip(path: str, blips: str) -> bool:
    """Like :func:`file_absent`, but the first check after the file ``blips`` appears fails
    (and deletes it): one stalled probe."""
    blip = Path(blips)
    if blip.exists():
        blip.unlink()
        return False
    return not Path(path).exists()


class ScriptedEngine:
    """Stands in for the Warden engine (not built yet) by writing the rows it would write.

    Once the file fault appears, it writes an alert and a runbook's audit rows to a real store,
    with the outcome given (``verified``, or ``rolled_back`` for a runbook whose verify step
    cannot pass). Named as what it is: a script, not detection or remediation.
    """

    def __init__(self, store: Store, flag: Path, *, outcome: str, result: str = "",
                 delay_s: float = 0.2) -> None:
        self.store, self.flag, self.outcome = store, flag, outcome
        self.result, self.delay_s = result, delay_s
        store.ensure_table("alerts", ALERTS_DDL)
        store.ensure_table("action_audit", AUDIT_DDL)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()

    def __enter__(self) -> ScriptedEngine:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self.flag.exists():
            if self._stop.wait(0.02):
                return
        time.sleep(self.delay_s)
        now = time.time()
        self.store.insert_rows("alerts", ["ts", "fingerprint", "alertname", "labels",
                                          "annotations", "status", "starts_at", "ends_at"],
                               [(now, "f1", "ReplicaP99Drift", '{"replica": "r0"}', "{}",
                                 "firing", now, None)])
        cols = ["ts", "runbook", "step", "target", "params", "idempotency_key", "status",
                "evidence", "result"]
        self.store.insert_rows("action_audit", cols, [
            (now + 0.1, "replica-p99-drift", "shift-weight", "r0", "{}", "k1", "applied", "{}",
             ""),
            (now + 0.2, "replica-p99-drift", "shift-weight", "r0", "{}", "k1", self.outcome,
             "{}", self.result),
        ])


class CrashingFault(FileFault):
    """A fault with a bug in ``inject`` (not an ``ActivityFailed``)."""

    def inject(self) -> None:
        1 / 0


@contextlib.contextmanager
def scripted_engine(lab: Any, db_path: Path) -> Iterator[Any]:
    """A ``--chaos-engine`` factory for the plugin test: declares the capabilities only."""
    from chaos.pytest_plugin import ChaosEngine

    yield ChaosEngine(capabilities=frozenset({"detection", "remediation"}))
