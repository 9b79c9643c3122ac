"""A real replica traces exactly the requests that bring a trace context (trace_rate 0).

Why it matters: the router decides which requests are traced deep by forwarding
``traceparent`` or not; a replica that also traced requests on its own (Triton's ``rate``) or
whose PyTriton stub started a root span per untraced request would spend CPU on orphan spans,
the overhead this design removes (benchmarks/telemetry_overhead.py).
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from collectors.self_metrics import WardenMetrics
from collectors.traces import OtlpReceiver
from serving.fleet import Fleet, FleetConfig
from warden.records import Span

pytestmark = pytest.mark.slow

DEEP_SPANS = {"InferRequest", "synth", "compute", "python_backend_execute",
              "proxy_inference_callable", "warden.model"}


def test_replica_traces_only_requests_with_a_context(tmp_path: Path) -> None:
    import tritonclient.http as httpclient

    got: list[Span] = []
    lock = threading.Lock()

    def sink(spans: list[Span]) -> None:
        with lock:
            got.extend(spans)

    registry = CollectorRegistry()
    receiver = OtlpReceiver(sink, metrics=WardenMetrics(registry))
    receiver.start()
    fleet = Fleet(FleetConfig(models=["synth"], otlp_url=receiver.url), tmp_path)
    try:
        fleet.start(1)
        client = httpclient.InferenceServerClient(fleet.replicas[0].url.removeprefix("http://"))
        inp = httpclient.InferInput("x", [1, 4], "FP32")
        inp.set_data_from_numpy(np.ones((1, 4), np.float32))
        for _ in range(10):
            client.infer("synth", [inp])
        traces = [secrets.token_hex(16) for _ in range(5)]
        for tid in traces:
            client.infer("synth", [inp],
                         headers={"traceparent": f"00-{tid}-{secrets.token_hex(8)}-01"})
        client.close()
        deadline = time.monotonic() + 15  # Triton's exporter batches for 200 ms, the stub's too
        while time.monotonic() < deadline and len(got) < 6 * len(traces):
            time.sleep(0.2)
        time.sleep(1.0)  # anything orphaned would arrive in the same batches
    finally:
        fleet.stop_all()
        receiver.stop()
    assert {s.trace_id for s in got} == set(traces)  # nothing for the 10 untraced requests
    for tid in traces:
        assert {s.name for s in got if s.trace_id == tid} == DEEP_SPANS
    # Triton's spans come as JSON; PyTriton's would be protobuf from the OTel SDK had the lean
    # recorder (serving.pytriton_spans) not taken over in the stub and in the replica
    assert registry.get_sample_value("warden_spans_received_total",
                                     {"encoding": "protobuf"}) is None
    assert registry.get_sample_value("warden_spans_received_total",
                                     {"encoding": "json"}) == len(got)
