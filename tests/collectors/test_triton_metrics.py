"""Triton /metrics scraping against REAL captured text, plus its failure modes."""

from __future__ import annotations

import math
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

import pytest
from prometheus_client import CollectorRegistry

from collectors.base import Collector
from collectors.promtext import CounterTracker, histogram_quantile, merge_buckets, parse_tolerant
from collectors.self_metrics import WardenMetrics
from collectors.triton import TritonMetricsCollector, split_variant

FIX = Path(__file__).parents[1] / "fixtures" / "triton"
REAL = (FIX / "metrics_default.txt").read_text()


def _bump(text: str, **new: float) -> str:
    """Rewrite counters of the real text: ``_bump(t, nv_inference_count=10)``."""
    out = []
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if name in new and not line.startswith("#"):
            head = line.rsplit(" ", 1)[0]
            line = f"{head} {new[name]}"
        out.append(line)
    return "\n".join(out) + "\n"


def _by_name(samples, name, **labels):
    return [s for s in samples if s.series == name
            and all(dict(s.labels).get(k) == v for k, v in labels.items())]


@pytest.fixture
def metrics():
    return WardenMetrics(CollectorRegistry())


class Feed:
    """The ``fetch`` seam fed with texts in order (the HTTP path has its own test below)."""

    def __init__(self, *texts: str | Exception) -> None:
        self.texts = list(texts)

    def __call__(self, url: str, timeout_s: float) -> str:
        item = self.texts.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def test_real_text_parses_and_first_scrape_has_no_rates(metrics) -> None:
    c = TritonMetricsCollector({"r0": "u"}, metrics=metrics, fetch=Feed(REAL))
    assert isinstance(c, Collector)
    out = c.collect(100.0)
    assert {s.series for s in out} == {"triton_up", "triton_pending_requests"}
    pend = _by_name(out, "triton_pending_requests")[0]
    assert dict(pend.labels) == {"model": "mlp", "variant": "full", "replica": "r0"}


def test_rates_and_mean_durations_from_real_counters(metrics) -> None:
    t1 = _bump(REAL, nv_inference_request_success=100, nv_inference_count=100,
               nv_inference_exec_count=50, nv_inference_queue_duration_us=200_000,
               nv_inference_compute_infer_duration_us=1_000_000,
               nv_inference_request_duration_us=2_000_000)
    t2 = _bump(REAL, nv_inference_request_success=300, nv_inference_count=300,
               nv_inference_exec_count=100, nv_inference_queue_duration_us=600_000,
               nv_inference_compute_infer_duration_us=3_000_000,
               nv_inference_request_duration_us=6_000_000)
    c = TritonMetricsCollector({"r0": "u"}, metrics=metrics, fetch=Feed(t1, t2))
    c.collect(10.0)
    out = c.collect(20.0)
    assert _by_name(out, "triton_request_success_per_second")[0].value == pytest.approx(20.0)
    assert _by_name(out, "triton_queue_duration_seconds")[0].value == pytest.approx(0.002)
    assert _by_name(out, "triton_compute_infer_duration_seconds")[0].value == pytest.approx(0.01)
    assert _by_name(out, "triton_request_duration_seconds")[0].value == pytest.approx(0.02)
    assert _by_name(out, "triton_batch_size")[0].value == pytest.approx(4.0)
    assert _by_name(out, "triton_error_ratio")[0].value == 0.0
    assert len(_by_name(out, "triton_request_failure_per_second")) == 4  # one per reason
    assert metrics.value("warden_samples_ingested_total", {"source": "triton"}) == len(out) + 2


def test_counter_reset_after_replica_restart(metrics) -> None:
    before = _bump(REAL, nv_inference_request_success=1000, nv_inference_count=1000)
    after = _bump(REAL, nv_inference_request_success=30, nv_inference_count=30)
    c = TritonMetricsCollector({"r0": "u"}, metrics=metrics, fetch=Feed(before, after))
    c.collect(0.0)
    out = c.collect(10.0)
    rate = _by_name(out, "triton_request_success_per_second")[0].value
    assert rate == pytest.approx(3.0)  # 30 since the restart, never -97/s
    assert metrics.value("warden_counter_resets_total", {"target": "r0"}) == 1.0


