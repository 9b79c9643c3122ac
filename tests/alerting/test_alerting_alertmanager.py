"""Interop with a real Alertmanager 0.25: fingerprint, push, webhook back, payload conformance."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import pytest
from alerting_helpers import am_config
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from warden.alerting.config import load_alerting_config
from warden.alerting.payload import build_webhook_payload, parse_webhook_payload
from warden.alerting.pipeline import alertmanager_push_body
from warden.alerting.receiver import InboundAlertStore, WebhookReceiver
from warden.alerting.service import AlertingService
from warden.db import open_db
from warden.records import Alert, AlertStatus, alert_fingerprint, freeze_labels

pytestmark = pytest.mark.slow

LABEL_SETS = [
    {"alertname": "HighP99Latency", "model": "mlp", "replica": "r0", "severity": "page"},
    {"alertname": "ReplicaDown", "replica": "r1"},
    {"alertname": "Unicode", "note": "température ✓", "empty_looking": " "},
    {"alertname": "x"},
]


def _alert(labels: dict[str, str], starts: float) -> Alert:
    return Alert(freeze_labels(labels), freeze_labels({"summary": "s " + labels["alertname"]}),
                 starts, None, AlertStatus.FIRING, "http://warden.local/graph")


def test_fingerprint_matches_real_alertmanager(alertmanager_factory, recording_server) -> None:
    am = alertmanager_factory(am_config(recording_server.url))
    now = time.time()
    body = json.dumps(alertmanager_push_body([_alert(ls, now) for ls in LABEL_SETS]))
    r = httpx.post(am.base_url + "/api/v2/alerts", content=body,
                   headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 200, r.text
    got = {a["labels"]["alertname"]: a["fingerprint"]
           for a in httpx.get(am.base_url + "/api/v2/alerts", timeout=5).json()}
    assert len(got) == len(LABEL_SETS)
    for ls in LABEL_SETS:
        assert got[ls["alertname"]] == alert_fingerprint(ls), ls


def test_push_reaches_warden_receiver_through_alertmanager(alertmanager_factory,
                                                            tmp_path) -> None:
    """Warden pushes via its outbox to /api/v2/alerts; Alertmanager's webhook comes back."""
    token = "am-to-warden-" + "k3y" * 4
    registry = CollectorRegistry()
    store = InboundAlertStore(open_db(tmp_path / "w.db"))
    with WebhookReceiver(store=store, registry=registry,
                         bearer_token=SecretStr(token)) as receiver:
        am = alertmanager_factory(am_config(receiver.url, token=token,
                                            group_by=["alertname", "replica"]))
        # Warden pushes through its pipeline and outbox, as the engine does.
        cfg = load_alerting_config({
            "receivers": [{"name": "am", "kind": "alertmanager", "url": am.base_url}],
            "routes": [{"receiver": "am", "group_by": ["..."], "group_wait_s": 0}]})
        svc = AlertingService(cfg, open_db(tmp_path / "w.db"), registry=CollectorRegistry())
        starts = time.time() - 5
        alerts = [_alert(LABEL_SETS[0], starts)]
        svc.submit(alerts)
        assert svc.delivery.run_once() == 1
        outbox = svc.outbox
        deadline = time.monotonic() + 15
        got: list = []
        while time.monotonic() < deadline and not got:
            got = store.pending()
            time.sleep(0.1)
        assert got, "Alertmanager did not deliver the webhook to Warden's receiver"
        _, alert = got[0]
        assert alert.labels == alerts[0].labels
        assert alert.annotations == alerts[0].annotations
        assert alert.status is AlertStatus.FIRING
        assert abs(alert.starts_at - starts) < 1e-3
        assert alert.fingerprint == alerts[0].fingerprint
        assert registry.get_sample_value("warden_alert_receiver_requests_total",
                                         {"result": "accepted", "reason": "ok"}) >= 1
        row = open_db(tmp_path / "w.db").execute(
            "SELECT group_key, receiver FROM inbound_alerts").fetchone()
        assert row == ('{}:{alertname="HighP99Latency", replica="r0"}', "warden")


def test_webhook_payload_conforms_to_alertmanager_capture(alertmanager_factory,
                                                          recording_server) -> None:
    """Capture a real v4 message from Alertmanager, then compare Warden's, field for field."""
    am = alertmanager_factory(am_config(recording_server.url, group_by=["alertname", "replica"]))
    starts = time.time() - 3
    alerts = [_alert({**LABEL_SETS[0], "replica": "r0"}, starts),
              _alert({**LABEL_SETS[0], "replica": "r0", "model": "mlp_lite"}, starts)]
    r = httpx.post(am.base_url + "/api/v2/alerts", json=alertmanager_push_body(alerts), timeout=5)
    assert r.status_code == 200
    assert recording_server.wait_for(1, 15), "no webhook from Alertmanager"
    captured = recording_server.snapshot()[0].json()
    assert isinstance(captured, dict)

    ours = build_webhook_payload(alerts, receiver="warden",
                                 group_labels={"alertname": "HighP99Latency", "replica": "r0"},
                                 external_url=captured["externalURL"])
    ours = json.loads(json.dumps(ours))
    # Same fields in the same order, same JSON types, at the top and in each alert.
    assert list(ours) == list(captured)
    for k in captured:
        assert type(ours[k]) is type(captured[k]), k
    for mine, theirs in zip(sorted(ours["alerts"], key=lambda a: a["fingerprint"]),
                            sorted(captured["alerts"], key=lambda a: a["fingerprint"])):
        assert list(mine) == list(theirs)
        assert mine == theirs  # startsAt, endsAt (Go zero time), fingerprint: all equal
    for k in ("version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
              "commonLabels", "commonAnnotations"):
        assert ours[k] == captured[k], (k, ours[k], captured[k])
    assert ours["alerts"] and len(ours["alerts"]) == len(captured["alerts"])
    # And Warden's parser accepts Alertmanager's own message.
    msg = parse_webhook_payload(json.dumps(captured))
    assert {a.fingerprint for a in msg.alerts} == {a.fingerprint for a in alerts}


def test_resolved_payload_conforms_byte_for_byte(alertmanager_factory, recording_server) -> None:
    """A single-alert firing then resolved message: Warden's JSON equals Alertmanager's bytes."""
    am = alertmanager_factory(am_config(recording_server.url))
    a = _alert({"alertname": "Solo", "replica": "r2"}, time.time() - 2)
    httpx.post(am.base_url + "/api/v2/alerts", json=alertmanager_push_body([a]), timeout=5)
    assert recording_server.wait_for(1, 15)
    b = replace(a, status=AlertStatus.RESOLVED, ends_at=time.time())
    httpx.post(am.base_url + "/api/v2/alerts", json=alertmanager_push_body([b]), timeout=5)
    assert recording_server.wait_for(2, 15)
    for sent, got in zip((a, b), recording_server.snapshot()):
        theirs = got.json()
        assert isinstance(theirs, dict)
        ours = build_webhook_payload([sent], receiver="warden",
                                     group_labels={"alertname": "Solo"},
                                     external_url=theirs["externalURL"])
        assert json.dumps(ours, separators=(",", ":"), ensure_ascii=False).encode() == got.body.rstrip(b"\n")
