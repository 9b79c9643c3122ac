"""SLO events counted from a real store's ``chains``, and SLO alerts from them to a real webhook."""

from __future__ import annotations

import json
import math

import pytest
from prometheus_client import CollectorRegistry

from warden.alerting.config import load_alerting_config
from warden.alerting.service import AlertingService
from warden.alerting.sli_chains import StoreChainsSli
from warden.alerting.slo import SloConfigError, SloEvaluator, SloSpec, burn_rate, load_slos
from warden.db import open_db
from warden.records import RequestChain
from warden.store import Store

T0, T1 = 1_800_000_000.0, 1_800_000_600.0  # a 10-minute window
AVAIL = SloSpec(name="mlp-avail", model="mlp", kind="availability", objective=0.9)
LAT = SloSpec(name="mlp-fast", model="mlp", kind="latency", objective=0.9,
              latency_threshold_s=0.1)

# (ts, model, variant, latency_s, error): what each row teaches is in its comment
ROWS = [
    (T0, "mlp", "full", 0.05, False),           # at start: inside ([start, end))
    (T0 + 10, "mlp", "full", 0.05, False),      # good
    (T0 + 20, "mlp", "full", 0.05, False),      # good
    (T0 + 30, "mlp", "lite", 0.04, False),      # good, served by lite: counts for mlp
    (T0 + 40, "mlp", "lite", 0.04, False),      # good, lite
    (T0 + 50, "mlp_lite", "lite", 0.04, False),  # Triton's lite name kept by another source
    (T0 + 60, "mlp", "full", 0.30, False),      # slow: good for availability, bad for latency
    (T0 + 70, "mlp", "lite", 0.20, False),      # slow on lite
    (T0 + 80, "mlp", "lite", 0.01, True),       # error, fast: bad for both
    (T0 + 90, "mlp", "full", 0.90, True),       # error, slow: bad for both
    (T0 - 1, "mlp", "full", 0.05, True),        # before the window
    (T1, "mlp", "full", 0.05, True),            # at end: outside
    (T0 + 100, "synth", "full", 0.90, True),    # another model
    (T0 + 110, "synthetic", "full", 0.9, True),  # a name that merely starts like it
]


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "w.db")
    s.write_chains(RequestChain(f"t{i}", ts, m, v, f"r{i % 2}", lat, {}, error=err)
                   for i, (ts, m, v, lat, err) in enumerate(ROWS))
    yield s
    s.close()


def test_counts_are_exact_over_variants_and_window(store: Store) -> None:
    src = StoreChainsSli(store)
    assert src.counts(AVAIL, T0, T1) == (8.0, 10.0)
    assert src.counts(LAT, T0, T1) == (6.0, 10.0)  # 2 slow + 2 errors are bad
    assert burn_rate(*src.counts(AVAIL, T0, T1), AVAIL.objective) == pytest.approx(2.0)
    assert burn_rate(*src.counts(LAT, T0, T1), LAT.objective) == pytest.approx(4.0)
    synth = AVAIL.model_copy(update={"model": "synth", "name": "s"})
    assert src.counts(synth, T0, T1) == (0.0, 1.0)
    assert src.counts(AVAIL, T1, T1 + 60) == (0.0, 1.0)  # the row at T1 starts the next one
    assert src.counts(AVAIL, T0 + 1000, T0 + 2000) == (0.0, 0.0)


def test_evaluator_reads_budget_and_tiers_from_chains(store: Store) -> None:
    ev = SloEvaluator([AVAIL, LAT], StoreChainsSli(store))
    b = ev.budget(LAT, T1)  # the 30-day period also holds the error one second before T0
    assert (b.good, b.total) == (6.0, 11.0)
    assert b.budget_remaining == pytest.approx(1 - (5 / 11) / 0.1)
    fast = ev.tiers_for(LAT, T1)[0]  # 1 h and 5 m; the last 5 m saw no request
    assert fast.long_burn == pytest.approx((5 / 11) / 0.1) and fast.short_burn == 0.0
    assert not fast.firing


def test_count_uses_the_model_ts_index(store: Store) -> None:
    src = StoreChainsSli(store)
    for slo in (AVAIL, LAT):
        plan = src.plan(slo)
        assert "USING INDEX chains_model_ts" in plan and "SCAN chains" not in plan, plan


