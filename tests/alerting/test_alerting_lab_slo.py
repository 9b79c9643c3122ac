"""On the real lab: errors injected on one replica burn the SLO, counted from the store's chains.

The replica's own fault (``POST /faults {"error_rate": 0.5}``) makes its model code fail; the
trace receiver writes the failed requests' chains; the lab's AlertingService evaluates the SLO
from those chains and a ``SloBudgetBurn`` page reaches a real webhook on loopback.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
import urllib.request
from pathlib import Path

import pytest

from warden.alerting.sli_chains import StoreChainsSli
from warden.alerting.slo import SloSpec
from warden.config import load_config
from warden.lab import Lab
from warden.store import Store

pytestmark = pytest.mark.slow

SLO = {"name": "synth-avail", "model": "synth", "kind": "availability", "objective": 0.999}


def _faults(url: str, body: dict | None) -> None:
    req = urllib.request.Request(f"{url}/faults", method="POST" if body else "DELETE",
                                 data=json.dumps(body).encode() if body else None)
    urllib.request.urlopen(req, timeout=5).read()


def _wait(pred, timeout_s: float, poll_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(poll_s)
    return None


@pytest.mark.timeout(90)
def test_error_fault_burns_the_slo_from_chains_and_pages(tmp_path: Path,
                                                         recording_server) -> None:
    config = load_config(home=tmp_path / "lab", lab={
        "replicas": 2, "router_port": 0, "router_policy": "round_robin",
        "traffic": {"kind": "constant", "rate": 40}, "traffic_models": {"synth": 1}},
        fleet={"models": ["synth"]},
        remediation={"enabled": False},
        alerting={"receivers": [{"name": "oncall", "url": recording_server.url}],
                  "routes": [{"receiver": "oncall", "group_by": ["alertname", "slo"],
                              "group_wait_s": 0, "group_interval_s": 2}],
                  "slos": [SLO], "slo_interval_s": 1})
    t_start = time.monotonic()
    with Lab(config) as lab:
        t_up = time.monotonic()
        store = Store(config.db_path, readonly=True)
        src = StoreChainsSli(store)
        slo = SloSpec.model_validate(SLO)
        svc = lab.telemetry.alerting
        assert svc is not None and svc.slo is not None
        # chains flow in before the fault
        assert _wait(lambda: src.counts(slo, 0, time.time())[1] >= 20, 30), "no chains"
        t_chains = time.monotonic()
        victim = lab.fleet.get("r1")
        t0 = time.time()
        _faults(victim.control_url, {"error_rate": 0.5})
        try:
            def page():
                for r in recording_server.snapshot():
                    body = r.json()
                    for a in body["alerts"]:
                        if (a["labels"].get("alertname") == "SloBudgetBurn"
                                and a["labels"].get("severity") == "page"
                                and a["status"] == "firing"):
                            return body, a
                return None
            got = _wait(page, 30)
        finally:
            _faults(victim.control_url, None)
        t_page = time.time()
        errors = store.query("SELECT replica, COUNT(*) AS n FROM chains WHERE error = 1 "
                             "AND model = 'synth' GROUP BY replica").to_dict("records")
        assert got is not None, (errors, svc.slo.errors, svc.slo.evaluations)
        body, alert = got
        print(f"lab up {t_up - t_start:.1f} s, chains {t_chains - t_up:.1f} s, fault to SLO "
              f"page on the webhook {t_page - t0:.1f} s; errored chains {errors}")
        assert t_page - t0 < 30
        # the errors the evaluator saw are the victim's, in the store's chains
        by_replica = {e["replica"]: e["n"] for e in errors}
        assert by_replica.get("r1", 0) > 0 and by_replica.get("r0", 0) <= by_replica["r1"] / 10
        # it started firing after the fault, not from start-up noise
        assert datetime.fromisoformat(alert["startsAt"]).timestamp() >= t0
        ann = alert["annotations"]
        # either page tier may speak first: 14.4x over 1 h and 5 m, or 6x over 6 h and 30 m
        factor = {"1h/5m": 14.4, "6h/30m": 6.0}[ann["windows"]]
        assert float(ann["burn_rate_long"]) >= factor <= float(ann["burn_rate_short"])
        assert alert["labels"]["slo"] == "synth-avail"
        # the evaluator counted chains: errored ones, from before it fired, are in the store
        starts = datetime.fromisoformat(alert["startsAt"]).timestamp()
        good, total = src.counts(slo, starts - 3600, starts)
        assert total > 0 and good < total
        assert body["groupLabels"] == {"alertname": "SloBudgetBurn", "slo": "synth-avail"}
        assert svc.slo.errors == 0
        store.close()
    print(f"lab test with teardown: {time.monotonic() - t_start:.0f} s")
