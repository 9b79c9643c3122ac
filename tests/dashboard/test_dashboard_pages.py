"""Every page under Streamlit's AppTest on a seeded store: the numbers shown are the store's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dashboard_helpers import frame, metrics, texts, vega
from dashboard_seed import DURATION_S, REPLICAS, T0, baselines_table, seed

from dashboard.charts import PANEL_POINTS
from dashboard.queries import bucket_seconds
from warden.records import Stage

PAGES = ("fleet.py", "latency.py", "traces.py", "gpus.py", "alerts.py", "chaos.py")


def _clean(at):  # no traceback, no "could not be shown" warning
    assert not at.exception, [e.value for e in at.exception]
    bad = [w for w in texts(at, "warning")
           if "could not be shown" in w or "store could not be read" in w]
    assert not bad, bad


def test_fleet_numbers_match_the_store(seeded, page):
    at = page("fleet.py", seeded.db)
    _clean(at)
    recent_from = seeded.end - 59  # the last minute of samples: ts end-59 .. end
    rate: dict[str, float] = {}
    fail: dict[str, float] = {}
    for s in seeded.samples:
        if s.ts < recent_from:
            continue
        lab = dict(s.labels)
        if s.series == "triton_request_success_per_second":
            rate[lab["replica"]] = rate.get(lab["replica"], 0.0) + s.value / 60
        elif s.series == "triton_request_failure_per_second":
            fail[lab["replica"]] = fail.get(lab["replica"], 0.0) + s.value / 60
    m = metrics(at)
    assert m["Replicas"] == "3"
    assert m["Healthy"] == "2"  # r2 reported triton_up 0 at the end
    total = sum(rate.values()) + sum(fail.values())
    assert m["Requests/s (last min)"] == f"{total:.1f}"
    assert m["Error rate (last min)"] == f"{sum(fail.values()) / total:.2%}"

    table = frame(at, "replica", "health", "request_rate_per_s").set_index("replica")
    assert list(table.index) == list(REPLICAS)
    assert list(table["health"]) == ["up", "up", "DOWN"]
    for r in REPLICAS:
        assert table.loc[r, "request_rate_per_s"] == pytest.approx(rate[r] + fail[r])
        lats = [c.latency_s for c in seeded.chains if c.replica == r]
        assert table.loc[r, "traced_requests"] == len(lats)
        for q in (50, 95, 99):
            assert table.loc[r, f"p{q}_ms"] == pytest.approx(np.quantile(lats, q / 100) * 1000)

    per = frame(at, "model", "variant", "replica", "p99_ms")
    row = per[(per["model"] == "mlp") & (per["replica"] == "r1")].iloc[0]
    chains = [c for c in seeded.chains if c.model == "mlp" and c.replica == "r1"]
    assert row["requests"] == len(chains)
    assert row["errors"] == sum(c.error for c in chains)
    assert row["p50_ms"] == pytest.approx(np.median([c.latency_s for c in chains]) * 1000)
    assert any("No lab running" in t for t in texts(at, "info"))  # no lab.json: a message
    spec, data = vega(at, 0)
    assert set(data["series"]) == set(REPLICAS)
    assert data[data["series"] == "r2"]["v"].iloc[-1] == 0.0  # r2 died: its rate falls to 0


def test_fleet_shows_router_weights_and_variant_split(seeded, page, tmp_path):
    from prometheus_client import CollectorRegistry

    from serving.router import RouterConfig, run_router_in_thread
    from serving.router_client import RouterAdmin

    cfg = RouterConfig(replicas=[{"name": "r0", "url": "http://127.0.0.1:9"},
                                 {"name": "r1", "url": "http://127.0.0.1:9"}],
                       lite_models={"mlp"}, health_interval_s=0)
    router = run_router_in_thread(cfg, CollectorRegistry())
    try:
        admin = RouterAdmin(router.url)
        admin.set_weights({"r0": 3.0, "r1": 0.5})
        admin.set_variant_split("mlp", 0.25)
        admin.close()
        (tmp_path / "lab.json").write_text(json.dumps({"router_url": router.url}))
        at = page("fleet.py", seeded.db, tmp_path)
    finally:
        router.stop()
    _clean(at)
    weights = frame(at, "name", "weight").set_index("name")["weight"].to_dict()
    assert weights == {"r0": 3.0, "r1": 0.5}
    split = frame(at, "model", "lite_fraction")
    assert split.to_dict("records") == [{"model": "mlp", "lite_fraction": 0.25}]


def test_latency_quantiles_band_and_anomalies(seeded, page):
    at = page("latency.py", seeded.db)
    _clean(at)
    assert at.selectbox(key="latency_model").value == "mlp"  # models sorted
    lats = [c.latency_s for c in seeded.chains if c.model == "mlp"]
    m = metrics(at)
    assert m["Requests"] == str(len(lats))
    assert m["P99 (ms)"] == f"{np.quantile(lats, 0.99) * 1000:.2f}"
    an = frame(at, "detector", "series", "score")
    assert sorted(an["detector"]) == ["p99_drift", "variance"]
    assert sorted(an["score"]) == pytest.approx(sorted(a.score for a in seeded.anomalies))
    spec, both = vega(at, 0)  # quantiles (chart 0) and jitter (chart 1) in one chart
    assert len(at.get("vega_lite_chart")) == 1 and len(spec["vconcat"]) == 2
    data = both[both["chart"] == 0]
    assert set(data["series"]) == {"P50", "P95", "P99", "baseline", "anomaly"}
    assert set(both[both["chart"] == 1]["series"]) == set(REPLICAS)  # jitter per replica
    marks = data[data["layer"] == "anomaly"]
    assert sorted(marks["t"]) == pytest.approx(sorted(a.ts * 1000 for a in seeded.anomalies))
    # P99 per window (30 s over the default hour) is the store's chains' P99, in ms
    step = bucket_seconds(seeded.end + 1e-3 - 3600, seeded.end + 1e-3, 120, 10.0)
    p99 = data[data["series"] == "P99"].set_index("t")["v"]
    by_win: dict[float, list[float]] = {}
    for c in seeded.chains:
        if c.model == "mlp":
            by_win.setdefault(c.ts // step * step * 1000, []).append(c.latency_s)
    assert sorted(p99.index) == pytest.approx(sorted(by_win))
    for t, v in list(by_win.items())[::5]:
        assert p99[t] == pytest.approx(np.quantile(v, 0.99) * 1000)
    assert any("computed here from history" in c for c in texts(at, "caption"))
    # a replica filter narrows the numbers to that replica's chains
    at.selectbox(key="latency_replica").select("r0").run()
    r0 = [c.latency_s for c in seeded.chains if c.model == "mlp" and c.replica == "r0"]
    assert metrics(at)["Requests"] == str(len(r0))


def test_latency_uses_stored_baselines_when_present(tmp_path, page):
    s = seed(tmp_path / "warden.db", tmp_path)
    rows = [("request_latency_seconds", json.dumps({"model": "mlp"}), T0 + i, 0.01, 0.02, 0.04)
            for i in range(0, DURATION_S, 30)]
    baselines_table(s.db, rows)
    at = page("latency.py", s.db)
    _clean(at)
    assert any("stored baseline of `request_latency_seconds`" in c for c in texts(at, "caption"))
    spec, data = vega(at, 0)
    band = data[(data["chart"] == 0) & (data["layer"] == "band")]
    assert list(band["lo"]) == pytest.approx([10.0] * len(rows))  # lower bound, in ms
    assert list(band["hi"]) == pytest.approx([40.0] * len(rows))


def test_traces_slowest_chain_waterfall_and_gpu(seeded, page):
    at = page("traces.py", seeded.db)
    _clean(at)
    ranked = sorted(seeded.chains, key=lambda c: -c.latency_s)
    table = frame(at, "trace_id", "latency_ms")
    assert len(table) == 20
    assert list(table["latency_ms"]) == pytest.approx([c.latency_s * 1000 for c in ranked[:20]])
    top = ranked[0]
    assert table["trace_id"].iloc[0] == top.trace_id == seeded.span_trace
    assert metrics(at)["Latency (ms)"] == f"{top.latency_s * 1000:.2f}"
    assert any("raw spans kept" in c for c in texts(at, "caption"))
    _, bars = vega(at, 0)
    assert bars["label"].iloc[0].startswith("warden.client")
    assert bars["ms"].iloc[0] == pytest.approx(top.latency_s * 1000, rel=1e-6)
    # a chain without raw spans: stage waterfall from durations, and its GPU reading
    other = next(c for c in ranked[1:20] if c.gpu is not None)
    at.selectbox(key="traces_pick").select(other.trace_id).run()
    _clean(at)
    assert any("estimated from the nesting" in c for c in texts(at, "caption"))
    stages = frame(at, "stage", "duration_ms").set_index("stage")["duration_ms"]
    for k, v in other.stages.items():
        assert stages[k] == pytest.approx(v * 1000)
    assert list(stages.index) == [s.value for s in Stage]
    gpu = frame(at, "field", "value").set_index("field")["value"]
    assert float(gpu["temperature_c"]) == other.gpu.temperature_c
    assert float(gpu["sm_clock_mhz"]) == other.gpu.sm_clock_mhz


def test_gpus_latest_readings_simulated_marked_and_throttling(seeded, page):
    at = page("gpus.py", seeded.db)
    _clean(at)
    latest = frame(at, "device", "kind", "temperature_c").set_index("device")
    last = {g.device: g for g in seeded.gpu if g.ts == seeded.end}
    assert set(latest.index) == set(last)
    for d, g in last.items():
        assert latest.loc[d, "kind"] == ("SIMULATED" if g.simulated else "hardware")
        assert latest.loc[d, "temperature_c"] == g.temperature_c
        assert latest.loc[d, "sm_clock_mhz"] == g.sm_clock_mhz
    assert any("SIMULATED" in w for w in texts(at, "warning"))
    thr = frame(at, "device", "reason", "readings")
    want = sum(1 for g in seeded.gpu if g.throttle_reasons)
    assert thr.to_dict("records")[0]["readings"] == want
    assert list(thr["reason"]) == ["sw_thermal_slowdown"]
    assert len(at.get("vega_lite_chart")) == 1  # eight panels in one faceted chart
    spec, panels = vega(at, 0)
    assert list(dict.fromkeys(panels["panel"])) == [
        "Temperature (°C)", "SM clock (MHz)", "Power (W)", "Utilisation (fraction)",
        "Memory used (GiB)", "Allocator: reserved (GiB)", "Allocator: allocated (GiB)",
        "Share of readings throttled (fraction)"]
    mem = panels[panels["panel"] == "Memory used (GiB)"]
    assert set(mem["v"]) == {4.0}  # 4 GiB in bytes, shown in GiB
    data = panels[panels["panel"] == "Temperature (°C)"]
    assert set(data["series"]) == {"gpu0 (simulated)", "gpu1", "gpu2 (simulated)"}
    # the default range (1 h) over 1 s readings: exact means per aligned bucket
    step = bucket_seconds(0, 3600, PANEL_POINTS)
    b0 = T0 // step * step
    g0 = data[data["series"] == "gpu0 (simulated)"]
    first = [g.temperature_c for g in seeded.gpu if g.device == "gpu0" and g.ts < b0 + step]
    assert g0["v"].iloc[0] == pytest.approx(np.mean(first))
    assert g0["t"].iloc[0] == pytest.approx(b0 * 1000)  # epoch ms on a UTC time axis
    assert len(g0) == len({g.ts // step for g in seeded.gpu if g.device == "gpu0"})


def test_alerts_timeline_silences_and_outbox(seeded, page):
    at = page("alerts.py", seeded.db)
    _clean(at)
    m = metrics(at)
    assert (m["Alerts"], m["Firing"], m["Resolved"]) == ("2", "1", "1")
    assert (m["Outbox pending"], m["Outbox delivered"], m["Outbox dead"]) == ("0", "1", "1")
    alerts = frame(at, "alertname", "status", "starts").set_index("alertname")
    assert alerts.loc["ReplicaDown", "status"] == "resolved"
    assert alerts.loc["LatencyP99High", "status"] == "firing"
    sil = frame(at, "matchers", "created_by", "comment")
    assert sil.to_dict("records")[0]["matchers"] == 'alertname="ReplicaDown"'
    assert sil["comment"].iloc[0] == "r2 being replaced"
    box = frame(at, "state", "attempts", "last_status")
    assert sorted(zip(box["group_key"], box["state"])) == [("LatencyP99High", "delivered"),
                                                           ("ReplicaDown", "dead")]


def test_alerts_audit_matches_remediations_own_audit_table(seeded, page):
    """The store's audit was written by remediation.audit.AuditLog; the page shows its rows."""
    at = page("alerts.py", seeded.db)
    _clean(at)
    rows = seeded.audit  # as remediation's reader returns them, oldest first
    m = metrics(at)
    keys = {r.idempotency_key for r in rows if r.phase != "verify"}
    after = {r.idempotency_key: r.status for r in rows if r.phase == "after"}
    assert m["Actions"] == str(len(keys)) == "6"
    assert m["Applied"] == str(sum(s == "applied" for s in after.values())) == "2"
    assert m["Rolled back"] == "1" and m["Failed"] == "1"
    assert m["Refused"] == str(sum(r.phase == "refused" for r in rows)) == "1"
    assert m["Verified"] == str(sum(r.phase == "verify" and r.status == "verified"
                                    for r in rows)) == "1"
    assert any("no outcome recorded" in w for w in texts(at, "warning"))  # e5: before only

    # every audit row, newest first, with its phase, status, execution and evidence
    table = frame(at, "phase", "status", "execution", "evidence")
    newest = sorted(rows, key=lambda r: (-r.ts, -r.id))
    assert len(table) == len(rows)
    assert list(table["phase"]) == [r.phase for r in newest]
    assert list(table["status"]) == [r.status for r in newest]
    assert list(table["execution"]) == [r.execution for r in newest]
    assert list(table["result"]) == [r.result for r in newest]
    assert [json.loads(e) for e in table["evidence"]] == [r.evidence for r in newest]
    assert list(table["change"].iloc[-2:]) == ["scale synth to 3"] * 2  # e1 before/after

    # one row per action: its outcome from the after row, refused, or still applying
    acts = frame(at, "outcome", "verified", "change").set_index("execution")
    assert acts.loc["e1", "outcome"] == "applied" and acts.loc["e1", "verified"] == "verified"
    assert acts.loc["e3", "outcome"] == "refused"
    assert acts.loc["e3", "result"] == next(r.result for r in rows if r.phase == "refused")
    assert acts.loc["e4", "outcome"] == "failed"
    assert acts.loc["e5", "outcome"] == "applying"
    e2 = acts.loc[["e2"]].set_index("step")
    assert e2.loc["variant_split", "outcome"] == "applied"
    assert e2.loc["variant_split", "verified"] == "failed"
    assert e2.loc["rollback", "outcome"] == "rolled_back"
    assert e2.loc["variant_split", "change"] == "mlp lite 30%"

    # the evidence panel shows the newest row's evidence and outcome
    assert json.loads(at.json[0].value) == newest[0].evidence
    pick = next(i for i, r in enumerate(newest) if r.phase == "before" and r.execution == "e1")
    at.selectbox(key="alerts_action").select(pick).run()
    _clean(at)
    assert json.loads(at.json[0].value) == rows[0].evidence  # p99 and the fleet state
    assert json.loads(at.json[1].value)["change"]["args"] == {"replicas": 3}


