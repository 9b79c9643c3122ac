"""Grouping alerts by labels, with Alertmanager's timers, driven by an injectable clock.

Why group: one broken replica can raise a dozen alerts; on-call wants one message that lists
them. As in Alertmanager's dispatcher, alerts with equal values of the ``group_by`` labels share
an aggregation group. A new group waits ``group_wait`` before its first notification (so alerts
that fire together arrive together), then flushes every ``group_interval``; the dedup stage
sends a flush only if something changed or ``repeat_interval`` has passed. Nothing here sleeps:
the engine calls :meth:`AlertGrouper.tick` with the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from warden.alerting.matchers import Matcher, matches_all
from warden.alerting.payload import group_key
from warden.records import Alert, AlertStatus

__all__ = [
    "ALL_LABELS",
    "DEFAULT_GROUP_INTERVAL_S",
    "DEFAULT_GROUP_WAIT_S",
    "DEFAULT_REPEAT_INTERVAL_S",
    "AlertGrouper",
    "GroupFlush",
    "Route",
]

DEFAULT_GROUP_WAIT_S = 30.0
"""Alertmanager's default ``group_wait``."""
DEFAULT_GROUP_INTERVAL_S = 300.0
"""Alertmanager's default ``group_interval`` (5 m)."""
DEFAULT_REPEAT_INTERVAL_S = 14_400.0
"""Alertmanager's default ``repeat_interval`` (4 h)."""
ALL_LABELS = "..."
"""``group_by: ['...']`` groups by every label, i.e. one group per alert, as in Alertmanager."""


@dataclass(frozen=True)
class Route:
    """Where a set of alerts goes and how it is grouped (one level of Alertmanager's tree)."""

    receiver: str
    group_by: tuple[str, ...] = ("alertname",)
    matchers: tuple[Matcher, ...] = ()
    group_wait_s: float = DEFAULT_GROUP_WAIT_S
    group_interval_s: float = DEFAULT_GROUP_INTERVAL_S
    repeat_interval_s: float = DEFAULT_REPEAT_INTERVAL_S

    def __post_init__(self) -> None:
        if not self.receiver:
            raise ValueError("route.receiver must not be empty")
        for name in ("group_wait_s", "group_interval_s", "repeat_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"route.{name} must be >= 0")
        if self.group_interval_s <= 0:
            raise ValueError("route.group_interval_s must be > 0")

    @property
    def key(self) -> str:
        """The route's key as Alertmanager prints it: ``{}`` at the root, matchers below."""
        if not self.matchers:
            return "{}"
        return "{}/{" + ",".join(str(m) for m in self.matchers) + "}"

    def group_labels(self, alert: Alert) -> dict[str, str]:
        labels = dict(alert.labels)
        if ALL_LABELS in self.group_by:
            return labels
        return {k: labels[k] for k in self.group_by if k in labels}


@dataclass(frozen=True, slots=True)
class GroupFlush:
    """One group's alerts handed to the notify pipeline at one flush."""

    route: Route
    group_key: str
    group_labels: dict[str, str]
    alerts: tuple[Alert, ...]
    seq: int
    now: float


@dataclass
class _Group:
    labels: dict[str, str]
    key: str
    next_flush: float
    alerts: dict[str, Alert] = field(default_factory=dict)
    seq: int = 0


class AlertGrouper:
    """Aggregation groups of one route. Feed alerts with :meth:`add`, drive with :meth:`tick`."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self._groups: dict[str, _Group] = {}
        self._next_seq: dict[str, int] = {}  # survives a group's deletion: keys stay distinct

    def accepts(self, alert: Alert) -> bool:
        return matches_all(self.route.matchers, dict(alert.labels))

    def add(self, alert: Alert, now: float) -> bool:
        """Insert or update ``alert`` (by fingerprint); pending alerts are ignored."""
        if alert.status is AlertStatus.PENDING or not self.accepts(alert):
            return False
        labels = self.route.group_labels(alert)
        key = group_key(labels, route_key=self.route.key)
        group = self._groups.get(key)
        if group is None:
            group = _Group(labels, key, now + self.route.group_wait_s,
                           seq=self._next_seq.get(key, 0))
            self._groups[key] = group
        group.alerts[alert.fingerprint] = alert
        return True

    def add_all(self, alerts: Iterable[Alert], now: float) -> int:
        return sum(self.add(a, now) for a in alerts)

    def tick(self, now: float) -> list[GroupFlush]:
        """Groups whose timer has run out, each as a :class:`GroupFlush`; timers restart."""
        out = []
        for group in list(self._groups.values()):
            if now < group.next_flush or not group.alerts:
                continue
            group.next_flush = now + self.route.group_interval_s
            out.append(GroupFlush(self.route, group.key, dict(group.labels),
                                  tuple(sorted(group.alerts.values(), key=lambda a: a.fingerprint)),
                                  group.seq, now))
            group.seq += 1
        return out

    def flushed(self, flush: GroupFlush, *, done: bool) -> None:
        """After the pipeline ran: unless deferred, drop resolved alerts that were in the flush.

        As in Alertmanager, a resolved alert stays in its group until the pipeline finished
        with it (notified, here written to the outbox, or found nothing new to say), so a
        deferred flush does not lose it.
        """
        group = self._groups.get(flush.group_key)
        if group is None or not done:
            return
        for a in flush.alerts:
            cur = group.alerts.get(a.fingerprint)
            if cur is not None and cur == a and a.status is AlertStatus.RESOLVED:
                del group.alerts[a.fingerprint]
        if not group.alerts:
            self._next_seq[flush.group_key] = group.seq
            del self._groups[flush.group_key]

    def alerts(self) -> list[Alert]:
        return [a for g in self._groups.values() for a in g.alerts.values()]

    def groups(self) -> Sequence[str]:
        return list(self._groups)
