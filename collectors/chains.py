"""Join spans into :class:`~warden.records.RequestChain` records, one per request.

The spans of one request arrive from four senders at different times: the load generator's
``warden.client`` and the router's ``warden.router`` (OTel SDK, protobuf, on span end), Triton's
``InferRequest`` -> ``<model>`` (QUEUE_START) -> ``compute`` (COMPUTE_*) as one JSON batch, and
PyTriton's ``python_backend_execute`` -> ``proxy_inference_callable`` -> ``warden.model`` from a
``BatchSpanProcessor`` that exports every 5 s by default. So a trace is emitted once it has a root
span and nothing new arrived for ``settle_s``, or ``timeout_s`` after its first span whatever it
holds. A span that arrives after its trace was emitted re-opens it (the spans of emitted traces
are remembered for ``late_s``) and the chain is emitted again, complete; the store replaces the
row by trace id. Out-of-order arrival needs nothing special: stages are computed only at emission.

Stages (seconds), per the contract in HELPERS_COMMON.md::

    client          warden.client duration
    router          warden.router duration minus its child InferRequest (none without it)
    triton_http     InferRequest minus (QUEUE_START .. COMPUTE_END)
    queue           QUEUE_START .. COMPUTE_START
    compute_input   COMPUTE_START .. COMPUTE_INPUT_END
    compute_infer   COMPUTE_INPUT_END .. COMPUTE_OUTPUT_START
    compute_output  COMPUTE_OUTPUT_START .. COMPUTE_END
    model_code      warden.model duration (inside compute_infer)

Triton stamps its last events (COMPUTE_END, HTTP_SEND_END) after the reply is on the wire, so on
a busy host its spans can end after the router already has the reply. Time past the parent's
end is not on the request's path: the InferRequest counts for at most the router's duration and
the Triton stages are trimmed from the last one back to fit in it, so the server-side stages
always add up to the router's span. (Seen: under CPU contention an InferRequest ended after
its router span; before this fit, one CI run found server stages 0.58 ms longer than the
client's own span.)

Every slow (``latency_s > slow_threshold_s``) or failed chain is kept whole (its spans go to the
store); the rest are sampled by trace id, deterministically, so every process that sees a trace
makes the same choice.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from warden.records import GpuReading, RequestChain, Span, Stage

__all__ = ["ChainJoiner", "Joined", "build_chain", "keep_by_trace_id"]

CLIENT_SPAN = "warden.client"
ROUTER_SPAN = "warden.router"
DEEP_ATTRIBUTE = "warden.deep"  # serving.router.tracing.DEEP_ATTRIBUTE (no import: collectors
# must not depend on the router)
MODEL_SPAN = "warden.model"
TRITON_REQUEST_SPAN = "InferRequest"
TRITON_COMPUTE_SPAN = "compute"

_GPU_FIELDS = {f.name: f for f in dataclasses.fields(GpuReading)}


@dataclass(frozen=True, slots=True)
class Joined:
    """One emitted chain; ``spans`` is set when the chain is kept whole."""

    chain: RequestChain
    spans: tuple[Span, ...] | None
    reemitted: bool = False


def keep_by_trace_id(trace_id: str, rate: float) -> bool:
    """Deterministic sampling: the low 32 bits of the trace id against ``rate``."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return int(trace_id[-8:], 16) < rate * 2**32


def _events(span: Span) -> dict[str, int]:
    return {name: t for name, t in span.events}


def _gpu_from(span: Span) -> GpuReading | None:
    attrs = span.attributes
    fields = {k[4:]: v for k, v in attrs.items() if k.startswith("gpu.") and k[4:] in _GPU_FIELDS}
    if not fields:
        return None
    kw: dict[str, Any] = {}
    for name, f in _GPU_FIELDS.items():
        if name in fields:
            kw[name] = fields[name]
        elif f.default is not dataclasses.MISSING:
            kw[name] = f.default
        else:
            kw[name] = math.nan
    kw["ts"] = span.end_ns / 1e9
    kw["device"] = str(attrs.get("warden.device", ""))
    kw["simulated"] = bool(attrs.get("warden.simulated", False))
    kw["replica"] = str(attrs.get("warden.replica", kw.get("replica") or ""))
    tr = kw.get("throttle_reasons")
    kw["throttle_reasons"] = tuple(tr) if isinstance(tr, list | tuple) else ()
    try:
        return GpuReading(**kw)
    except TypeError:
        return None


def _shallow(tr: _Trace) -> bool:
    """The router said it did not forward this trace's context (``warden.deep`` false), so no
    replica span will come and the chain is whole once its root is in: emitting it at once
    instead of after ``settle_s`` takes that wait out of every detector's time to alert."""
    return any(sp.name == ROUTER_SPAN and sp.attributes.get(DEEP_ATTRIBUTE) is False
               for sp in tr.spans.values())


