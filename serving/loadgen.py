"""An open-loop load generator on tritonclient: traffic that looks like users.

Open loop: requests start at Poisson arrival times whatever the server does, and each request's
latency is measured from the moment it was *scheduled*, not from when the client got round to
sending it. A closed-loop client waits for a slow server before sending more, which hides the
very latency an SRE is looking for (coordinated omission). In-flight requests are capped to
bound memory; an arrival over the cap is counted as ``dropped`` rather than silently delayed.

Profiles shape the arrival rate over time: ``constant``, ``diurnal`` (a compressed day: a sine
around the base rate), ``burst`` (periodic surges) and ``surge`` (one surge, then base again). Each request carries a ``warden.client``
span and its W3C ``traceparent`` when a tracer is given.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from serving.models import SYNTH_FEATURES
from serving.onnx_mlp import IN_FEATURES

__all__ = ["LoadGenerator", "LoadProfile", "LoadSummary", "RequestResult", "summarise"]

INPUT_SHAPES = {"synth": (("x", SYNTH_FEATURES), "y"), "mlp": (("x", IN_FEATURES), "probs")}


class LoadProfile(BaseModel):
    """Arrival rate over time. ``rate`` is requests per second at the base level."""

    kind: Literal["constant", "diurnal", "burst", "surge"] = "constant"
    rate: float = Field(50.0, gt=0)
    amplitude: float = Field(0.5, ge=0, le=1, description="diurnal: peak is rate*(1+amplitude)")
    period_s: float = Field(120.0, gt=0, description="diurnal: one compressed day")
    burst_factor: float = Field(3.0, ge=1, description="burst: rate multiplier during a burst")
    burst_every_s: float = Field(60.0, gt=0)
    burst_len_s: float = Field(10.0, ge=0)
    surge_at_s: float = Field(0.0, ge=0, description="surge: one burst of burst_len_s, from here")

    def rate_at(self, t: float) -> float:
        """Arrivals per second ``t`` seconds after the start."""
        if self.kind == "diurnal":
            return self.rate * (1.0 + self.amplitude * math.sin(2 * math.pi * t / self.period_s))
        if self.kind == "burst" and (t % self.burst_every_s) >= self.burst_every_s - self.burst_len_s:
            return self.rate * self.burst_factor
        if self.kind == "surge" and 0 <= t - self.surge_at_s < self.burst_len_s:
            return self.rate * self.burst_factor
        return self.rate


@dataclass(frozen=True, slots=True)
class RequestResult:
    scheduled: float
    latency_s: float
    ok: bool
    model: str
    trace_id: str = ""
    error: str = ""


@dataclass
class LoadSummary:
    duration_s: float
    sent: int
    ok: int
    errors: int
    dropped: int
    achieved_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    by_model: dict[str, int] = field(default_factory=dict)

    def table(self) -> str:
        return (
            f"sent {self.sent}  ok {self.ok}  errors {self.errors}  dropped {self.dropped}  "
            f"rate {self.achieved_rps:.1f}/s  P50 {self.p50_ms:.1f} ms  P95 {self.p95_ms:.1f} ms  "
            f"P99 {self.p99_ms:.1f} ms"
        )


def summarise(results: list[RequestResult], duration_s: float, dropped: int = 0) -> LoadSummary:
    """Quantiles over successful requests; achieved rate counts completions of any outcome."""
    lat = np.array([r.latency_s for r in results if r.ok]) * 1e3
    q = np.percentile(lat, [50, 95, 99]) if len(lat) else [math.nan] * 3
    by_model: dict[str, int] = {}
    for r in results:
        by_model[r.model] = by_model.get(r.model, 0) + 1
    ok = int(sum(r.ok for r in results))
    return LoadSummary(
        duration_s=duration_s, sent=len(results), ok=ok, errors=len(results) - ok,
        dropped=dropped, achieved_rps=len(results) / duration_s if duration_s > 0 else 0.0,
        p50_ms=float(q[0]), p95_ms=float(q[1]), p99_ms=float(q[2]), by_model=by_model,
    )


class LoadGenerator:
    """Send Poisson traffic to a KServe v2 endpoint (the router or a replica) until stopped.

    Args:
        url: ``http://host:port`` of the endpoint.
        profile: the arrival-rate shape.
        models: model name to relative weight, e.g. ``{"synth": 3, "mlp": 1}``.
        tracer: an OpenTelemetry tracer for client spans, or ``None`` for no tracing.
        max_in_flight: cap on concurrent requests; arrivals beyond it are dropped and counted.
        timeout_s: per-request timeout; a timed-out request is an error.
        seed: seeds arrivals, model choice and inputs, so runs are repeatable.
        items: rows per request (a client that batches its inputs): the model's work per
            request grows with it, the client's, router's and server's per-request work does not.
    """

    def __init__(
        self,
        url: str,
        profile: LoadProfile,
        models: Mapping[str, float] | None = None,
        *,
        tracer: Any | None = None,
        max_in_flight: int = 256,
        timeout_s: float = 10.0,
        seed: int = 0,
        items: int = 1,
    ) -> None:
        if items < 1:
            raise ValueError(f"items must be >= 1, got {items}")
        self.url = url.removeprefix("http://")
        self.items = items
        self.profile = profile
        self.models = dict(models or {"synth": 1.0})
        unknown = set(self.models) - set(INPUT_SHAPES)
        if unknown:
            raise ValueError(f"unknown models {sorted(unknown)}; known: {sorted(INPUT_SHAPES)}")
        self.tracer = tracer
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self._rng = random.Random(seed)
        self._np_rng = np.random.default_rng(seed)
        self.results: list[RequestResult] = []
        self.dropped = 0
        self._in_flight = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0

    # -- running -----------------------------------------------------------------------------

    def run(self, duration_s: float) -> LoadSummary:
        """Send traffic for ``duration_s`` seconds (or until :meth:`stop`) and summarise it."""
        self.started_at = time.time()
        asyncio.run(self._run(duration_s))
        return self.summary()

    def start(self, duration_s: float = math.inf) -> None:
        """Run in a background thread; :meth:`stop` ends it."""
        self._thread = threading.Thread(target=self.run, args=(duration_s,), daemon=True,
                                        name="loadgen")
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> LoadSummary:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.summary()

    def summary(self) -> LoadSummary:
        results = list(self.results)
        elapsed = (max((r.scheduled + r.latency_s for r in results), default=self.started_at)
                   - self.started_at)
        return summarise(results, elapsed, self.dropped)

    # -- internals ---------------------------------------------------------------------------

    async def _run(self, duration_s: float) -> None:
        import tritonclient.http.aio as httpclient

        client = httpclient.InferenceServerClient(self.url, conn_limit=self.max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        # Wall clock first: a thread switch between the two reads then makes every scheduled
        # time early (client spans a little long), never late (shorter than the router's span).
        wall0 = time.time()
        start = time.monotonic()
        next_at = 0.0
        names = list(self.models)
        weights = [self.models[n] for n in names]
        try:
            while not self._stop.is_set() and next_at < duration_s:
                delay = start + next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._in_flight >= self.max_in_flight:
                    self.dropped += 1
                else:
                    model = self._rng.choices(names, weights)[0]
                    task = asyncio.create_task(self._one(client, model, wall0 + next_at))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                next_at += self._rng.expovariate(self.profile.rate_at(next_at))
            if tasks:
                await asyncio.wait(tasks, timeout=self.timeout_s + 1)
        finally:
            await client.close()

    async def _one(self, client: Any, model: str, scheduled: float) -> None:
        import tritonclient.http.aio as httpclient

        (in_name, features), out_name = INPUT_SHAPES[model]
        x = self._np_rng.standard_normal((self.items, features), dtype=np.float32)
        inp = httpclient.InferInput(in_name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        headers: dict[str, str] = {}
        span = None
        trace_id = ""
        if self.tracer is not None:
            span = self.tracer.start_span(
                "warden.client", start_time=int(scheduled * 1e9),
                attributes={"warden.model": model},
            )
            ctx = span.get_span_context()
            # an unsampled span (a sampling tracer) says so: the router then skips the trace
            sampled = ctx.trace_flags.sampled
            trace_id = f"{ctx.trace_id:032x}" if sampled else ""
            headers["traceparent"] = (f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-"
                                      f"{'01' if sampled else '00'}")
        self._in_flight += 1
        ok, error = True, ""
        try:
            await asyncio.wait_for(
                client.infer(model, [inp], headers=headers,
                             outputs=[httpclient.InferRequestedOutput(out_name, binary_data=True)]),
                timeout=self.timeout_s,
            )
        except Exception as exc:  # every failure is a counted, recorded error
            ok, error = False, f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self._in_flight -= 1
        latency = time.time() - scheduled
        if span is not None:
            if not ok:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR, error))
            span.end()
        self.results.append(RequestResult(scheduled, latency, ok, model, trace_id, error))
