"""Alert lifecycle: pending, firing, resolved, as Prometheus's rule evaluation moves alerts.

Why a ``for`` duration: a condition that is true for one tick is often noise; Prometheus keeps
such an alert *pending* until it has held for ``for_s`` seconds, and only then *fires*. When the
condition stops holding, a firing alert becomes *resolved* (with ``ends_at``), a pending one just
disappears. Resolved alerts are reported once and then forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from warden.records import Alert, AlertStatus, Labels, freeze_labels

__all__ = ["AlertTracker", "Transition"]


@dataclass(frozen=True, slots=True)
class Transition:
    """One alert changing state at one evaluation."""

    alert: Alert
    previous: AlertStatus | None


class AlertTracker:
    """Tracks which alerts are active across evaluations and moves them through their states.

    Call :meth:`evaluate` once per engine tick with the set of conditions that hold now (labels
    to annotations). It returns the transitions; :meth:`firing` lists what should be notified.
    """

    def __init__(self, *, for_s: float = 0.0) -> None:
        if for_s < 0:
            raise ValueError(f"for_s must be >= 0, got {for_s}")
        self.for_s = for_s
        self._active: dict[Labels, Alert] = {}
        self._first_seen: dict[Labels, float] = {}

    def evaluate(
        self, now: float, active: Mapping[Labels, Mapping[str, str] | Labels]
    ) -> list[Transition]:
        """Advance every alert to ``now`` given the conditions that hold (labels -> annotations)."""
        out: list[Transition] = []
        current = {freeze_labels(k): freeze_labels(v) for k, v in active.items()}
        for labels, annotations in current.items():
            prev = self._active.get(labels)
            first = self._first_seen.setdefault(labels, now)
            held = now - first
            status = AlertStatus.FIRING if held >= self.for_s else AlertStatus.PENDING
            if prev is None:
                alert = Alert(labels, annotations, now if status is AlertStatus.FIRING else first,
                              None, status)
                self._active[labels] = alert
                out.append(Transition(alert, None))
            elif prev.status is not status:
                alert = replace(prev, status=status, starts_at=now, annotations=annotations)
                self._active[labels] = alert
                out.append(Transition(alert, prev.status))
            elif prev.annotations != annotations:
                self._active[labels] = replace(prev, annotations=annotations)
        for labels in [k for k in self._active if k not in current]:
            prev = self._active.pop(labels)
            self._first_seen.pop(labels, None)
            if prev.status is AlertStatus.FIRING:
                out.append(Transition(replace(prev, status=AlertStatus.RESOLVED, ends_at=now),
                                      AlertStatus.FIRING))
        return out

    def restore(self, alerts: list[Alert]) -> None:
        """Take back firing alerts saved before a restart (they keep their ``starts_at``)."""
        for a in alerts:
            if a.status is AlertStatus.FIRING:
                self._active[a.labels] = a
                self._first_seen[a.labels] = a.starts_at

    def firing(self) -> list[Alert]:
        """Alerts firing now (pending ones are not sent, as in Prometheus)."""
        return [a for a in self._active.values() if a.status is AlertStatus.FIRING]

    def pending(self) -> list[Alert]:
        return [a for a in self._active.values() if a.status is AlertStatus.PENDING]
