"""The Alertmanager webhook receiver: auth, size limit, bad payloads, counters, no leaked secret."""

from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from warden.alerting.payload import build_webhook_payload
from warden.alerting.receiver import InboundAlertStore, WebhookReceiver
from warden.alerting.silences import SilenceStore
from warden.alerting.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from warden.db import open_db
from warden.records import Alert, AlertStatus, freeze_labels

TOKEN = "tok-" + "Z9" * 12
SECRET = "hm-" + "Q7" * 12


@pytest.fixture
def rx(tmp_path):
    conn = open_db(tmp_path / "r.db")
    registry = CollectorRegistry()
    received: list[Alert] = []
    r = WebhookReceiver(store=InboundAlertStore(conn), registry=registry,
                        bearer_token=SecretStr(TOKEN), hmac_secret=SecretStr(SECRET),
                        silences=SilenceStore(conn), max_body_bytes=64 * 1024,
                        sink=received.append).start()
    yield r, registry, received
    r.stop()


def _body(n: int = 1) -> bytes:
    alerts = [Alert(freeze_labels({"alertname": "A", "i": str(i)}), (), 1.7e9, None,
                    AlertStatus.FIRING) for i in range(n)]
    return json.dumps(build_webhook_payload(alerts, receiver="warden",
                                            group_labels={"alertname": "A"},
                                            external_url="http://am")).encode()


def _count(registry, result: str, reason: str) -> float:
    return registry.get_sample_value("warden_alert_receiver_requests_total",
                                     {"result": result, "reason": reason}) or 0.0


def test_requires_auth_at_construction(tmp_path) -> None:
    with pytest.raises(ValueError):
        WebhookReceiver(store=InboundAlertStore(open_db(tmp_path / "x.db")),
                        registry=CollectorRegistry())


def test_accepts_bearer_and_hmac(rx) -> None:
    r, registry, received = rx
    resp = httpx.post(r.url, content=_body(2), headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    body = _body(1)
    ts = str(int(time.time()))
    resp = httpx.post(r.url, content=body, headers={
        TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SecretStr(SECRET), ts, body)})
    assert resp.status_code == 200
    assert len(received) == 3 and _count(registry, "accepted", "ok") == 2
    assert len(r.store.pending()) == 3
    ids = [i for i, _ in r.store.pending()]
    r.store.consume(ids[:2])
    assert len(r.store.pending()) == 1


def test_refuses_and_counts_bad_requests(rx, caplog) -> None:
    r, registry, received = rx
    caplog.set_level(logging.DEBUG)
    body = _body()
    old = str(int(time.time()) - 3600)
    cases = [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Bearer wrong"}, 401, "bad_token"),
        ({"Authorization": TOKEN}, 401, "bad_token"),
        ({TIMESTAMP_HEADER: str(int(time.time())), SIGNATURE_HEADER: "sha256=00"}, 401,
         "bad_signature"),
        ({TIMESTAMP_HEADER: old, SIGNATURE_HEADER: sign(SecretStr(SECRET), old, body)}, 401,
         "stale_timestamp"),
        ({TIMESTAMP_HEADER: "soon", SIGNATURE_HEADER: "sha256=00"}, 401, "bad_timestamp"),
    ]
    for headers, code, reason in cases:
        assert httpx.post(r.url, content=body, headers=headers).status_code == code, reason
        assert _count(registry, "rejected", reason) >= 1, reason
    # a signature for another body is refused
    ts = str(int(time.time()))
    assert httpx.post(r.url, content=body + b" ", headers={
        TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SecretStr(SECRET), ts, body)}
    ).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for bad in (b"not json", b"[]", b'{"version":"4"}',
                json.dumps({**json.loads(_body()), "version": "3"}).encode(),
                json.dumps({**json.loads(_body()), "alerts": [{"status": "weird", "labels": {},
                                                              "startsAt": "x"}]}).encode()):
        assert httpx.post(r.url, content=bad, headers=auth).status_code == 400
    assert _count(registry, "rejected", "bad_payload") == 5
    assert received == []
    assert all(SECRET not in m and TOKEN not in m for m in caplog.messages)


def test_oversized_payload_refused_unread(rx) -> None:
    r, registry, _ = rx
    big = b"{" + b" " * (65 * 1024) + b"}"
    resp = httpx.post(r.url, content=big, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 413
    assert _count(registry, "rejected", "too_large") == 1
    # chunked (no Content-Length) is refused too
    with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
        s.sendall(b"POST /api/v1/alerts/alertmanager HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        assert b" 411 " in s.recv(200)
    assert _count(registry, "rejected", "no_length") == 1


def test_silences_api(rx) -> None:
    r, _, _ = rx
    base = f"http://127.0.0.1:{r.port}/api/v1/silences"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(base).status_code == 401
    resp = httpx.post(base, headers=auth, json={"matchers": ["alertname=A"], "duration": "1h",
                                                "createdBy": "bob", "comment": "c"})
    assert resp.status_code == 200
    sid = resp.json()["id"]
    assert [s["state"] for s in httpx.get(base, headers=auth).json()] == ["active"]
    assert httpx.delete(f"{base}/{sid}", headers=auth).json()["state"] == "expired"
    assert httpx.delete(f"{base}/nope", headers=auth).status_code == 404
    assert httpx.post(base, headers=auth, json={"matchers": [], "duration": "1h"}
                      ).status_code == 400
    assert httpx.post(base, headers=auth, json={"matchers": ["a=b"], "duration": "soon"}
                      ).status_code == 400
