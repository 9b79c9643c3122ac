"""Remediation: runbooks, actions, safety guards, actuators and the audit trail.

Flow::

    Alert -> RunbookSet.match -> RunbookExecutor
        preconditions -> steps (action planners -> Change) -> Applier
            Applier: Guards.check (the ONE place every limit is enforced) -> AuditLog (before)
                     -> Actuator (LocalFleet | Kubernetes | DryRun) -> AuditLog (after)
        -> verification (an SLI from the store, with a deadline) -> rollback -> escalation (page)

    Autoscaler (reactive + predictive) -> Applier, the same guards and audit.

Modules are imported on demand (this file imports nothing heavy): ``errors``, ``changes``,
``actions``, ``runbook``, ``guards``, ``audit``, ``applier``, ``executor``, ``sli``,
``autoscaler``, ``holtwinters``, ``actuators``, ``service`` (what the engine wires), ``cli``;
for tests and benchmarks: ``simulated`` (a queueing model, named as such), ``closed_loop`` and
``lab_surge`` (scenarios on the real lab).

Exceptions::

    RemediationError(Exception)
     +-- RunbookError(ValueError)     a runbook that cannot load: names the file and the key
     +-- ActionFailed                 an action or actuator call failed (wraps the cause)
     +-- ActuatorError                the actuator could not read or change the fleet
"""

from __future__ import annotations

__all__: list[str] = []