def test_nan_and_garbage_lines_are_counted_not_fatal(metrics) -> None:
    bad = REAL.replace(
        'nv_inference_pending_request_count{model="mlp",version="1"} 0',
        'nv_inference_pending_request_count{model="mlp",version="1"} NaN',
    ) + "this is }{ not a metric line\nnv_inference_count{model=\"mlp\" 12\n"
    c = TritonMetricsCollector({"r0": "u"}, metrics=metrics, fetch=Feed(bad))
    out = c.collect(1.0)
    assert _by_name(out, "triton_up")[0].value == 1.0
    assert not _by_name(out, "triton_pending_requests")  # the NaN one was dropped
    assert metrics.value("warden_samples_rejected_total", {"target": "r0", "reason": "nan"}) == 1
    assert metrics.value("warden_samples_rejected_total",
                         {"target": "r0", "reason": "garbage"}) == 2


def test_total_garbage_yields_no_samples_but_no_crash(metrics) -> None:
    c = TritonMetricsCollector({"r0": "u"}, metrics=metrics,
                               fetch=Feed("\x00\x01binary{{{\n" * 5))
    out = c.collect(1.0)
    assert [s.series for s in out] == ["triton_up"]
    assert metrics.value("warden_samples_rejected_total",
                         {"target": "r0", "reason": "garbage"}) == 5


def test_negative_counter_rejected(metrics) -> None:
    c = TritonMetricsCollector({"r0": "u"}, metrics=metrics,
                               fetch=Feed(_bump(REAL, nv_inference_count=-5)))
    c.collect(1.0)
    assert metrics.value("warden_samples_rejected_total",
                         {"target": "r0", "reason": "negative"}) == 1


def test_lite_variant_and_versions_summed(metrics) -> None:
    text = (
        "# TYPE nv_inference_request_success counter\n"
        'nv_inference_request_success{model="mlp_lite",version="1"} 10\n'
        'nv_inference_request_success{model="mlp_lite",version="2"} 5\n'
    )
    text2 = text.replace("} 10", "} 20").replace("} 5", "} 15")
    c = TritonMetricsCollector({"r1": "u"}, metrics=metrics, fetch=Feed(text, text2))
    c.collect(0.0)
    (s,) = _by_name(c.collect(10.0), "triton_request_success_per_second")
    assert dict(s.labels) == {"model": "mlp", "variant": "lite", "replica": "r1"}
    assert s.value == pytest.approx(2.0)
    assert split_variant("synth_lite") == ("synth", "lite") and split_variant("x") == ("x", "full")


def test_summary_quantiles_passed_through_in_seconds(metrics) -> None:
    text = (FIX / "metrics_summary_latencies-true.txt").read_text()
    out = TritonMetricsCollector({"r0": "u"}, metrics=metrics, fetch=Feed(text)).collect(1.0)
    p99 = _by_name(out, "triton_inference_request_summary_seconds", quantile="0.99")
    assert len(p99) == 1 and 0 < p99[0].value < 10


