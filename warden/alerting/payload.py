"""Alertmanager's webhook payload, version 4, field for field, both ways.

Why exact: on-call tooling already speaks this JSON (PagerDuty bridges, chat relays, Robusta).
If Warden sends what Alertmanager sends, any receiver works unchanged; if Warden reads what
Alertmanager sends, alerts from existing Prometheus rules can drive Warden's runbooks.

Times are formatted as Go's ``time.Time`` marshals them (RFC 3339 with nanoseconds, trailing
zeros dropped, ``Z`` for UTC); a firing alert's ``endsAt`` is Go's zero time, as Alertmanager
writes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from warden.alerting import AlertingError
from warden.records import Alert, AlertStatus, Labels, freeze_labels

__all__ = [
    "GO_ZERO_TIME",
    "PAYLOAD_VERSION",
    "PayloadError",
    "WebhookAlert",
    "WebhookMessage",
    "alert_from_webhook",
    "build_webhook_payload",
    "format_go_time",
    "group_key",
    "parse_go_time",
    "parse_webhook_payload",
]

PAYLOAD_VERSION = "4"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_FRACTION = re.compile(r"\.(\d+)")


class PayloadError(AlertingError, ValueError):
    """A webhook body that is not a valid Alertmanager v4 message."""


def format_go_time(ts: float | None) -> str:
    """Unix seconds as Go's RFC3339Nano in UTC; ``None`` as Go's zero time."""
    if ts is None:
        return GO_ZERO_TIME
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{dt.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def parse_go_time(text: str) -> float | None:
    """Parse an RFC 3339 time as Go writes it (up to 9 fractional digits, any offset).

    Returns ``None`` for Go's zero time (year 1), which Alertmanager uses for "no end yet".
    """
    if not text or text.startswith("0001-01-01"):
        return None
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    s = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], s, count=1)
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError as exc:
        raise PayloadError(f"bad RFC 3339 time {text!r}") from exc


def _label_set_string(labels: Mapping[str, str]) -> str:
    """Prometheus ``model.LabelSet.String()``: sorted, ``name="value"`` joined by ``, ``."""
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def group_key(group_labels: Mapping[str, str], *, route_key: str = "{}") -> str:
    """Alertmanager's group key: the route's key, a colon, the group labels."""
    return f"{route_key}:{_label_set_string(group_labels)}"


def _common(items: Sequence[Labels]) -> dict[str, str]:
    """Label pairs shared by every set in ``items`` (Alertmanager's commonLabels)."""
    if not items:
        return {}
    common = dict(items[0])
    for labels in items[1:]:
        d = dict(labels)
        common = {k: v for k, v in common.items() if d.get(k) == v}
    return common


def _alert_status(alert: Alert, now: float | None) -> str:
    """Firing or resolved, as Alertmanager reports it (pending alerts are never sent)."""
    if alert.status is AlertStatus.RESOLVED:
        return "resolved"
    if alert.ends_at is not None and now is not None and alert.ends_at <= now:
        return "resolved"
    return "firing"


def build_webhook_payload(
    alerts: Sequence[Alert],
    *,
    receiver: str,
    group_labels: Mapping[str, str],
    external_url: str,
    route_key: str = "{}",
    max_alerts: int = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """The v4 message for one group's notification, keys in Alertmanager's order.

    ``max_alerts`` (0 = no limit) truncates the list as Alertmanager's webhook ``max_alerts``
    does, counting the rest in ``truncatedAlerts``.
    """
    statuses = [_alert_status(a, now) for a in alerts]
    shown = list(zip(alerts, statuses))
    truncated = 0
    if max_alerts and len(shown) > max_alerts:
        truncated = len(shown) - max_alerts
        shown = shown[:max_alerts]
    return {
        "receiver": receiver,
        "status": "firing" if "firing" in statuses else "resolved",
        "alerts": [
            {
                "status": status,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "startsAt": format_go_time(a.starts_at),
                "endsAt": format_go_time(a.ends_at),
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint,
            }
            for a, status in shown
        ],
        "groupLabels": dict(sorted(group_labels.items())),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "version": PAYLOAD_VERSION,
        "groupKey": group_key(group_labels, route_key=route_key),
        "truncatedAlerts": truncated,
    }


class WebhookAlert(BaseModel):
    """One alert of a v4 message. Unknown fields are ignored, as Alertmanager receivers do."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: str
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str = GO_ZERO_TIME
    generatorURL: str = ""
    fingerprint: str = ""


class WebhookMessage(BaseModel):
    """A v4 message as Alertmanager sends it; every documented field is required."""

    model_config = ConfigDict(extra="ignore")

    version: str
    groupKey: str
    truncatedAlerts: int = Field(ge=0)
    status: str
    receiver: str
    groupLabels: dict[str, str]
    commonLabels: dict[str, str]
    commonAnnotations: dict[str, str]
    externalURL: str
    alerts: list[WebhookAlert]


def parse_webhook_payload(body: bytes | str) -> WebhookMessage:
    """Validate a webhook body; raise :class:`PayloadError` naming what is wrong."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PayloadError("webhook body is not a JSON object")
    try:
        msg = WebhookMessage.model_validate(raw)
    except ValidationError as exc:
        raise PayloadError(f"not an Alertmanager webhook message: {exc}") from exc
    if msg.version != PAYLOAD_VERSION:
        raise PayloadError(f"unsupported webhook version {msg.version!r}, want {PAYLOAD_VERSION!r}")
    for a in msg.alerts:
        if a.status not in ("firing", "resolved"):
            raise PayloadError(f"bad alert status {a.status!r}")
    return msg


def alert_from_webhook(item: WebhookAlert) -> Alert:
    """Convert one received alert to Warden's :class:`~warden.records.Alert`."""
    resolved = item.status == "resolved"
    ends = parse_go_time(item.endsAt)
    starts = parse_go_time(item.startsAt)
    if starts is None:
        raise PayloadError("alert without startsAt")
    return Alert(
        labels=freeze_labels(item.labels),
        annotations=freeze_labels(item.annotations),
        starts_at=starts,
        ends_at=ends if resolved else None,
        status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
        generator_url=item.generatorURL,
    )
