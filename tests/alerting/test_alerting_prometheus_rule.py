"""A real Prometheus rule fires on scraped metrics and reaches Warden through Alertmanager.

Today the scraped endpoint is a small prometheus-client server in the test (a gauge set above
the threshold), standing in for the lab. To point it at the lab's Triton metrics, replace
``SCRAPE_TARGET`` with a replica's metrics address and ``RULE_EXPR`` with e.g.
``rate(nv_inference_queue_duration_us[30s]) / rate(nv_inference_request_success[30s]) > 1000``.
"""

from __future__ import annotations

import time

import pytest
from alerting_helpers import am_config, free_port
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from pydantic import SecretStr

from warden.alerting.receiver import InboundAlertStore, WebhookReceiver
from warden.db import open_db
from warden.records import AlertStatus

pytestmark = pytest.mark.slow

METRIC = "warden_lab_queue_seconds"
RULE_EXPR = f"{METRIC} > 1"


def test_prometheus_rule_on_lab_metrics_reaches_warden(alertmanager_factory, prometheus_factory,
                                                       tmp_path) -> None:
    lab_registry = CollectorRegistry()
    gauge = Gauge(METRIC, "queue time of the (stand-in) lab", ["model", "replica"],
                  registry=lab_registry)
    gauge.labels("mlp", "r0").set(5.0)  # above the threshold: the rule must fire
    gauge.labels("mlp", "r1").set(0.1)  # below: must not
    metrics_port = free_port()
    server, thread = start_http_server(metrics_port, addr="127.0.0.1", registry=lab_registry)
    token = "prom-path-" + "s3cr3t" * 3
    store = InboundAlertStore(open_db(tmp_path / "w.db"))
    try:
        with WebhookReceiver(store=store, registry=CollectorRegistry(),
                             bearer_token=SecretStr(token)) as receiver:
            am = alertmanager_factory(am_config(receiver.url, token=token,
                                                group_by=["alertname", "replica"]))
            prometheus_factory(
                {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                 "scrape_configs": [{"job_name": "lab", "static_configs": [
                     {"targets": [f"127.0.0.1:{metrics_port}"]}]}],
                 "alerting": {"alertmanagers": [{"static_configs": [
                     {"targets": [f"127.0.0.1:{am.port}"]}]}]}},
                {"groups": [{"name": "warden-lab", "rules": [{
                    "alert": "LabQueueTooLong", "expr": RULE_EXPR, "for": "0s",
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "queue {{ $value }} s on {{ $labels.replica }}"}}]}]})
            deadline = time.monotonic() + 40
            got: list = []
            while time.monotonic() < deadline and not got:
                got = store.pending()
                time.sleep(0.25)
    finally:
        server.shutdown()
        server.server_close()
    assert got, "the Prometheus rule's alert did not reach Warden"
    _, alert = got[0]
    labels = dict(alert.labels)
    assert labels["alertname"] == "LabQueueTooLong"
    assert labels["replica"] == "r0" and labels["severity"] == "page"
    assert alert.status is AlertStatus.FIRING
    assert dict(alert.annotations)["summary"] == "queue 5 s on r0"
    assert "graph" in alert.generator_url  # Prometheus's link back to the expression
    assert all(dict(a.labels)["replica"] == "r0" for _, a in got)
