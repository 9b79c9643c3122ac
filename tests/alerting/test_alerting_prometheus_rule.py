"""A real Prometheus rule on the lab's Triton metrics reaches Warden through Alertmanager.

Real parts end to end: two Triton replicas (the session fleet) under traffic, one of them slowed
through its model-fault endpoint; Debian's Prometheus scrapes both replicas' ``/metrics`` and
evaluates a rule on Triton's own counters (mean compute time per request); Debian's
Alertmanager routes the alert to Warden's authenticated webhook receiver, which turns it into
an ``Alert`` record. Only the slowed replica may alert.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from alerting_helpers import am_config
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from serving.fleet import Fleet
from serving.loadgen import LoadGenerator, LoadProfile
from warden.alerting.receiver import InboundAlertStore, WebhookReceiver
from warden.db import open_db
from warden.records import AlertStatus

pytestmark = pytest.mark.slow

RULE_EXPR = ('rate(nv_inference_compute_infer_duration_us{model="synth"}[5s])'
             ' / rate(nv_inference_request_success{model="synth"}[5s]) > 40000')


def _faults(url: str, body: dict | None) -> None:
    req = urllib.request.Request(f"{url}/faults", method="POST" if body else "DELETE",
                                 data=json.dumps(body).encode() if body else None)
    urllib.request.urlopen(req, timeout=5).read()


def test_prometheus_rule_on_lab_metrics_reaches_warden(alertmanager_factory, prometheus_factory,
                                                       fleet: Fleet, tmp_path) -> None:
    slow, healthy = fleet.replicas[0], fleet.replicas[1]
    token = "prom-path-" + "s3cr3t" * 3
    store = InboundAlertStore(open_db(tmp_path / "w.db"))
    loads = [LoadGenerator(r.url, LoadProfile(rate=20), {"synth": 1}, seed=i)
             for i, r in enumerate((slow, healthy))]
    _faults(slow.control_url, {"extra_latency_ms": 80})
    try:
        for load in loads:
            load.start(duration_s=60)
        with WebhookReceiver(store=store, registry=CollectorRegistry(),
                             bearer_token=SecretStr(token)) as receiver:
            am = alertmanager_factory(am_config(receiver.url, token=token,
                                                group_by=["alertname", "replica"]))
            prometheus_factory(
                {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                 "scrape_configs": [{"job_name": "triton", "static_configs": [
                     {"targets": [f"127.0.0.1:{r.metrics_port}"],
                      "labels": {"replica": r.name}} for r in (slow, healthy)]}],
                 "alerting": {"alertmanagers": [{"static_configs": [
                     {"targets": [f"127.0.0.1:{am.port}"]}]}]}},
                {"groups": [{"name": "warden-lab", "rules": [{
                    "alert": "TritonComputeSlow", "expr": RULE_EXPR, "for": "2s",
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "compute {{ $value }} us/request on "
                                               "{{ $labels.replica }}"}}]}]})
            deadline = time.monotonic() + 60
            got: list = []
            while time.monotonic() < deadline and not got:
                got = store.pending()
                time.sleep(0.25)
            time.sleep(3)  # give a wrong alert on the healthy replica its chance to show
            got = store.pending()
    finally:
        _faults(slow.control_url, None)
        for load in loads:
            load.stop()
    assert got, "the Prometheus rule's alert did not reach Warden"
    _, alert = got[0]
    labels = dict(alert.labels)
    assert labels["alertname"] == "TritonComputeSlow"
    assert labels["replica"] == slow.name and labels["severity"] == "page"
    assert labels["model"] == "synth"
    assert alert.status is AlertStatus.FIRING
    assert dict(alert.annotations)["summary"].endswith(f"us/request on {slow.name}")
    assert "graph" in alert.generator_url  # Prometheus's link back to the expression
    assert all(dict(a.labels)["replica"] == slow.name for _, a in got)
