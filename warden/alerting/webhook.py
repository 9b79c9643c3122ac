"""Notifiers: the HTTP senders the outbox dispatcher calls. No retries here, by design.

Why no retry inside: retries belong to the durable outbox (they must survive a crash), so a
notifier makes exactly one attempt and says, as Alertmanager's ``Notify`` returns
``(retry bool, err)``, whether a failure is worth retrying: connection errors, timeouts, 5xx,
408 and 429 are; other 4xx are not (the same body will not start to succeed).

Headers on every webhook: ``Idempotency-Key`` (stable across re-sends, so receivers can
deduplicate at-least-once delivery), ``X-Warden-Timestamp`` and ``X-Warden-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>." + body>`` when a secret is set, and
``Authorization: Bearer`` when a token is set. The key stays out of the JSON body: the body is
Alertmanager's v4 message, field for field.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import SecretStr

__all__ = [
    "AlertmanagerPushNotifier",
    "DeliveryResult",
    "IDEMPOTENCY_HEADER",
    "Notifier",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookNotifier",
    "sign",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "X-Warden-Signature"
TIMESTAMP_HEADER = "X-Warden-Timestamp"
USER_AGENT = "Warden-Alerting/0.1"
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    ok: bool
    retryable: bool
    status_code: int | None = None
    error: str = ""


class Notifier(Protocol):
    """One delivery attempt of a stored body; says whether a failure is retryable."""

    def deliver(self, body: bytes, *, idempotency_key: str) -> DeliveryResult: ...


def sign(secret: SecretStr, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp + "." + body``; the timestamp stops replays."""
    mac = hmac.new(secret.get_secret_value().encode(), timestamp.encode() + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _classify(resp: httpx.Response) -> DeliveryResult:
    code = resp.status_code
    if 200 <= code < 300:
        return DeliveryResult(True, False, code)
    retryable = code >= 500 or code in (408, 429)
    return DeliveryResult(False, retryable, code, f"HTTP {code}")


class _HttpNotifier:
    def __init__(self, url: str, *, bearer_token: SecretStr | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"notifier url must be http(s), got {url!r}")
        self.url = url
        self._bearer = bearer_token
        self._client = client or httpx.Client(timeout=timeout_s, headers={"User-Agent": USER_AGENT})
        self.timeout_s = timeout_s

    def _post(self, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        headers = {"Content-Type": "application/json", **headers}
        if self._bearer is not None:
            headers["Authorization"] = "Bearer " + self._bearer.get_secret_value()
        try:
            resp = self._client.post(self.url, content=body, headers=headers,
                                     timeout=self.timeout_s)
        except httpx.TimeoutException as exc:
            return DeliveryResult(False, True, None, f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return DeliveryResult(False, True, None, f"{type(exc).__name__}: {exc}")
        return _classify(resp)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:  # never show secrets
        return f"{type(self).__name__}(url={self.url!r})"


class WebhookNotifier(_HttpNotifier):
    """POSTs Alertmanager v4 JSON to a webhook URL, signed and keyed."""

    def __init__(self, url: str, *, hmac_secret: SecretStr | None = None,
                 bearer_token: SecretStr | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 client: httpx.Client | None = None,
                 wall_clock: Callable[[], float] | None = None) -> None:
        super().__init__(url, bearer_token=bearer_token, timeout_s=timeout_s, client=client)
        self._secret = hmac_secret
        import time as _time

        self._wall = wall_clock or _time.time

    def deliver(self, body: bytes, *, idempotency_key: str) -> DeliveryResult:
        headers = {IDEMPOTENCY_HEADER: idempotency_key}
        if self._secret is not None:
            ts = str(int(self._wall()))
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(self._secret, ts, body)
        return self._post(body, headers)


class AlertmanagerPushNotifier(_HttpNotifier):
    """POSTs alerts to a real Alertmanager's ``/api/v2/alerts`` so its routing tree applies."""

    def __init__(self, base_url: str, *, bearer_token: SecretStr | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, client: httpx.Client | None = None) -> None:
        super().__init__(base_url.rstrip("/") + "/api/v2/alerts", bearer_token=bearer_token,
                         timeout_s=timeout_s, client=client)

    def deliver(self, body: bytes, *, idempotency_key: str) -> DeliveryResult:
        return self._post(body, {IDEMPOTENCY_HEADER: idempotency_key})