def _first(spans: Iterable[Span], pred: Callable[[Span], bool]) -> Span | None:
    found = [s for s in spans if pred(s)]
    return max(found, key=lambda s: s.start_ns) if found else None


def _fit_from_the_end(durations: list[float], budget: float) -> list[float]:
    """Trim ``durations`` (consecutive stages) from the last one back until they sum to at most
    ``budget``: time stamped after the parent span ended is the tail of the sequence."""
    excess = sum(durations) - budget
    fitted = list(durations)
    for i in reversed(range(len(fitted))):
        if excess <= 0:
            break
        cut = min(fitted[i], excess)
        fitted[i] -= cut
        excess -= cut
    return fitted


def build_chain(trace_id: str, spans: list[Span]) -> RequestChain:
    """Compute one chain from whatever spans of the trace are present."""
    by_id = {s.span_id: s for s in spans}
    client = _first(spans, lambda s: s.name == CLIENT_SPAN)
    router = _first(spans, lambda s: s.name == ROUTER_SPAN)
    infer = _first(spans, lambda s: s.name == TRITON_REQUEST_SPAN)
    model_sched = _first(spans, lambda s: any(e[0] == "QUEUE_START" for e in s.events)
                         and (infer is None or s.parent_span_id == infer.span_id))
    compute = _first(spans, lambda s: s.name == TRITON_COMPUTE_SPAN
                     and (model_sched is None or s.parent_span_id == model_sched.span_id))
    model = _first(spans, lambda s: s.name == MODEL_SPAN)

    stages: dict[str, float] = {}
    if client is not None:
        stages[Stage.CLIENT.value] = client.duration_s
    q = _events(model_sched) if model_sched else {}
    c = _events(compute) if compute else {}

    def span_between(a: int | None, b: int | None) -> float | None:
        return max(0.0, (b - a) / 1e9) if a is not None and b is not None else None

    measured = {  # Triton's own stages, each between two of its events
        Stage.QUEUE: span_between(q.get("QUEUE_START"), c.get("COMPUTE_START")),
        Stage.COMPUTE_INPUT: span_between(c.get("COMPUTE_START"), c.get("COMPUTE_INPUT_END")),
        Stage.COMPUTE_INFER:
            span_between(c.get("COMPUTE_INPUT_END"), c.get("COMPUTE_OUTPUT_START")),
        Stage.COMPUTE_OUTPUT: span_between(c.get("COMPUTE_OUTPUT_START"), c.get("COMPUTE_END")),
    }
    inner = {s: d for s, d in measured.items() if d is not None}
    parent = router if router is not None and infer is not None \
        and infer.parent_span_id == router.span_id else None
    if infer is not None:
        # Triton's spans may outlast the router's (see the module docstring): fit them in it.
        on_path = min(infer.duration_s, parent.duration_s) if parent else infer.duration_s
        inner = dict(zip(inner, _fit_from_the_end(list(inner.values()), on_path)))
        stages[Stage.TRITON_HTTP.value] = on_path - sum(inner.values())
        if parent is not None:
            # Without its InferRequest child (a request the router did not send deep, or
            # Triton's spans lost) the router span holds the replica's time too: no router
            # stage then.
            stages[Stage.ROUTER.value] = parent.duration_s - on_path
    stages.update({s.value: d for s, d in inner.items()})
    if model is not None:
        stages[Stage.MODEL_CODE.value] = model.duration_s
        infer_s = inner.get(Stage.COMPUTE_INFER)
        if infer_s is not None and infer_s < (measured[Stage.COMPUTE_INFER] or 0.0):
            # compute_infer was trimmed; the model's code runs inside it, so it fits in it too
            stages[Stage.MODEL_CODE.value] = min(model.duration_s, infer_s)

    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in by_id]
    outer = client or router or infer or (min(roots, key=lambda s: s.start_ns) if roots else spans[0])
    attrs: dict[str, Any] = {}
    for s in (client, router, model):  # later spans win: the model span knows the replica
        if s is not None:
            attrs.update({k: v for k, v in s.attributes.items() if k.startswith("warden.")})
    triton_model = str(model_sched.attributes.get("triton.model_name", model_sched.name)) \
        if model_sched else ""
    base, variant = (triton_model[:-5], "lite") if triton_model.endswith("_lite") \
        else (triton_model, "full")
    replica = str(attrs.get("warden.replica", ""))
    if not replica and infer is not None and infer.service.startswith("warden-replica-"):
        replica = infer.service.removeprefix("warden-replica-")
    return RequestChain(
        trace_id=trace_id,
        ts=outer.start_ns / 1e9,
        model=str(attrs.get("warden.model") or base),
        variant=str(attrs.get("warden.variant") or (variant if triton_model else "")),
        replica=replica,
        latency_s=outer.duration_s,
        stages=stages,
        error=any(s.status_error for s in spans),
        gpu=_gpu_from(model) if model is not None else None,
        span_count=len(spans),
    )


