"""Assembles the alerting parts from config: what the engine holds and ticks.

Why one assembly: the inhibitor must see the dispatcher's alerts, the outbox stage must wake
the delivery thread, the dedup and outbox stages must share one notification log. Building
that by hand in every caller is where wiring bugs live.

Two readers of the store feed it besides the engine's alerts: the configured SLOs are evaluated
on :meth:`AlertingService.tick` from an :class:`~warden.alerting.slo.SliSource` (the store's
request chains in the lab), and every notification passes a
:class:`~warden.alerting.remediation_notes.RemediationStage` that reads the action audit, so
what remediation did reaches on-call without remediation calling alerting.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry

from warden.alerting.config import AlertingConfig, InboundConfig
from warden.alerting.receiver import InboundAlertStore, WebhookReceiver
from warden.alerting.grouping import Route
from warden.alerting.inhibit import DEFAULT_RULES, InhibitRule, Inhibitor
from warden.alerting.matchers import parse_matcher
from warden.alerting.outbox import Backoff, Outbox, OutboxDispatcher
from warden.alerting.pipeline import (
    DedupStage,
    Dispatcher,
    InhibitStage,
    NotificationLog,
    OutboxStage,
    Pipeline,
    PipelineMetrics,
    RateLimitStage,
    SilenceStage,
    Stage,
)
from warden.alerting.remediation_notes import AuditNotes, RemediationStage
from warden.alerting.silences import SilenceStore
from warden.alerting.slo import SLO_ALERTNAME, SliSource, SloAlerter, SloEvaluator
from warden.alerting.slo_history import SloAlertHistory
from warden.alerting.webhook import AlertmanagerPushNotifier, Notifier, WebhookNotifier
from warden.db import open_db
from warden.records import Alert

__all__ = ["AlertingService", "make_receiver"]


class AlertingService:
    """Routes, pipelines, outbox and its delivery thread, built from :class:`AlertingConfig`.

    ``submit(alerts, now)`` hands alerts in (and flushes groups already due, so with
    ``group_wait 0`` an alert is in the outbox before ``submit`` returns); ``tick(now)`` is the
    engine's periodic call (it evaluates the SLOs, when ``sli_source`` is given and
    ``config.slos`` is not empty); ``start()``/``stop()`` run the outbox delivery thread.
    ``remediation_notes=False`` leaves the action audit unread.
    """

    def __init__(self, config: AlertingConfig, conn: sqlite3.Connection, *,
                 registry: CollectorRegistry, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None,
                 notifiers: dict[str, Notifier] | None = None,
                 sli_source: SliSource | None = None,
                 remediation_notes: bool = True,
                 slo_sinks: Sequence[Callable[[list[Alert], float], None]] = ()) -> None:
        self.config = config
        self.clock = clock
        self.slo_sinks = list(slo_sinks)
        self.slo: SloAlerter | None = None
        if config.slos and sli_source is not None:
            history = SloAlertHistory(_own_connection(conn), alertname=SLO_ALERTNAME)
            self.slo = SloAlerter(SloEvaluator(config.slos, sli_source,
                                               tiers=config.burn_rate_tiers()),
                                  interval_s=config.slo_interval_s, history=history)
        self.remediation = (RemediationStage(AuditNotes(conn),
                                             pages=lambda: self.dispatcher.alerts())
                            if remediation_notes else None)
        self.outbox = Outbox(conn)
        self.silences = SilenceStore(conn)
        self.nflog = NotificationLog()
        if notifiers is None:
            notifiers = {}
            for rc in config.receivers:
                if rc.kind == "alertmanager":
                    notifiers[rc.name] = AlertmanagerPushNotifier(
                        rc.url, bearer_token=rc.bearer_token, timeout_s=rc.timeout_s)
                else:
                    notifiers[rc.name] = WebhookNotifier(
                        rc.url, hmac_secret=rc.hmac_secret, bearer_token=rc.bearer_token,
                        timeout_s=rc.timeout_s)
        self.delivery = OutboxDispatcher(
            self.outbox, notifiers, clock=clock, rng=rng,
            backoff=Backoff(base_s=config.outbox.backoff_base_s,
                            max_s=max(config.outbox.backoff_max_s, config.outbox.backoff_base_s)),
            dead_after_s=config.outbox.dead_after_s, registry=registry)
        rules: Iterable[InhibitRule] = DEFAULT_RULES if config.inhibit_rules is None else [
            InhibitRule(tuple(map(parse_matcher, r.source_matchers)),
                        tuple(map(parse_matcher, r.target_matchers)), tuple(r.equal))
            for r in config.inhibit_rules]
        self.inhibitor = Inhibitor(rules, lambda: self.dispatcher.alerts())
        kinds = {rc.name: rc for rc in config.receivers}
        rate = RateLimitStage(max_per_window=config.rate_limit_per_minute, window_s=60.0)
        metrics = PipelineMetrics(registry)
        routes = []
        for rc in config.routes:
            route = Route(rc.receiver, tuple(rc.group_by), tuple(map(parse_matcher, rc.matchers)),
                          rc.group_wait_s, rc.group_interval_s, rc.repeat_interval_s)
            stages: list[Stage] = [InhibitStage(self.inhibitor), SilenceStage(self.silences),
                                   DedupStage(self.nflog), rate]
            if self.remediation is not None:
                stages.append(self.remediation)
            stages.append(OutboxStage(
                self.outbox, self.nflog, external_url=config.external_url,
                kind=kinds[rc.receiver].kind, on_enqueue=self.delivery.wake,
                max_alerts=kinds[rc.receiver].max_alerts))
            routes.append((route, Pipeline(stages, metrics=metrics)))
        self.dispatcher = Dispatcher(routes)

    def submit(self, alerts: Iterable[Alert], now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self.dispatcher.add(alerts, now)
        self.dispatcher.tick(now)

    def tick(self, now: float | None = None) -> None:
        """Evaluate the SLOs when due (their alerts join the groups), then flush due groups."""
        now = self.clock() if now is None else now
        if self.slo is not None:
            slo_alerts = self.slo.evaluate(now)
            if slo_alerts:
                self.dispatcher.add(slo_alerts, now)
                # Remediation's budget-burn runbooks start from these, like detection's.
                for sink in self.slo_sinks:
                    sink(slo_alerts, now)
        self.dispatcher.tick(now)

    def start(self) -> None:
        self.delivery.start()

    def stop(self) -> None:
        self.delivery.stop()


def _own_connection(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Another connection to ``conn``'s file, for a writer whose transactions must not
    interleave with the outbox thread's on the shared one (``conn`` itself if in memory)."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return open_db(row[2]) if row is not None and row[2] else conn


def make_receiver(config: InboundConfig, conn: sqlite3.Connection, *,
                  registry: CollectorRegistry, silences: SilenceStore | None = None,
                  sink: Callable[[Alert], None] | None = None) -> WebhookReceiver | None:
    """The inbound Alertmanager endpoint from config, or ``None`` when no secret is set
    (an endpoint without authentication is never started). Call ``start()`` on it."""
    if config.bearer_token is None and config.hmac_secret is None:
        return None
    return WebhookReceiver(store=InboundAlertStore(conn), registry=registry,
                           bearer_token=config.bearer_token, hmac_secret=config.hmac_secret,
                           silences=silences, host=config.host, port=config.port,
                           max_body_bytes=config.max_body_bytes, sink=sink)
