"""The remediation package's exception tree (drawn in ``remediation/__init__.py``)."""

from __future__ import annotations

__all__ = ["ActionFailed", "ActuatorError", "RemediationError", "RunbookError"]


class RemediationError(Exception):
    """Root of remediation's errors."""


class RunbookError(RemediationError, ValueError):
    """A runbook file or definition that cannot be loaded; the message names file and key."""


class ActionFailed(RemediationError):
    """An action's planner or the actuator call behind it failed."""


class ActuatorError(RemediationError):
    """The actuator could not read or change the fleet (unreachable, refused, timed out)."""