def test_chaos_journals_table_and_timeline(seeded, page):
    at = page("chaos.py", seeded.db)
    assert not at.exception
    m = metrics(at)
    assert m["Experiments"] == "2" and m["Passed"] == "1"
    assert m["SLO violation (s, total)"] == f"{sum(j['slo_violation_s'] for j in seeded.journals):.1f}"
    exps = frame(at, "title", "verdict", "time_to_detect_s")
    assert list(exps["title"]) == ["Kill r2", "Thermal throttle on gpu0"]  # by start time
    assert any("broken.json" in w for w in texts(at, "warning"))  # malformed file: named
    at.selectbox(key="chaos_journal").select("exp0.json").run()
    ev = frame(at, "kind", "message")
    assert list(ev["kind"]) == [e["kind"] for e in seeded.journals[0]["timeline"]]


def test_app_navigates_every_page(seeded, page):
    at = page("app.py", seeded.db)
    _clean(at)
    assert metrics(at)["Replicas"] == "3"  # Fleet is the default page
    for p in PAGES[1:]:
        at.switch_page(f"views/{p}").run()
        _clean(at)
        assert at.title[0].value  # each page titled


def test_auto_refresh_toggle_is_off_by_default_and_can_be_turned_on(seeded, page):
    at = page("fleet.py", seeded.db)
    assert at.toggle(key="warden_refresh").value is False
    at.toggle(key="warden_refresh").set_value(True).run()
    _clean(at)
    assert at.select_slider(key="warden_refresh_s").disabled is False
    assert metrics(at)["Replicas"] == "3"


def test_range_query_parameter_sets_the_window(seeded, monkeypatch):
    import pandas as pd
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WARDEN_DB", str(seeded.db))
    views = Path(__file__).resolve().parents[2] / "dashboard" / "views"
    for param, label, span in (("15m", "Last 15 min", 900), ("24h", "Last 24 h", 86400)):
        at = AppTest.from_file(str(views / "latency.py"), default_timeout=60)
        at.query_params["range"] = param
        at.run()
        _clean(at)
        assert at.selectbox(key="warden_range").value == label
        start = pd.to_datetime(seeded.end + 1e-3 - span, unit="s", utc=True)
        assert any(f"Window: {start:%Y-%m-%d %H:%M:%S}" in c for c in texts(at, "caption"))