def test_a_broken_window_counts_nothing_and_is_counted(store: Store) -> None:
    src = StoreChainsSli(store)
    assert src.counts(AVAIL, math.nan, T1) == (0.0, 0.0)
    assert src.counts(AVAIL, T1, T0) == (0.0, 0.0)
    assert src.rejected_windows == 2


def test_an_slo_on_the_lite_name_is_refused() -> None:
    with pytest.raises(SloConfigError, match="not its lite variant"):
        load_slos([{"name": "x", "model": "mlp_lite", "kind": "availability",
                    "objective": 0.99}])
    with pytest.raises(ValueError, match="slos: names must be unique"):
        load_alerting_config({"slos": [AVAIL.model_dump(), AVAIL.model_dump()]})


def test_service_pages_the_burn_from_chains_then_resolves(tmp_path, recording_server) -> None:
    """Errors in the chains -> SloBudgetBurn page and ticket on a real webhook -> resolved."""
    store = Store(tmp_path / "w.db")
    now = [T1]
    # one request a second for 10 minutes, the last 5 minutes 20 % errors (200x a 0.1 % budget)
    store.write_chains(RequestChain(f"q{i}", T1 - 600 + i, "mlp", "lite" if i % 2 else "full",
                                    "r0", 0.02, {}, error=i >= 300 and i % 5 == 0)
                       for i in range(600))
    cfg = load_alerting_config({
        "receivers": [{"name": "oncall", "url": recording_server.url}],
        "routes": [{"receiver": "oncall", "group_by": ["alertname", "slo"], "group_wait_s": 0,
                    "group_interval_s": 1}],
        "slos": [{"name": "mlp-avail", "model": "mlp", "kind": "availability",
                  "objective": 0.999}],
        "slo_interval_s": 30})
    to_remediation: list[list] = []
    svc = AlertingService(cfg, open_db(tmp_path / "w.db"), registry=CollectorRegistry(),
                          clock=lambda: now[0], sli_source=StoreChainsSli(store),
                          slo_sinks=[lambda alerts, t: to_remediation.append(alerts)])
    try:
        svc.tick()
        assert svc.delivery.run_once() == 1
        # the same alerts reach the SLO sinks (the lab hands them to remediation)
        assert [sorted(dict(a.labels)["severity"] for a in batch) for batch in to_remediation] \
            == [["page", "ticket"]]
        (got,) = recording_server.snapshot()
        body = got.json()
        assert body["status"] == "firing" and body["groupLabels"] == {
            "alertname": "SloBudgetBurn", "slo": "mlp-avail"}
        # one alert per severity fires; the page inhibits the ticket (default rule)
        assert svc.slo is not None
        assert sorted(dict(a.labels)["severity"] for a in svc.slo.firing()) == ["page", "ticket"]
        by_sev = {a["labels"]["severity"]: a for a in body["alerts"]}
        assert set(by_sev) == {"page"}
        page = by_sev["page"]["annotations"]
        # 60 errors of 600 over the hour: 10 %, 100x; 5 m: 60 of 300, 20 %, 200x
        assert float(page["burn_rate_long"]) == pytest.approx(100.0)
        assert float(page["burn_rate_short"]) == pytest.approx(200.0)
        assert page["windows"] == "1h/5m" and "fast tier" in page["summary"]
        assert by_sev["page"]["labels"]["model"] == "mlp"
        # an evaluation is not due again for 30 s: nothing new
        now[0] += 5
        svc.tick()
        assert svc.delivery.run_once() == 0
        # 7 h later the errors have left every short window: both resolve, one notification
        now[0] += 7 * 3600
        svc.tick()
        assert svc.delivery.run_once() == 1
        resolved = recording_server.snapshot()[-1].json()
        assert resolved["status"] == "resolved"
        assert {a["status"] for a in resolved["alerts"]} == {"resolved"}
        assert svc.slo.firing() == [] and svc.slo.errors == 0 and svc.slo.evaluations == 2
    finally:
        store.close()


