"""Twin readings on the wire: the JSON codec, span attributes, and real HTTP polling."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collectors.gpu_record import (
    BadGpuPayload,
    decode_clock_reasons,
    reading_from_dict,
    reading_to_dict,
    span_attributes,
)
from collectors.gpu_twin_source import TwinCollector, TwinHttpSource
from serving.gpu_twin import GpuTwin
from warden.records import GpuReading


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def busy_twin(device: str = "sim0") -> GpuTwin:
    clock = FakeClock()
    twin = GpuTwin(device, clock=clock, wall_clock=clock, sleep=lambda s: None)
    for _ in range(50):
        with twin.executing(batch_size=4, input_bytes=4096):
            clock.t += 0.02
    return twin


def test_round_trip_keeps_every_field():
    reading = busy_twin().reading(now=1234.5, replica="r1")
    wire = json.loads(json.dumps(reading_to_dict(reading)))
    assert reading_from_dict(wire) == reading
    assert wire["simulated"] is True and isinstance(wire["throttle_reasons"], list)


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("temperature_c"), "lacks temperature_c"),
    (lambda d: d.update(power_w=math.nan), "power_w must be a finite number"),
    (lambda d: d.update(simulated="true"), "simulated must be a boolean"),
    (lambda d: d.update(throttle_reasons="HOT"), "throttle_reasons"),
    (lambda d: d.update(xid_errors=True), "xid_errors"),
    (lambda d: d.update(device=7), "device must be a string"),
])
def test_bad_payloads_are_rejected_with_the_field_named(mutate, match):
    data = reading_to_dict(busy_twin().reading(now=1.0))
    mutate(data)
    with pytest.raises(BadGpuPayload, match=match):
        reading_from_dict(data)
    with pytest.raises(BadGpuPayload):
        reading_from_dict([1, 2])  # type: ignore[arg-type]


def test_span_attributes_follow_the_naming_contract():
    attrs = span_attributes(busy_twin().reading(now=1.0))
    assert attrs["warden.device"] == "sim0" and attrs["warden.simulated"] is True
    assert attrs["gpu.temperature_c"] > 30 and attrs["gpu.sm_clock_mhz"] == 1695.0
    assert "gpu.alloc_reserved_bytes" in attrs and "gpu.ts" not in attrs


def test_decode_clock_reasons_names_unknown_bits():
    assert decode_clock_reasons(0x1 | 0x40 | 0x1000) == ("GPU_IDLE", "HW_THERMAL_SLOWDOWN",
                                                         "BIT_0x1000")
    assert decode_clock_reasons(0) == ()


def test_twin_collector_labels_replicas():
    out = TwinCollector({"r0": busy_twin(), "r1": busy_twin("sim1")}).collect(now=7.0)
    assert [(r.replica, r.device, r.ts, r.simulated) for r in out] == [
        ("r0", "sim0", 7.0, True), ("r1", "sim1", 7.0, True)]


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.routes.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    twin = busy_twin()
    good = reading_to_dict(twin.reading(now=55.0))
    lying = dict(good, simulated=False)
    _Handler.routes = {"/gpu": json.dumps(good).encode(), "/garbage": b"<html>oops",
                       "/lying": json.dumps(lying).encode()}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", twin
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_http_source_polls_real_endpoints_and_counts_rejections(server):
    base, twin = server
    closed = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    dead_url = f"http://127.0.0.1:{closed.server_address[1]}/gpu"
    closed.server_close()  # nothing listens there now
    source = TwinHttpSource({"r0": f"{base}/gpu", "r1": f"{base}/garbage",
                             "r2": f"{base}/lying", "r3": dead_url, "r4": f"{base}/missing"},
                            timeout_s=2.0)
    try:
        out = source.collect(now=60.0)
    finally:
        source.close()
    readings = [r for r in out if isinstance(r, GpuReading)]
    assert len(readings) == 1
    expected = dataclasses.replace(twin.reading(now=55.0), replica="r0")
    assert readings[0] == expected
    assert source.rejected == {("r1", "payload"): 1, ("r2", "payload"): 1, ("r3", "http"): 1,
                               ("r4", "http"): 1}
