"""The notify pipeline: small stages a group's flush passes through, as in Alertmanager.

Order (Alertmanager's ``notify.go``): inhibit -> silence -> dedup (notification log, repeat
interval) -> rate limit -> outbox enqueue (which also writes the notification log, like
``SetNotifiesStage``). Each stage takes the alerts left by the one before and returns those it
lets through; an empty list stops the flush. Retries are not a stage here: they belong to the
durable outbox, which survives a crash.

:class:`Dispatcher` ties routes, groupers and pipelines together behind one ``tick(now)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from warden.alerting.grouping import AlertGrouper, GroupFlush, Route
from warden.alerting.inhibit import Inhibitor
from warden.alerting.outbox import Outbox
from warden.alerting.payload import build_webhook_payload, format_go_time
from warden.alerting.silences import SilenceStore
from warden.records import Alert, AlertStatus, stable_key

__all__ = [
    "DEFERRED",
    "NOTIFIED",
    "SUPPRESSED",
    "DedupStage",
    "Dispatcher",
    "InhibitStage",
    "NotificationLog",
    "OutboxStage",
    "Pipeline",
    "PipelineMetrics",
    "RateLimitStage",
    "SilenceStage",
    "Stage",
    "alertmanager_push_body",
    "notification_key",
]

log = logging.getLogger(__name__)


class Stage(Protocol):
    name: str

    def process(self, flush: GroupFlush, alerts: list[Alert]) -> list[Alert]: ...


def notification_key(receiver: str, group_key: str, status: str, alerts: Iterable[Alert],
                     seq: int) -> str:
    """The idempotency key of one notification: same notification, same key, across re-sends.

    Hash of receiver, group key, group status, the sorted ``fingerprint@startsAt`` of its alerts
    and the group's flush sequence number (so a repeat after ``repeat_interval`` is a new key).
    """
    members = sorted(f"{a.fingerprint}@{format_go_time(a.starts_at)}:{a.status.value}"
                     for a in alerts)
    return stable_key(receiver, group_key, status, ",".join(members), seq)


class InhibitStage:
    name = "inhibit"

    def __init__(self, inhibitor: Inhibitor) -> None:
        self.inhibitor = inhibitor

    def process(self, flush: GroupFlush, alerts: list[Alert]) -> list[Alert]:
        return [a for a in alerts if self.inhibitor.muted_by(a) is None]


class SilenceStage:
    name = "silence"

    def __init__(self, silences: SilenceStore) -> None:
        self.silences = silences

    def process(self, flush: GroupFlush, alerts: list[Alert]) -> list[Alert]:
        return [a for a in alerts if not self.silences.muting(dict(a.labels), flush.now)]


@dataclass
class _Entry:
    firing: frozenset[str]
    resolved: frozenset[str]
    ts: float


@dataclass
class NotificationLog:
    """What was last notified per (receiver, group): Alertmanager's ``nflog``, in memory."""

    entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)

    def get(self, receiver: str, group_key: str) -> _Entry | None:
        return self.entries.get((receiver, group_key))

    def log(self, receiver: str, group_key: str, alerts: Sequence[Alert], now: float) -> None:
        firing = frozenset(a.fingerprint for a in alerts if a.status is AlertStatus.FIRING)
        resolved = frozenset(a.fingerprint for a in alerts if a.status is AlertStatus.RESOLVED)
        self.entries[(receiver, group_key)] = _Entry(firing, resolved, now)


class DedupStage:
    """Lets a flush through only if it tells the receiver something new (``needsUpdate``)."""

    name = "dedup"

    def __init__(self, nflog: NotificationLog, *, send_resolved: bool = True) -> None:
        self.nflog = nflog
        self.send_resolved = send_resolved

    def process(self, flush: GroupFlush, alerts: list[Alert]) -> list[Alert]:
        firing = {a.fingerprint for a in alerts if a.status is AlertStatus.FIRING}
        resolved = {a.fingerprint for a in alerts if a.status is AlertStatus.RESOLVED}
        entry = self.nflog.get(flush.route.receiver, flush.group_key)
        if entry is None:
            needs = bool(firing)
        elif not firing <= entry.firing:
            needs = True
        elif not firing:
            needs = bool(entry.firing)
        elif self.send_resolved and not resolved <= entry.resolved:
            needs = True
        else:
            needs = entry.ts <= flush.now - flush.route.repeat_interval_s
        return alerts if needs else []


class RateLimitStage:
    """At most ``max_per_window`` notifications per receiver per ``window_s`` (sliding).

    A limited flush is not lost: nothing is logged, so the next group interval tries again.
    """

    name = "rate_limit"
    defers = True

    def __init__(self, *, max_per_window: int = 30, window_s: float = 60.0) -> None:
        if max_per_window < 1 or window_s <= 0:
            raise ValueError("rate limit needs max_per_window >= 1 and window_s > 0")
        self.max_per_window = max_per_window
        self.window_s = window_s
        self._sent: dict[str, list[float]] = {}

    def process(self, flush: GroupFlush, alerts: list[Alert]) -> list[Alert]:
        start = flush.now - self.window_s
        times = [t for t in self._sent.get(flush.route.receiver, []) if t > start]
        if len(times) >= self.max_per_window:
            self._sent[flush.route.receiver] = times
            return []
        times.append(flush.now)
        self._sent[flush.route.receiver] = times
        return alerts


