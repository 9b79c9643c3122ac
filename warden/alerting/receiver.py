"""An authenticated HTTP endpoint for Alertmanager's webhooks (and the silences API).

Why: alerts from existing Prometheus rules should drive Warden's runbooks (as Robusta does),
so a real Alertmanager routes to ``POST /api/v1/alerts/alertmanager`` here. Every request must
carry ``Authorization: Bearer <token>`` (Alertmanager's ``http_config.authorization``) or a
valid ``X-Warden-Signature`` HMAC over ``timestamp + "." + body`` with a fresh timestamp.
Bodies over ``max_body_bytes`` are refused before they are read. Every refusal is counted by
reason in ``warden_alert_receiver_requests_total``; secrets are ``SecretStr`` and never logged.

Accepted alerts become :class:`~warden.records.Alert` records in ``inbound_alerts`` (read
later by the remediation engine) and are handed to an optional ``sink`` callable.

Routes: ``POST /api/v1/alerts/alertmanager``; ``GET|POST /api/v1/silences``;
``DELETE /api/v1/silences/<id>``; ``GET /-/healthy`` (no auth, no data).
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from warden.alerting.payload import PayloadError, alert_from_webhook, parse_webhook_payload
from warden.alerting.silences import SilenceError, SilenceStore, parse_duration
from warden.alerting.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from warden.records import Alert, AlertStatus, freeze_labels

__all__ = ["DEFAULT_MAX_BODY_BYTES", "InboundAlertStore", "WebhookReceiver"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_SKEW_S = 300.0
WEBHOOK_PATH = "/api/v1/alerts/alertmanager"
SILENCES_PATH = "/api/v1/silences"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbound_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL,
    generator_url TEXT NOT NULL DEFAULT '',
    consumed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS inbound_alerts_consumed ON inbound_alerts(consumed, id);
"""


