"""Enrichment annotations and the ``alerting:`` config section."""

from __future__ import annotations

import math

import pytest

from warden.alerting.config import AlertingConfigError, load_alerting_config
from warden.alerting.enrich import MAX_ANNOTATION_CHARS, enrich
from warden.records import ActionRecord, ActionStatus, Alert, AlertStatus, Anomaly, freeze_labels


def _alert() -> Alert:
    return Alert(freeze_labels({"alertname": "HighP99Latency", "model": "mlp", "replica": "r1"}),
                 freeze_labels({"summary": "p99 high"}), 1_800_000_000.0, None,
                 AlertStatus.FIRING)


def test_enrich_adds_evidence_traces_dashboard_and_remediation() -> None:
    an = Anomaly(1.8e9, "p99_drift", "triton_request_p99_seconds",
                 freeze_labels({"replica": "r1"}), 0.97, 0.020, 0.145,
                 {"window": 60, "stage": "queue", "bad": math.nan, "huge": "x" * 5000})
    acts = [ActionRecord(1.8e9, "scale_out", "scale", "mlp", {"n": 3}, "k1", ActionStatus.APPLIED),
            ActionRecord(1.8e9, "scale_out", "verify", "mlp", {}, "k1", ActionStatus.VERIFIED,
                         result="p99 back to 22 ms")]
    out = dict(enrich(_alert(), anomaly=an, slow_trace_ids=["t1", "", "t2"] + ["t"] * 10,
                      dashboard_url="http://dash:8501/", actions=acts).annotations)
    assert out["summary"] == "p99 high"
    assert out["evidence"] == ("p99_drift on triton_request_p99_seconds: observed 0.145 vs "
                               "baseline 0.02 (score 0.97)")
    assert '"bad":"nan"' in out["evidence_detail"]
    assert len(out["evidence_detail"]) <= MAX_ANNOTATION_CHARS
    assert out["slowest_trace_ids"] == "t1,t2,t,t,t"
    assert out["dashboard"].startswith("http://dash:8501/?model=mlp&replica=r1&from=")
    assert out["remediation"] == ("scale_out/scale on mlp: applied; "
                                  "scale_out/verify on mlp: verified")
    assert out["remediation_result"] == "verified: p99 back to 22 ms"
    assert all(isinstance(v, str) for v in out.values())


def test_config_defaults_and_errors() -> None:
    cfg = load_alerting_config(None)
    assert cfg.receivers == [] and cfg.inhibit_rules is None
    ok = load_alerting_config({
        "receivers": [{"name": "oncall", "url": "http://x/hook", "hmac_secret": "s3cr3t-value"}],
        "routes": [{"receiver": "oncall", "group_wait_s": 0, "matchers": ["severity=page"]}]})
    assert ok.routes[0].group_interval_s == 300.0
    assert "s3cr3t-value" not in repr(ok) and "s3cr3t-value" not in str(ok.model_dump())
    for bad, key in (
        ({"routes": [{"receiver": "nobody"}]}, "routes[0].receiver"),
        ({"receivers": [{"name": "a", "url": "ftp://x"}]}, "alerting.receivers.0.url"),
        ({"routes": [{"receiver": "a", "matchers": ["bad"]}],
          "receivers": [{"name": "a", "url": "http://x"}]}, "alerting.routes.0"),
        ({"surprise": 1}, "alerting.surprise"),
        ([], "alerting:"),
    ):
        with pytest.raises(AlertingConfigError, match=__import__("re").escape(key)):
            load_alerting_config(bad)


def test_make_receiver_only_with_a_secret(tmp_path) -> None:
    from prometheus_client import CollectorRegistry

    from warden.alerting.service import make_receiver
    from warden.db import open_db

    conn = open_db(tmp_path / "w.db")
    assert make_receiver(load_alerting_config(None).inbound, conn,
                         registry=CollectorRegistry()) is None
    cfg = load_alerting_config({"inbound": {"port": 0, "bearer_token": "t0k3n-t0k3n"}})
    rx = make_receiver(cfg.inbound, conn, registry=CollectorRegistry())
    assert rx is not None
    with rx:
        import httpx

        assert httpx.post(rx.url, content=b"{}").status_code == 401
        assert httpx.post(rx.url, content=b"{}", headers={
            "Authorization": "Bearer t0k3n-t0k3n"}).status_code == 400
