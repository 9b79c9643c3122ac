"""Closed-loop saturation load shared by the benchmarks: C clients, each sending back to back.

Closed loop is right for measuring capacity (throughput at saturation); for latency under a
given rate use the open-loop ``serving.loadgen``.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np


async def _client_loop(client, model: str, deadline: float, lat: list[float], errors: list[int],
                       tracer=None):
    import tritonclient.http.aio as httpclient

    x = np.ones((1, 4), dtype=np.float32)
    inp = httpclient.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        span, headers = None, {}
        if tracer is not None:
            span = tracer.start_span("warden.client", attributes={"warden.model": model})
            ctx = span.get_span_context()
            flags = "01" if ctx.trace_flags.sampled else "00"
            headers["traceparent"] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags}"
        try:
            await client.infer(model, [inp], headers=headers)
            lat.append(time.perf_counter() - t0)
        except Exception:
            errors[0] += 1
        if span is not None:
            span.end()


async def _run(url: str, model: str, clients: int, seconds: float,
               tracer=None) -> tuple[float, np.ndarray, int]:
    import tritonclient.http.aio as httpclient

    client = httpclient.InferenceServerClient(url.removeprefix("http://"), conn_limit=clients)
    lat: list[float] = []
    errors = [0]
    t0 = time.monotonic()
    try:
        await asyncio.gather(*(_client_loop(client, model, t0 + seconds, lat, errors, tracer)
                               for _ in range(clients)))
    finally:
        await client.close()
    elapsed = time.monotonic() - t0
    return len(lat) / elapsed, np.array(lat), errors[0]


def saturate(url: str, model: str = "synth", clients: int = 32,
             seconds: float = 5.0, tracer=None) -> tuple[float, np.ndarray, int]:
    """Returns (requests per second, latencies in seconds, errors).

    With ``tracer``, each request carries a ``warden.client`` span and its ``traceparent``.
    """
    return asyncio.run(_run(url, model, clients, seconds, tracer))
