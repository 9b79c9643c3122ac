"""The dashboard's pure parts: queries against a real store, sources, charts, settings, CLI."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import pytest

from dashboard import charts, downsample, queries, sources
from dashboard.cli import register
from dashboard.launch import streamlit_command
from dashboard.settings import resolve_settings
from warden.records import GpuReading, Sample, freeze_labels
from warden.store import Store


def _gpu(ts: float, device: str, temp: float) -> GpuReading:
    return GpuReading(ts, device, True, temp, 100.0, 300.0, 1800.0, 1800.0, 5000.0, 0.5, 1e9,
                      16e9)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "w.db")
    yield s
    s.close()


def test_series_summary_mean_and_last_per_series(store):
    a, b = freeze_labels({"replica": "r0"}), freeze_labels({"replica": "r1"})
    store.write_samples([Sample("x", a, 10.0 + i, float(i)) for i in range(10)]
                        + [Sample("x", b, 10.0 + i, 100.0 - i) for i in range(10)])
    df = queries.series_summary(store, "x", 15.0, 100.0).set_index("replica")
    assert df.loc["r0", "mean"] == pytest.approx(np.mean(range(5, 10)))
    assert df.loc["r0", "last"] == 9.0 and df.loc["r1", "last"] == 91.0
    assert df.loc["r1", "n"] == 5
    assert queries.series_summary(store, "unknown", 0, 1e12).empty


def test_series_last_is_the_newest_sample_in_range(store):
    a = freeze_labels({"replica": "r0"})
    store.write_samples([Sample("u", a, 10.0 + i, float(i)) for i in range(10)])
    df = queries.series_last(store, "u", 0.0, 15.0)
    assert df[["replica", "last", "last_ts"]].to_dict("records") == [
        {"replica": "r0", "last": 4.0, "last_ts": 14.0}]
    assert queries.series_last(store, "u", 100.0, 200.0).empty


def test_series_downsampled_exact_averages_per_bucket(store):
    lab = freeze_labels({"replica": "r0"})
    store.write_samples(Sample("y", lab, float(t), float(t % 10)) for t in range(0, 3600))
    df = downsample.series(store, "y", 0.0, 3600.0, points=60)
    assert df.attrs["method"] == "exact" and downsample.method_note(df) == ""
    assert len(df) == 60  # one point per minute instead of 3600
    assert df["value"].iloc[0] == pytest.approx(4.5)
    assert (df["vmin"] == 0).all() and (df["vmax"] == 9).all()
    assert downsample.series(store, "y", 0, 3600, labels={"replica": "r9"}).empty


def test_downsampled_probes_past_the_row_limit(store, monkeypatch):
    lab = freeze_labels({"replica": "r0"})
    store.write_samples(Sample("y", lab, float(t), float(t // 600)) for t in range(0, 3600))
    store.write_gpu_readings(_gpu(float(t), d, 50.0 + t // 600) for t in range(0, 3600)
                             for d in ("g0", "g1"))
    monkeypatch.setattr(downsample, "EXACT_MAX_ROWS", 1000)
    df = downsample.series(store, "y", 0.0, 3600.0, points=6)
    assert df.attrs["method"] == "probes" and "4 evenly spaced" in downsample.method_note(df)
    assert list(df["ts"]) == [0.0, 600.0, 1200.0, 1800.0, 2400.0, 3000.0]
    assert list(df["value"]) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # a step signal, kept exactly
    g = downsample.gpu(store, 0.0, 3600.0, points=6)
    assert g.attrs["method"] == "probes"
    assert sorted(set(g["device"])) == ["g0", "g1"]
    assert list(g[g["device"] == "g1"]["temperature_c"]) == [50.0, 51, 52, 53, 54, 55]
    exact = downsample.gpu(store, 0.0, 3600.0, points=6, devices=["g0"])
    assert exact.attrs["method"] == "probes" and set(exact["device"]) == {"g0"}


def test_bucket_seconds_round_and_bounded():
    assert queries.bucket_seconds(0, 86400, 300) == 300.0
    assert queries.bucket_seconds(0, 60, 300) == 1.0
    assert queries.bucket_seconds(0, 3600, 120, minimum=10) == 30.0


def test_latency_windows_quantiles_and_jitter():
    lat = pd.DataFrame({"ts": [0.0, 1, 2, 3, 60, 61], "latency_s": [1.0, 2, 3, 4, 5, 5],
                        "replica": ["a"] * 6})
    w = queries.latency_windows(lat, 60.0)
    assert list(w["count"]) == [4, 2]
    assert w["p50"].iloc[0] == pytest.approx(2.5)
    assert w["std"].iloc[0] == pytest.approx(np.std([1, 2, 3, 4]))
    assert w["std"].iloc[1] == 0.0


def test_rolling_band_learns_only_from_the_past():
    v = pd.Series([1.0] * 40 + [10.0])
    band = sources.rolling_band(v, window=30)
    assert band["upper"].iloc[-1] == pytest.approx(1.05)  # the spike is not in its own band;
    # steady history: MAD is 0 and the floor (5% of the median) keeps the band open
    assert v.iloc[-1] > band["upper"].iloc[-1]
    noisy = pd.Series(np.r_[np.tile([1.0, 3.0], 20)])
    b = sources.rolling_band(noisy, window=30)
    assert b["lower"].iloc[-1] >= 0 and b["upper"].iloc[-1] > b["median"].iloc[-1]
    assert np.isnan(band["median"].iloc[0])  # no history yet: no band


def test_stage_layout_nests_inner_stages_inside_outer():
    st = {"client": 0.1, "router": 0.09, "triton_http": 0.08, "queue": 0.02,
          "compute_input": 0.005, "compute_infer": 0.04, "compute_output": 0.005,
          "model_code": 0.03}
    lay = charts.stage_layout(st).set_index("stage")
    end = lay["start_s"] + lay["duration_s"]
    for inner, outer in (("router", "client"), ("triton_http", "router"),
                         ("queue", "triton_http"), ("compute_output", "triton_http"),
                         ("model_code", "compute_infer")):
        assert lay.loc[inner, "start_s"] >= lay.loc[outer, "start_s"] - 1e-12
        assert end[inner] <= end[outer] + 1e-12
    assert lay.loc["compute_input", "start_s"] == pytest.approx(end["queue"])
    only = charts.stage_layout({"queue": 0.01, "compute_infer": float("nan")})
    assert list(only["stage"]) == ["queue"]


def test_journals_tolerate_bad_files_and_fields(tmp_path):
    d = tmp_path / "chaos"
    with pytest.raises(sources.SourceMissing, match="does not exist"):
        sources.load_journals(d)
    d.mkdir()
    (d / "a.json").write_text(json.dumps({"title": "t", "verdict": "passed", "started_at": 5,
                                          "ended_at": "x", "slo_violation_s": "NaN",
                                          "timeline": [{"ts": 6, "kind": "inject"},
                                                       {"ts": "bad"}, "junk"]}))
    (d / "b.json").write_text("[1, 2]")
    (d / "c.json").write_text("{")
    j = sources.load_journals(d)
    assert list(j.experiments["title"]) == ["t"]
    assert np.isnan(j.experiments["ended_at"].iloc[0])
    assert list(j.events["kind"]) == ["inject"]
    assert sorted(s.split(":")[0] for s in j.skipped) == ["b.json", "c.json"]


def test_router_state_missing_lab_and_dead_router(tmp_path):
    with pytest.raises(sources.SourceMissing, match="No lab running"):
        sources.router_state(tmp_path / "lab.json")
    (tmp_path / "lab.json").write_text("{bad")
    with pytest.raises(sources.SourceMissing, match="Cannot read"):
        sources.router_state(tmp_path / "lab.json")
    from serving.fleet import free_port

    (tmp_path / "lab.json").write_text(json.dumps(
        {"router_url": f"http://127.0.0.1:{free_port()}"}))
    t = time.monotonic()
    with pytest.raises(sources.SourceMissing, match="did not answer"):
        sources.router_state(tmp_path / "lab.json")
    assert time.monotonic() - t < 3


def test_audit_reads_what_exists_and_decodes_json(store):
    with pytest.raises(sources.SourceMissing, match="action_audit"):
        sources.audit_rows(store)
    store.ensure_table("action_audit", "CREATE TABLE IF NOT EXISTS action_audit (ts REAL, "
                       "runbook TEXT, step TEXT, status TEXT, evidence TEXT)")
    store.insert_rows("action_audit", ("ts", "runbook", "step", "status", "evidence"),
                      [(1.0, "rb", "s", "applied", '{"a": 1}'), (2.0, "rb", "s", "failed", "x")])
    df = sources.audit_rows(store)
    assert list(df["status"]) == ["failed", "applied"]
    assert df["evidence"].iloc[1] == {"a": 1} and df["evidence"].iloc[0] == "x"
    assert df["params"].isna().all()  # a column the owner did not create: shown empty


def test_alert_timeline_skips_bad_bodies(store):
    from warden.alerting.outbox import Outbox
    from warden.db import open_db

    conn = open_db(store.path)
    box = Outbox(conn)
    box.enqueue(key="a", target="t", group_key="g", status="firing", body="{oops", now=1.0)
    box.enqueue(key="b", target="t", group_key="g", status="firing",
                body=json.dumps({"alerts": [{"labels": {"alertname": "A"}, "status": "firing",
                                             "startsAt": "2023-11-14T22:13:20Z"}, 5]}), now=2.0)
    conn.close()
    tl = sources.alert_timeline(store, now=1_700_000_100.0)
    assert list(tl["alertname"]) == ["A"]
    assert tl["starts_at"].iloc[0] == 1_700_000_000.0
    assert tl["ends_at"].iloc[0] == 1_700_000_100.0  # still firing: runs to now


def test_settings_precedence(tmp_path):
    env = {"WARDEN_DB": str(tmp_path / "env.db")}
    s = resolve_settings(["--db", str(tmp_path / "arg.db")], env)
    assert s.db_path == tmp_path / "arg.db" and s.home == tmp_path
    assert resolve_settings(["-q", "tests"], env).db_path == tmp_path / "env.db"
    s = resolve_settings([], {"WARDEN_DB": "/x/w.db", "WARDEN_DASHBOARD_HOME": "/h"})
    assert str(s.chaos_dir) == "/h/chaos" and str(s.lab_state_path) == "/h/lab.json"
    s = resolve_settings([], {"WARDEN_HOME": str(tmp_path / "home")})
    assert s.db_path == tmp_path / "home" / "warden.db"


def test_cli_registers_and_builds_headless_loopback_command(tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dashboard", "--db", "x.db", "--port", "9999"])
    assert args.port == 9999 and args.address == "127.0.0.1" and callable(args.func)
    cmd = streamlit_command(tmp_path / "w.db", port=9999)
    joined = " ".join(cmd)
    for flag in ("--server.headless true", "--server.address 127.0.0.1", "--server.port 9999",
                 "--browser.gatherUsageStats false"):
        assert flag in joined
    assert cmd[-2:] == ["--db", str(tmp_path / "w.db")]


def test_line_spec_bounds_points_per_series():
    n = charts.MAX_POINTS_PER_SERIES * 3 + 7
    df = pd.DataFrame({"ts": list(range(n)) * 2, "v": [1.0] * (2 * n),
                       "r": ["a"] * n + ["b"] * n})
    data, spec = charts.line_spec(df, "v", "r", "t")
    per = data.groupby("series").size()
    assert set(per.index) == {"a", "b"} and per.max() <= charts.MAX_POINTS_PER_SERIES
    assert per.min() > charts.MAX_POINTS_PER_SERIES // 2  # thinned evenly, not truncated
    assert data["t"].max() > (n - 10) * 1000  # still reaches the end of the range


def test_band_spec_layers_and_empty_inputs():
    empty = pd.DataFrame(columns=["window_start", "p50", "p95", "p99"])
    data, spec = charts.band_spec(empty, None, pd.DataFrame(), "t")
    assert data.empty and len(spec["layer"]) == 4  # an empty chart, not an error
    win = pd.DataFrame({"window_start": [0.0, 30.0], "p50": [0.01, 0.02], "p95": [0.02, 0.03],
                        "p99": [0.03, 0.05]})
    an = pd.DataFrame({"ts": [31.0], "detector": ["d"], "series": ["s"], "score": [0.5]})
    data, _ = charts.band_spec(win, None, an, "t")
    assert data[data["series"] == "P99"]["v"].tolist() == pytest.approx([30.0, 50.0])
    mark = data[data["layer"] == "anomaly"].iloc[0]
    assert mark["t"] == 31_000 and mark["v"] == pytest.approx(52.5)  # above the top P99
    assert "d on s" in mark["text"]


def test_chain_latencies_samples_every_replica_past_the_row_limit(store):
    from warden.records import RequestChain

    reps = [f"r{i}" for i in range(10)]
    store.write_chains(RequestChain(f"{i:08x}{k:02x}", 100.0 + i, "m" if k % 2 else "n", "full",
                                    r, 0.01 * (k + 1), {}, span_count=1)
                       for i in range(1000) for k, r in enumerate(reps))
    full = queries.chain_latencies(store, 100.0, 1100.0)
    assert full.attrs == {"total": 10_000, "stride": 1} and len(full) == 10_000
    df = queries.chain_latencies(store, 300.0, 900.0, max_rows=1000)
    assert df.attrs["total"] == 6000 and df.attrs["stride"] == 6
    assert 900 <= len(df) <= 1100
    assert df["ts"].between(300.0, 900.0, inclusive="left").all()
    assert set(df["replica"]) == set(reps)  # a stride of 6 over 10 interleaved replicas
    assert df.groupby("replica").size().min() >= 60  # ... does not alias onto a few of them
    assert list(df["ts"]) == sorted(df["ts"])
    again = queries.chain_latencies(store, 300.0, 900.0, max_rows=1000)
    assert again.equals(df)  # the same sample on every refresh
    only = queries.chain_latencies(store, 300.0, 900.0, model="m", max_rows=1000)
    assert set(only["model"]) == {"m"} and 900 <= len(only) <= 1100
    assert "about 1 in 6 of 6,000" in queries.sample_note(df)


def test_cached_reads_are_keyed_on_store_and_window(tmp_path):
    from dashboard.cache import cached
    from warden.records import RequestChain

    def chain(i: int, model: str) -> RequestChain:
        return RequestChain(f"{model}{i:08x}", float(i), model, "full", "r0", 0.01, {},
                            span_count=1)

    store = Store(tmp_path / "a.db")
    store.write_chains([chain(1, "m1")])
    assert cached(store, queries.chain_models, 0.0, 10.0) == ["m1"]
    store.write_chains([chain(5, "m2")])
    # same store, same window: the answer of a moment ago (the TTL bounds it)
    assert cached(store, queries.chain_models, 0.0, 10.0) == ["m1"]
    # new data moves the window's end, which is part of the key: read afresh
    assert cached(store, queries.chain_models, 0.0, 10.5) == ["m1", "m2"]
    other = Store(tmp_path / "b.db")  # another store at the same window: its own entry
    assert cached(other, queries.chain_models, 0.0, 10.0) == []
    df = cached(store, queries.chain_latencies, 0.0, 10.5, model="m2")
    df["latency_s"] = 9.0  # callers get a copy
    assert cached(store, queries.chain_latencies, 0.0, 10.5, model="m2")["latency_s"].tolist() \
        == [0.01]
    assert cached(store, Store.slowest_chains, None, 0.0, 10.5, limit=1)["model"].iloc[0] in \
        {"m1", "m2"}
    store.close()
    other.close()


def test_gpu_page_draws_throttling_then_hottest_devices_first():
    import pandas as pd

    from dashboard.queries import most_interesting_devices

    latest = pd.DataFrame({"device": ["g0", "g1", "g2", "g3", "g4", "g5"],
                           "temperature_c": [60.0, 85.0, 55.0, 70.0, 90.0, 65.0],
                           "throttle_reasons": ["", "", "sw_thermal_slowdown", "", "", ""]})
    assert most_interesting_devices(latest, 4) == ["g2", "g4", "g1", "g3"]
    assert most_interesting_devices(latest.head(2), 4) == ["g1", "g0"]


def _time_axes(spec: object) -> list[dict]:
    """Every temporal x encoding anywhere in a (layered, faceted, concatenated) spec."""
    found: list[dict] = []
    if isinstance(spec, dict):
        x = spec.get("x")
        if isinstance(x, dict) and x.get("type") == "temporal":
            found.append(x)
        for value in spec.values():
            found += _time_axes(value)
    elif isinstance(spec, list):
        for value in spec:
            found += _time_axes(value)
    return found


def test_time_axes_label_ticks_on_a_24_hour_utc_clock():
    """Vega's default labels minute ticks "%I:%M" (10:15 for 22:15); every chart overrides it."""
    df = pd.DataFrame({"ts": [1_700_000_000.0, 1_700_000_060.0], "v": [1.0, 2.0],
                       "r": ["a", "a"]})
    specs = [charts.line_spec(df, "v", "r", "t")[1],
             charts.panels_spec(df, [("v", "V", "u", 1.0)], "r")[1],
             charts.band_spec(pd.DataFrame({"window_start": [0.0], "p50": [0.1], "p95": [0.2],
                                            "p99": [0.3]}), None, pd.DataFrame(), "t")[1]]
    axes = [x for spec in specs for x in _time_axes(spec)]
    assert len(axes) >= 3
    for x in axes:
        assert x["scale"] == {"type": "utc"}
        assert "utcFormat(datum.value, '%H:%M:%S')" in x["axis"]["labelExpr"]
