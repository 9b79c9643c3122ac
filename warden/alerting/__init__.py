"""Alerting: from Warden's alerts to on-call, and from Alertmanager back into Warden.

Flow, in the manner of Alertmanager's notify pipeline::

    AlertTracker (pending/firing/resolved)
        -> AlertGrouper (group_wait / group_interval, by labels)
        -> Pipeline: InhibitStage -> SilenceStage -> DedupStage (repeat_interval)
                     -> RateLimitStage -> OutboxStage (durable, written before sent)
        -> OutboxDispatcher (retry, backoff with jitter, dead letters)
        -> WebhookNotifier (Alertmanager v4 JSON, HMAC) | AlertmanagerPushNotifier

and inbound: Alertmanager webhook -> WebhookReceiver -> ``inbound_alerts``.

Modules are imported on demand (this file imports nothing heavy); the public names live in:
``lifecycle``, ``grouping``, ``pipeline``, ``inhibit``, ``silences``, ``payload``, ``webhook``,
``outbox``, ``receiver``, ``alertmanager``, ``enrich``, ``slo``, ``cli``.

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
