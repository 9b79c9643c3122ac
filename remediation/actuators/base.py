"""The :class:`Actuator` Protocol and the helper that applies a :class:`Change` through one.

Why one small Protocol: the executor, the autoscaler and reconciliation only ever speak these six
calls, so the same runbook drives the local lab, a Kubernetes cluster or a dry run unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from remediation.changes import Change, FleetState

__all__ = ["Actuator", "apply_change"]


@runtime_checkable
class Actuator(Protocol):
    """Reads and changes a serving fleet. Every call is idempotent: same input, same end state."""

    name: str

    def replicas(self, model: str) -> int:
        """Replicas serving ``model`` now."""
        ...

    def scale(self, model: str, n: int) -> None:
        """Make ``model`` run on ``n`` replicas; returns once the change is accepted."""
        ...

    def set_weights(self, model: str, weights: Mapping[str, float]) -> None:
        """Set routing weights of the named replicas (others keep theirs)."""
        ...

    def set_variant(self, model: str, variant: str, fraction: float) -> None:
        """Send ``fraction`` of ``model``'s traffic to ``variant`` (only ``"lite"`` today)."""
        ...

    def restart(self, replica: str) -> None:
        """Restart one replica (a hung or broken one)."""
        ...

    def state(self) -> FleetState:
        """The real state, for the guards and for reconciliation after a crash."""
        ...


def apply_change(actuator: Actuator, change: Change) -> None:
    """Dispatch ``change`` to the matching actuator call."""
    if change.kind == "scale":
        actuator.scale(change.model, int(change.args["replicas"]))
    elif change.kind == "weights":
        actuator.set_weights(change.model, dict(change.args["weights"]))
    elif change.kind == "variant":
        actuator.set_variant(change.model, str(change.args["variant"]),
                             float(change.args["fraction"]))
    elif change.kind == "restart":
        actuator.restart(str(change.args["replica"]))
    else:  # pragma: no cover - Change.kind is a Literal
        raise ValueError(f"unknown change kind {change.kind!r}")