def test_a_failed_evaluation_keeps_the_alert_firing(tmp_path, recording_server) -> None:
    store = Store(tmp_path / "w.db")
    store.write_chains(RequestChain(f"e{i}", T1 - 60 + i, "mlp", "full", "r0", 0.02, {},
                                    error=True) for i in range(60))
    cfg = load_alerting_config({
        "receivers": [{"name": "oncall", "url": recording_server.url}],
        "routes": [{"receiver": "oncall", "group_wait_s": 0, "group_interval_s": 1}],
        "slos": [AVAIL.model_dump()], "slo_interval_s": 0})
    svc = AlertingService(cfg, open_db(tmp_path / "w.db"), registry=CollectorRegistry(),
                          clock=lambda: T1, sli_source=StoreChainsSli(store))
    svc.tick(T1)
    assert svc.delivery.run_once(T1) == 1
    store.close()  # the source's reads now fail
    svc.tick(T1 + 10)
    assert svc.slo is not None and svc.slo.errors == 1
    assert [a.status.value for a in svc.slo.firing()] == ["firing", "firing"]
    assert svc.delivery.run_once(T1 + 10) == 0  # no resolved notification was made
    assert json.loads(recording_server.snapshot()[0].body)["status"] == "firing"


def _burning_service(tmp_path, url, now):
    cfg = load_alerting_config({
        "receivers": [{"name": "oncall", "url": url}],
        "routes": [{"receiver": "oncall", "group_by": ["alertname", "slo"], "group_wait_s": 0,
                    "group_interval_s": 1}],
        "slos": [AVAIL.model_dump()], "slo_interval_s": 0})
    store = Store(tmp_path / "w.db")
    return store, AlertingService(cfg, open_db(tmp_path / "w.db"), registry=CollectorRegistry(),
                                  clock=lambda: now[0], sli_source=StoreChainsSli(store))


def test_a_restart_neither_loses_nor_forgets_a_firing_slo_alert(tmp_path,
                                                                recording_server) -> None:
    """Page fires, engine restarts, burn is over by then: on-call still gets "resolved"."""
    now = [T1]
    store, svc = _burning_service(tmp_path, recording_server.url, now)
    store.write_chains(RequestChain(f"e{i}", T1 - 60 + i, "mlp", "full", "r0", 0.02, {},
                                    error=True) for i in range(60))
    svc.tick()
    assert svc.delivery.run_once() == 1
    store.close()
    rows = Store(tmp_path / "w.db", readonly=True).query(
        "SELECT alertname, status FROM alerts").to_dict("records")
    assert rows == [{"alertname": "SloBudgetBurn", "status": "firing"}] * 2  # page, ticket
    # a new engine, 7 hours on: the burn is over
    now[0] += 7 * 3600
    store, svc2 = _burning_service(tmp_path, recording_server.url, now)
    assert svc2.slo is not None and len(svc2.slo.firing()) == 2  # restored
    svc2.tick()  # announces the restored alerts again: the same key, already delivered
    assert svc2.delivery.run_once() == 0
    assert svc2.outbox.counts() == {"pending": 0, "delivered": 1, "dead": 0}
    now[0] += 1
    svc2.tick()  # evaluates: resolved
    assert svc2.delivery.run_once() == 1
    sent = recording_server.snapshot()
    assert [r.json()["status"] for r in sent] == ["firing", "resolved"]
    assert sent[0].headers["Idempotency-Key"] != sent[1].headers["Idempotency-Key"]
    assert svc2.slo.firing() == []
    store.close()


def test_slo_history_skips_and_counts_malformed_rows(tmp_path) -> None:
    from warden.alerting.slo_history import SloAlertHistory
    conn = open_db(tmp_path / "h.db")
    h = SloAlertHistory(conn, alertname="SloBudgetBurn")
    conn.execute("INSERT INTO alerts (ts, fingerprint, alertname, status, labels, annotations, "
                 "starts_at) VALUES (1, 'f1', 'SloBudgetBurn', 'firing', '{bad', '{}', 1), "
                 "(1, 'f2', 'SloBudgetBurn', 'firing', '{\"a\": \"b\"}', '{}', 1)")
    assert h.firing() == [] and h.rejected_rows == 2  # bad JSON; fingerprint not the labels'


def test_alerts_ddl_is_detections() -> None:
    from warden.alerting.slo_history import ALERTS_DDL
    from warden.detection import ALERTS_DDL as DETECTION_DDL
    assert ALERTS_DDL.split() == DETECTION_DDL.split()
