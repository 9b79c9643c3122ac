"""Alerting: from Warden's alerts to on-call, and from Alertmanager back into Warden.

Flow, in the manner of Alertmanager's notify pipeline::

    AlertTracker (pending/firing/resolved)
        -> AlertGrouper (group_wait / group_interval, by labels)
        -> Pipeline: InhibitStage -> SilenceStage -> DedupStage (repeat_interval)
                     -> RateLimitStage -> OutboxStage (durable, written before sent)
        -> OutboxDispatcher (retry, backoff with jitter, dead letters)
        -> WebhookNotifier (Alertmanager v4 JSON, HMAC) | AlertmanagerPushNotifier

and inbound: Alertmanager webhook -> WebhookReceiver -> ``inbound_alerts``. SLO alerts come from
``SloAlerter`` (burn rates over the store's ``chains``) on ``AlertingService.tick``; a
``RemediationStage`` before the outbox adds what the action audit says remediation did.

Modules are imported on demand (this file imports nothing heavy); the public names live in:
``lifecycle``, ``grouping``, ``pipeline``, ``inhibit``, ``silences``, ``payload``, ``webhook``,
``outbox``, ``receiver``, ``alertmanager``, ``enrich``, ``remediation_notes`` (what remediation
did, read from its audit), ``slo``, ``sli_chains`` (SLO events from the store's request chains),
``slo_history``, ``cli``.

Exceptions::

    AlertingError(Exception)
     +-- PayloadError(ValueError)      a webhook body that is not Alertmanager v4
     +-- SilenceError(ValueError)      a bad matcher or duration
     +-- SloConfigError(ValueError)    a bad SLO definition
"""

from __future__ import annotations

__all__ = ["AlertingError"]


class AlertingError(Exception):
    """Root of the alerting package's errors."""