class InboundAlertStore:
    """``inbound_alerts``: alerts received from Alertmanager, waiting for the runbook engine."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        with self._lock:
            conn.executescript(_SCHEMA)

    def add(self, receiver: str, group_key: str, alerts: Sequence[Alert], now: float) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT INTO inbound_alerts (received_at, receiver, group_key, fingerprint,"
                    " status, labels, annotations, starts_at, ends_at, generator_url)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(now, receiver, group_key, a.fingerprint, a.status.value,
                      json.dumps(dict(a.labels)), json.dumps(dict(a.annotations)), a.starts_at,
                      a.ends_at, a.generator_url) for a in alerts])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def pending(self, *, limit: int = 100) -> list[tuple[int, Alert]]:
        """Unconsumed alerts, oldest first, with their row ids for :meth:`consume`."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, labels, annotations, starts_at, ends_at, status, generator_url"
                " FROM inbound_alerts WHERE consumed = 0 ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(r[0], Alert(freeze_labels(json.loads(r[1])), freeze_labels(json.loads(r[2])),
                             r[3], r[4], AlertStatus(r[5]), r[6])) for r in rows]

    def consume(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._conn.executemany("UPDATE inbound_alerts SET consumed = 1 WHERE id = ?",
                                   [(i,) for i in ids])


class WebhookReceiver:
    """A ``ThreadingHTTPServer`` on a loopback port, in a daemon thread. ``port=0`` picks one."""

    def __init__(self, *, store: InboundAlertStore, registry: CollectorRegistry,
                 bearer_token: SecretStr | None = None, hmac_secret: SecretStr | None = None,
                 silences: SilenceStore | None = None, host: str = "127.0.0.1", port: int = 0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_skew_s: float = DEFAULT_MAX_SKEW_S,
                 sink: Callable[[Alert], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if bearer_token is None and hmac_secret is None:
            raise ValueError("receiver needs a bearer_token or an hmac_secret (no open endpoint)")
        if max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be > 0")
        self.store = store
        self.silences = silences
        self.max_body_bytes = max_body_bytes
        self.max_skew_s = max_skew_s
        self.sink = sink
        self.clock = clock
        self._bearer = bearer_token
        self._secret = hmac_secret
        self.requests = Counter("warden_alert_receiver_requests",
                                "Requests to the alert receiver, by result and reason",
                                ["result", "reason"], registry=registry)
        self.alerts_received = Counter("warden_alert_receiver_alerts",
                                       "Alerts accepted from Alertmanager", ["status"],
                                       registry=registry)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="warden-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- checks -------------------------------------------------------------------------------
    def authenticate(self, headers: dict[str, str], body: bytes) -> str | None:
        """``None`` when authenticated, else the refusal reason (for the counter)."""
        auth = headers.get("authorization", "")
        if self._bearer is not None and auth:
            want = "Bearer " + self._bearer.get_secret_value()
            if hmac.compare_digest(auth.encode(), want.encode()):
                return None
            return "bad_token"
        sig = headers.get(SIGNATURE_HEADER.lower(), "")
        ts = headers.get(TIMESTAMP_HEADER.lower(), "")
        if self._secret is not None and sig:
            try:
                skew = abs(self.clock() - float(ts))
            except ValueError:
                return "bad_timestamp"
            if skew > self.max_skew_s:
                return "stale_timestamp"
            if hmac.compare_digest(sig.encode(), sign(self._secret, ts, body).encode()):
                return None
            return "bad_signature"
        return "unauthenticated"

    def _count(self, result: str, reason: str) -> None:
        self.requests.labels(result, reason).inc()

    def _handle_webhook(self, body: bytes) -> tuple[int, dict[str, object]]:
        try:
            msg = parse_webhook_payload(body)
            alerts = [alert_from_webhook(a) for a in msg.alerts]
        except PayloadError as exc:
            self._count("rejected", "bad_payload")
            log.warning("refused webhook: %s", str(exc)[:300])
            return 400, {"error": "bad payload"}
        self.store.add(msg.receiver, msg.groupKey, alerts, self.clock())
        for a in alerts:
            self.alerts_received.labels(a.status.value).inc()
            if self.sink is not None:
                try:
                    self.sink(a)
                except Exception:
                    log.exception("alert sink failed")
        self._count("accepted", "ok")
        return 200, {"status": "ok", "alerts": len(alerts)}

    def _handle_silences(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        if self.silences is None:
            return 404, {"error": "silences API not enabled"}
        now = self.clock()
        if method == "GET" and path == SILENCES_PATH:
            return 200, [s.to_dict(now) for s in self.silences.list(now=now)]
        if method == "POST" and path == SILENCES_PATH:
            try:
                req = json.loads(body)
                sil = self.silences.add(req["matchers"], now=now,
                                        duration_s=parse_duration(str(req["duration"])),
                                        created_by=str(req.get("createdBy", "")),
                                        comment=str(req.get("comment", "")))
            except (ValueError, KeyError, TypeError) as exc:
                return 400, {"error": f"bad silence: {exc}"}
            return 200, sil.to_dict(now)
        if method == "DELETE" and path.startswith(SILENCES_PATH + "/"):
            try:
                sil = self.silences.expire(path.rsplit("/", 1)[1], now=now)
            except SilenceError as exc:
                return 404, {"error": str(exc)}
            return 200, sil.to_dict(now)
        return 405, {"error": "method not allowed"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "WardenReceiver/0.1"
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("receiver %s", format % args)  # request line only, never headers

            def _reply(self, code: int, obj: object) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                if method == "GET" and path == "/-/healthy":
                    self._reply(200, {"status": "ok"})
                    return
                if path != WEBHOOK_PATH and not path.startswith(SILENCES_PATH):
                    outer._count("rejected", "not_found")
                    self._reply(404, {"error": "not found"})
                    return
                length_s = self.headers.get("Content-Length")
                if method in ("POST", "PUT") and length_s is None:
                    outer._count("rejected", "no_length")
                    self.close_connection = True
                    self._reply(411, {"error": "Content-Length required"})
                    return
                try:
                    length = int(length_s or 0)
                except ValueError:
                    length = -1
                if length < 0 or length > outer.max_body_bytes:
                    outer._count("rejected", "too_large" if length > 0 else "bad_length")
                    self.close_connection = True  # do not read the oversized body
                    self._reply(413, {"error": "payload too large"})
                    return
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                reason = outer.authenticate(headers, body)
                if reason is not None:
                    outer._count("rejected", reason)
                    log.warning("refused %s %s: %s", method, path, reason)
                    self._reply(401, {"error": "unauthorized"})
                    return
                if path == WEBHOOK_PATH:
                    if method != "POST":
                        self._reply(405, {"error": "POST only"})
                        return
                    code, obj = outer._handle_webhook(body)
                else:
                    code, obj = outer._handle_silences(method, path, body)
                self._reply(code, obj)

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_DELETE(self) -> None:  # noqa: N802
                self._serve("DELETE")

        return Handler
