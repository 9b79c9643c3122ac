"""The :class:`Applier`: the only code that changes the fleet (guards, audit, actuator, audit).

Every path (runbook steps, rollbacks, the autoscaler) calls :meth:`Applier.apply`, so the guard
layer and the before/after audit hold for all of them. An actuator error never escapes: it
becomes a ``failed`` outcome with the error in the audit, and the caller decides (roll back,
escalate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from remediation.actuators.base import Actuator, apply_change
from remediation.audit import AuditLog, DuplicateAction
from remediation.changes import Change
from remediation.guards import Decision, Guards

__all__ = ["Applier", "Outcome"]

logger = logging.getLogger("warden.remediation")

OutcomeStatus = Literal["applied", "failed", "refused", "duplicate", "dry_run"]


@dataclass(frozen=True)
class Outcome:
    status: OutcomeStatus
    change: Change
    reason: str = ""
    decision: Decision | None = None

    @property
    def escalate(self) -> bool:
        return self.status == "failed" or bool(self.decision and self.decision.escalate
                                                and self.status == "refused")


class Applier:
    """Guards -> audit ``before`` -> actuator -> audit ``after``, for one change at a time."""

    def __init__(self, actuator: Actuator, guards: Guards, audit: AuditLog, *,
                 clock: Callable[[], float]) -> None:
        self.actuator = actuator
        self.guards = guards
        self.audit = audit
        self.clock = clock
        guards.seen = audit.seen
        guards.load_history(audit.history(since=clock() - 3600.0))

    def apply(self, change: Change, *, runbook: str, step: str, key: str,
              execution: str = "", evidence: Mapping[str, Any] | None = None,
              data_fresh: bool = True, rollback: bool = False) -> Outcome:
        evidence = dict(evidence or {})
        try:
            state = self.actuator.state()
        except Exception as exc:
            logger.exception("actuator state unreadable before %s", change.describe())
            self.audit.record(runbook=runbook, step=step, change=change, key=key,
                              phase="refused", status="skipped", evidence=evidence,
                              result=f"actuator state unreadable: {exc}", execution=execution,
                              ignore=True)
            return Outcome("failed", change, f"actuator state unreadable: {exc}")
        decision = self.guards.check(change, state, key=key, execution=execution,
                                     data_fresh=data_fresh, rollback=rollback)
        change = decision.change
        if not decision.allowed:
            status: OutcomeStatus = "duplicate" if decision.guard == "idempotency" else "refused"
            if status == "refused":
                self.audit.record(runbook=runbook, step=step, change=change, key=key,
                                  phase="refused", status="skipped", evidence=evidence,
                                  result=decision.reason, execution=execution, ignore=True)
            logger.info("%s %s: %s", status, change.describe(), decision.reason)
            return Outcome(status, change, decision.reason, decision)
        if decision.dry_run:
            key = f"dry:{key}"
        try:
            self.audit.record(runbook=runbook, step=step, change=change, key=key, phase="before",
                              status="applying", evidence={**evidence, "state": state.to_json()},
                              execution=execution)
        except DuplicateAction:
            return Outcome("duplicate", change, f"key {key} already claimed", decision)
        if decision.dry_run:
            self.audit.record(runbook=runbook, step=step, change=change, key=key, phase="after",
                              status="skipped", result=f"dry run: would {change.describe()}",
                              execution=execution)
            return Outcome("dry_run", change, "dry run", decision)
        try:
            apply_change(self.actuator, change)
        except Exception as exc:
            logger.exception("actuator failed: %s", change.describe())
            self.audit.record(runbook=runbook, step=step, change=change, key=key, phase="after",
                              status="failed", result=f"{type(exc).__name__}: {exc}",
                              execution=execution)
            return Outcome("failed", change, str(exc), decision)
        self.guards.note_applied(change, execution)
        self.audit.record(runbook=runbook, step=step, change=change, key=key, phase="after",
                          status="rolled_back" if rollback else "applied",
                          result=change.describe(), execution=execution)
        return Outcome("applied", change, change.describe(), decision)