class _Trace:
    __slots__ = ("first_at", "last_at", "spans", "emitted")

    def __init__(self, now: float) -> None:
        self.first_at = now
        self.last_at = now
        self.spans: dict[str, Span] = {}
        self.emitted = False


class ChainJoiner:
    """Buffers spans by trace id and emits chains when traces settle (thread-safe).

    Args:
        clock: seconds (monotonic is fine; only differences are used).
        slow_threshold_s: chains slower than this are kept whole.
        sample_rate: share of the other chains kept whole, chosen by trace id.
        settle_s: quiet time after the last span of a rooted trace before it is emitted.
        timeout_s: a trace is emitted this long after its first span, rooted or not.
        late_s: how long the spans of an emitted trace are kept to absorb late spans.
        max_traces: bound on traces held; beyond it the oldest pending trace is emitted early.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, slow_threshold_s: float = 0.5,
        sample_rate: float = 0.01, settle_s: float = 2.0, timeout_s: float = 30.0,
        late_s: float = 60.0, max_traces: int = 100_000,
    ) -> None:
        if settle_s < 0 or timeout_s <= 0 or not 0.0 <= sample_rate <= 1.0:
            raise ValueError("settle_s >= 0, timeout_s > 0 and 0 <= sample_rate <= 1 required")
        self.clock = clock
        self.slow_threshold_s = slow_threshold_s
        self.sample_rate = sample_rate
        self.settle_s = settle_s
        self.timeout_s = timeout_s
        self.late_s = late_s
        self.max_traces = max_traces
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, _Trace] = OrderedDict()
        self._done: OrderedDict[str, _Trace] = OrderedDict()
        self.late_spans = 0
        self.duplicate_spans = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, spans: Iterable[Span]) -> None:
        now = self.clock()
        with self._lock:
            for s in spans:
                tr = self._pending.get(s.trace_id)
                if tr is None:
                    tr = self._done.pop(s.trace_id, None)
                    if tr is not None:
                        self.late_spans += 1
                    else:
                        tr = _Trace(now)
                    self._pending[s.trace_id] = tr
                if s.span_id in tr.spans:
                    self.duplicate_spans += 1
                tr.spans[s.span_id] = s
                tr.last_at = now

    def _ready(self, tr: _Trace, now: float) -> bool:
        if now - tr.first_at >= self.timeout_s:
            return True
        # rooted: the outermost span (no parent at all) is here; a trace whose root was never
        # traced (an external parent) waits for timeout_s instead
        rooted = any(not sp.parent_span_id for sp in tr.spans.values())
        if rooted and _shallow(tr):
            return True  # nothing can follow: the router kept the context from the replica
        return rooted and now - tr.last_at >= self.settle_s

    def poll(self, now: float | None = None) -> list[Joined]:
        """Emit every trace that is ready at ``now``."""
        now = self.clock() if now is None else now
        with self._lock:
            ready = [tid for tid, tr in self._pending.items() if self._ready(tr, now)]
            while len(self._pending) - len(ready) > self.max_traces:
                oldest = next(t for t in self._pending if t not in ready)
                ready.append(oldest)
                self.evicted += 1
            traces = [(tid, self._pending.pop(tid)) for tid in ready]
            for tid, tr in traces:
                self._done[tid] = tr
            self._expire_done(now)
        return [self._emit(tid, tr) for tid, tr in traces]

    def drain(self) -> list[Joined]:
        """Emit everything pending (at shutdown)."""
        with self._lock:
            traces = list(self._pending.items())
            self._pending.clear()
        return [self._emit(tid, tr) for tid, tr in traces]

    def _expire_done(self, now: float) -> None:
        while self._done:
            tid, tr = next(iter(self._done.items()))
            if now - tr.last_at < self.late_s and len(self._done) <= self.max_traces:
                break
            del self._done[tid]

    def _emit(self, trace_id: str, tr: _Trace) -> Joined:
        spans = sorted(tr.spans.values(), key=lambda s: s.start_ns)
        chain = build_chain(trace_id, spans)
        whole = (chain.error or chain.latency_s > self.slow_threshold_s
                 or keep_by_trace_id(trace_id, self.sample_rate))
        reemitted = tr.emitted
        tr.emitted = True
        return Joined(chain, tuple(spans) if whole else None, reemitted)

    def pending_spans(self) -> Mapping[str, int]:
        with self._lock:
            return {tid: len(tr.spans) for tid, tr in self._pending.items()}