def test_histogram_buckets_become_increases_and_quantiles(metrics) -> None:
    def hist(counts):
        lines = ["# TYPE nv_inference_first_response_histogram_ms histogram"]
        for le, n in zip(("1", "10", "100", "+Inf"), counts, strict=True):
            lines.append(
                f'nv_inference_first_response_histogram_ms_bucket{{model="m",version="1",le="{le}"}} {n}')
        lines.append(f'nv_inference_first_response_histogram_ms_count{{model="m",version="1"}} {counts[-1]}')
        lines.append(f'nv_inference_first_response_histogram_ms_sum{{model="m",version="1"}} 1')
        return "\n".join(lines) + "\n"

    c = TritonMetricsCollector({"r0": "u"}, metrics=metrics,
                               fetch=Feed(hist((0, 0, 0, 0)), hist((10, 60, 100, 100))))
    c.collect(0.0)
    out = c.collect(10.0)
    inc = {dict(s.labels)["le"]: s.value
           for s in _by_name(out, "triton_inference_first_response_histogram_bucket_increase")}
    assert inc == {"0.001": 10, "0.01": 60, "0.1": 100, "+Inf": 100}
    p50 = _by_name(out, "triton_inference_first_response_histogram_quantile_seconds",
                   quantile="0.5")[0].value
    assert p50 == pytest.approx(0.001 + 0.009 * 40 / 50)


def test_histogram_quantile_and_merge() -> None:
    a = {1.0: 5, 2.0: 10, math.inf: 10}
    b = {1.0: 0, 2.0: 0, math.inf: 10}
    assert histogram_quantile(0.5, a) == pytest.approx(1.0)
    merged = merge_buckets([a, b])
    assert merged == {1.0: 5, 2.0: 10, math.inf: 20}
    assert histogram_quantile(0.99, merged) == 2.0  # in +Inf: highest finite bound
    assert math.isnan(histogram_quantile(0.5, {math.inf: 0}))
    with pytest.raises(ValueError):
        histogram_quantile(1.5, a)


def test_counter_tracker_edges() -> None:
    t = CounterTracker()
    assert t.update("k", 5, 1.0) is None
    assert t.update("k", 7, 1.0) is None  # clock did not advance
    d = t.update("k", 9, 3.0)
    assert d is not None and d.rate == pytest.approx(1.0) and not d.reset
    t.forget([])
    assert t.update("k", 1, 4.0) is None


def test_parse_tolerant_keeps_good_lines() -> None:
    samples, rejected = parse_tolerant("a 1\nb{x=\"1\"} 2\nbroken{ 3\n")
    assert {s.name for s in samples} == {"a", "b"} and rejected == ["broken{ 3"]


class _Metrics(BaseHTTPRequestHandler):
    body = REAL.encode()

    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/metrics":
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a) -> None:
        pass


def test_http_scrape_errors_and_lag_per_target(metrics) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        c = TritonMetricsCollector(
            {"ok": f"http://127.0.0.1:{port}/metrics", "err": f"http://127.0.0.1:{port}/boom",
             "dead": f"http://127.0.0.1:{dead}/metrics"},
            metrics=metrics, clock=lambda: 100.0, timeout_s=1.0)
        out = c.collect(105.0)
    finally:
        srv.shutdown()
        srv.server_close()
    up = {dict(s.labels)["replica"]: s.value for s in _by_name(out, "triton_up")}
    assert up == {"ok": 1.0, "err": 0.0, "dead": 0.0}
    assert metrics.value("warden_scrape_errors_total", {"target": "err", "reason": "http_500"}) == 1
    assert metrics.value("warden_scrape_errors_total", {"target": "dead", "reason": "connect"}) == 1
    assert metrics.value("warden_scrape_lag_seconds", {"target": "dead"}) == 5.0
    assert metrics.value("warden_scrape_lag_seconds", {"target": "ok"}) == 0.0


def test_model_stats_dead_target_is_counted_not_raised(metrics) -> None:
    import socket

    from collectors.triton_stats import TritonModelStats

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    stats = TritonModelStats({"r9": f"127.0.0.1:{dead}"}, metrics=metrics, timeout_s=1.0)
    out = stats.collect(1.0)
    assert [(s.series, s.value) for s in out] == [("triton_live", 0.0)]
    errors = [m for m in metrics.registry.collect() if m.name == "warden_scrape_errors"]
    assert sum(s.value for s in errors[0].samples
               if s.name.endswith("_total") and s.labels["target"] == "r9/stats") == 1