def alertmanager_push_body(alerts: Sequence[Alert]) -> list[dict[str, object]]:
    """The ``/api/v2/alerts`` body (postableAlerts); firing alerts carry no ``endsAt``."""
    out: list[dict[str, object]] = []
    for a in alerts:
        item: dict[str, object] = {"labels": dict(a.labels), "annotations": dict(a.annotations),
                                   "startsAt": format_go_time(a.starts_at),
                                   "generatorURL": a.generator_url}
        if a.status is AlertStatus.RESOLVED and a.ends_at is not None:
            item["endsAt"] = format_go_time(a.ends_at)
        out.append(item)
    return out


class OutboxStage:
    """Writes the notification to the durable outbox, then logs it (``SetNotifiesStage``).

    ``kind`` is ``"webhook"`` (Alertmanager v4 message) or ``"alertmanager"`` (a push body).
    """

    name = "outbox"

    def __init__(self, outbox: Outbox, nflog: NotificationLog, *, external_url: str,
                 kind: str = "webhook", on_enqueue: Callable[[], None] | None = None,
                 max_alerts: int = 0) -> None:
        if kind not in ("webhook", "alertmanager"):
            raise ValueError(f"outbox kind must be webhook or alertmanager, got {kind!r}")
        self.outbox = outbox
        self.nflog = nflog
        self.external_url = external_url
        self.kind = kind
        self.on_enqueue = on_enqueue
        self.max_alerts = max_alerts

    def process(self, flush: GroupFlush, alerts: list[Alert]) -> list[Alert]:
        receiver = flush.route.receiver
        status = "firing" if any(a.status is AlertStatus.FIRING for a in alerts) else "resolved"
        if self.kind == "webhook":
            payload: object = build_webhook_payload(
                alerts, receiver=receiver, group_labels=flush.group_labels,
                external_url=self.external_url, route_key=flush.route.key,
                max_alerts=self.max_alerts)
        else:
            payload = alertmanager_push_body(alerts)
        key = notification_key(receiver, flush.group_key, status, alerts, flush.seq)
        self.outbox.enqueue(key=key, target=receiver, group_key=flush.group_key, status=status,
                            body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
                            now=flush.now)
        self.nflog.log(receiver, flush.group_key, alerts, flush.now)
        if self.on_enqueue is not None:
            self.on_enqueue()
        return alerts


NOTIFIED = "notified"
SUPPRESSED = "suppressed"
DEFERRED = "deferred"


class PipelineMetrics:
    """Counters shared by every route's pipeline (register once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stopped = Counter("warden_alert_pipeline_stopped", "Flushes stopped, by stage",
                               ["stage"], registry=registry)
        self.notified = Counter("warden_alert_pipeline_notified", "Flushes that notified",
                                ["receiver"], registry=registry)


class Pipeline:
    """Runs a flush through its stages, counting where flushes stop.

    Outcomes: ``notified`` (written to the outbox), ``suppressed`` (a stage decided there is
    nothing to say: the group's resolved alerts can go) or ``deferred`` (a stage with
    ``defers = True``, the rate limit, held it back: keep everything for the next interval).
    """

    def __init__(self, stages: Sequence[Stage], *, metrics: PipelineMetrics | None = None) -> None:
        self.stages = tuple(stages)
        self.metrics = metrics or PipelineMetrics(CollectorRegistry())

    def run(self, flush: GroupFlush) -> str:
        alerts = list(flush.alerts)
        for stage in self.stages:
            alerts = stage.process(flush, alerts)
            if not alerts:
                self.metrics.stopped.labels(stage.name).inc()
                return DEFERRED if getattr(stage, "defers", False) else SUPPRESSED
        self.metrics.notified.labels(flush.route.receiver).inc()
        return NOTIFIED


class Dispatcher:
    """Routes alerts into groupers and runs each due flush through the route's pipeline.

    Every route whose matchers accept an alert gets it (Alertmanager's ``continue: true``).
    ``alerts()`` is what the inhibitor sees as possible sources.
    """

    def __init__(self, routes: Sequence[tuple[Route, Pipeline]]) -> None:
        self._routes = [(AlertGrouper(r), p) for r, p in routes]

    def add(self, alerts: Iterable[Alert], now: float) -> None:
        for alert in alerts:
            for grouper, _ in self._routes:
                grouper.add(alert, now)

    def alerts(self) -> list[Alert]:
        seen: dict[str, Alert] = {}
        for grouper, _ in self._routes:
            for a in grouper.alerts():
                seen[a.fingerprint] = a
        return list(seen.values())

    def tick(self, now: float) -> list[tuple[GroupFlush, str]]:
        """Flush every due group; returns each flush with its pipeline outcome."""
        out = []
        for grouper, pipeline in self._routes:
            for flush in grouper.tick(now):
                try:
                    outcome = pipeline.run(flush)
                except Exception:  # a bad stage must not stop the engine; retried next interval
                    log.exception("pipeline failed for %s", flush.group_key)
                    outcome = DEFERRED
                grouper.flushed(flush, done=outcome != DEFERRED)
                out.append((flush, outcome))
        return out
