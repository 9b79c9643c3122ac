"""Against a REAL PyTriton replica: /metrics rates, model stats, traces joined into the store."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from collectors.chains import ChainJoiner
from collectors.self_metrics import WardenMetrics
from collectors.trace_pipeline import TracePipeline
from collectors.triton import TritonMetricsCollector
from collectors.triton_stats import TritonModelStats
from tests.fixtures.capture_triton import start_replica
from warden.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

N_REQUESTS = 20


def _by(samples, name):
    return [s for s in samples if s.series == name]


def test_live_replica_metrics_stats_and_chains(tmp_path) -> None:
    import tritonclient.http as httpclient
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.propagate import inject
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    metrics = WardenMetrics(CollectorRegistry())
    store = Store(tmp_path / "live.db")
    joiner = ChainJoiner(settle_s=0.5, timeout_s=20.0, slow_threshold_s=10.0, sample_rate=1.0)
    pipeline = TracePipeline(store, metrics=metrics, joiner=joiner, poll_interval_s=0.1).start()
    # PyTriton's BatchSpanProcessor waits 5 s by default; 200 ms keeps the test short
    rep = start_replica(trace_url=pipeline.url, env={"OTEL_BSP_SCHEDULE_DELAY": "200"})
    try:
        rep.wait_ready(timeout_s=60)
        scraper = TritonMetricsCollector({"r0": rep.metrics_url}, metrics=metrics)
        scraper.collect(time.time())
        provider = TracerProvider(resource=Resource({"service.name": "warden-loadgen"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=pipeline.url)))
        tracer = provider.get_tracer("test")
        client = httpclient.InferenceServerClient(rep.http_url)
        for i in range(N_REQUESTS):
            with tracer.start_as_current_span("warden.client", attributes={"warden.model": "mlp"}):
                headers: dict[str, str] = {}
                inject(headers)
                inp = httpclient.InferInput("x", [1, 4], "FP32")
                inp.set_data_from_numpy(np.full((1, 4), float(i), dtype=np.float32))
                client.infer("mlp", [inp], headers=headers)
        provider.shutdown()
        time.sleep(1.2)  # Triton refreshes its metrics every metrics_interval_ms (1 s)
        out = scraper.collect(time.time())
        (rate,) = _by(out, "triton_request_success_per_second")
        assert rate.value > 0 and dict(rate.labels)["replica"] == "r0"
        assert _by(out, "triton_compute_infer_duration_seconds")[0].value > 0

        stats = TritonModelStats({"r0": rep.http_url}, metrics=metrics,
                                 access_token=rep.access_token).collect(time.time())
        ready = _by(stats, "triton_model_ready")
        assert [s.value for s in ready] == [1.0]
        assert _by(stats, "triton_inference_count_total")[0].value >= N_REQUESTS

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            chains = store.chains()
            if len(chains) >= N_REQUESTS and chains["model_code"].notna().all():
                break
            time.sleep(0.3)
        assert len(chains) == N_REQUESTS
        assert (chains["replica"] == "r0").all() and (chains["model"] == "mlp").all()
        for stage in ("client", "triton_http", "queue", "compute_infer", "model_code"):
            assert chains[stage].notna().all(), stage
        assert (chains["compute_infer"] >= chains["model_code"]).all()
        q = store.chain_quantiles(window_s=3600.0)
        assert q["count"].sum() == N_REQUESTS and (q["p99"] >= q["p50"]).all()
        tid = chains["trace_id"].iloc[0]
        assert {"InferRequest", "compute", "warden.model"} <= set(store.spans(tid)["name"])
    finally:
        rep.stop()
        pipeline.stop()
    down = scraper.collect(time.time())
    assert _by(down, "triton_up")[0].value == 0.0
    assert metrics.value("warden_scrape_errors_total", {"target": "r0", "reason": "connect"}) == 1
    assert metrics.value("warden_spans_rejected_total", {"reason": "malformed"}) == 0
    store.close()
