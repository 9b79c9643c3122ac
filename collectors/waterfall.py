"""A request chain drawn as a text waterfall, client to GPU, for ``warden trace show``.

Why a waterfall: an on-call engineer reading "P99 went up" needs to see *where* one slow request
spent its time (router? Triton's queue? the model code?) without opening a tracing UI.

A :class:`~warden.records.RequestChain` keeps each stage's *own* time (``router`` is the router
span minus its Triton child; ``triton_http`` is ``InferRequest`` minus queue and compute), not its
start. So offsets are reconstructed from the nesting: client > router > triton_http > (queue,
compute_input, compute_infer, compute_output in sequence), model code inside compute_infer. A
wrapping stage's own time is split evenly before and after what it wraps (request out, response
back), and drawn ``█`` with its children's span as ``░``; so the number of ``█`` of every stage
is proportional to the duration the chain records for it (for ``client``, the whole request),
and the offsets are estimates (marked ``~``). For the chains kept whole (slow, failed, sampled)
the store also holds the raw spans; given those, offsets are measured instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from warden.records import GpuReading, RequestChain, Span, Stage

__all__ = ["BAR_WIDTH", "StageBar", "layout", "render_chain", "span_offsets"]

BAR_WIDTH = 40
OWN = "█"
CHILD = "░"
_WRAPPERS = (Stage.CLIENT, Stage.ROUTER, Stage.TRITON_HTTP)
_SEQUENCE = (Stage.QUEUE, Stage.COMPUTE_INPUT, Stage.COMPUTE_INFER, Stage.COMPUTE_OUTPUT)


@dataclass(frozen=True, slots=True)
class StageBar:
    """Where one stage sits: ``start`` and ``span`` (seconds from the chain's start, the span
    including wrapped children), ``own`` (the stage's own time, as recorded) and whether the
    position was measured from kept spans (``exact``) or reconstructed from the nesting."""

    stage: str
    start: float
    span: float
    own: float
    exact: bool = False


def _get(chain: RequestChain, stage: Stage) -> float | None:
    v = chain.stages.get(stage.value)
    return None if v is None or not math.isfinite(v) else max(0.0, float(v))


def span_offsets(spans: Sequence[Span]) -> dict[str, tuple[float, float | None]]:
    """Measured ``stage -> (start, span)`` in seconds from the outermost span's start.

    For the chains kept whole (slow, failed, sampled), the store holds their raw spans, so the
    waterfall can place stages where they really were. The same spans and events as
    :func:`collectors.chains.build_chain` are used; ``span`` is ``None`` where only the start is
    known (Triton's events mark the sequence's starts; their lengths stay the recorded ones).
    """
    from collectors.chains import (
        CLIENT_SPAN,
        MODEL_SPAN,
        ROUTER_SPAN,
        TRITON_COMPUTE_SPAN,
        TRITON_REQUEST_SPAN,
    )

    if not spans:
        return {}
    found: dict[str, tuple[int, int | None]] = {}
    for name, stage in ((CLIENT_SPAN, Stage.CLIENT), (ROUTER_SPAN, Stage.ROUTER),
                        (TRITON_REQUEST_SPAN, Stage.TRITON_HTTP), (MODEL_SPAN, Stage.MODEL_CODE)):
        cands = [s for s in spans if s.name == name]
        if cands:
            sp = max(cands, key=lambda s: s.start_ns)
            found[stage.value] = (sp.start_ns, sp.end_ns - sp.start_ns)
    events: dict[str, int] = {}
    for sp in spans:
        if sp.name == TRITON_COMPUTE_SPAN or any(e == "QUEUE_START" for e, _ in sp.events):
            events.update({e: t for e, t in sp.events})
    for event, stage in (("QUEUE_START", Stage.QUEUE), ("COMPUTE_START", Stage.COMPUTE_INPUT),
                         ("COMPUTE_INPUT_END", Stage.COMPUTE_INFER),
                         ("COMPUTE_OUTPUT_START", Stage.COMPUTE_OUTPUT)):
        if event in events:
            found[stage.value] = (events[event], None)
    origin = min(s.start_ns for s in spans)
    return {k: ((t - origin) / 1e9, None if d is None else d / 1e9)
            for k, (t, d) in found.items()}


def layout(chain: RequestChain, spans: Sequence[Span] = ()) -> list[StageBar]:
    """The stages present in ``chain``, outermost first; offsets measured from ``spans`` (the
    chain's kept raw spans) where they are given, reconstructed from the nesting elsewhere."""
    bars = _estimate(chain)
    measured = span_offsets(spans)
    out = []
    for b in bars:
        if b.stage in measured:
            start, span = measured[b.stage]
            b = dataclasses.replace(b, start=start, span=b.span if span is None else span,
                                    exact=True)
        out.append(b)
    return out


def _estimate(chain: RequestChain) -> list[StageBar]:
    inner = sum(_get(chain, s) or 0.0 for s in _SEQUENCE)
    # total span of each wrapper = its own time + everything it wraps
    wrapped = inner
    spans: dict[Stage, float] = {}
    owns: dict[Stage, float] = {}
    for s in reversed(_WRAPPERS):
        own = _get(chain, s)
        if own is None:
            continue
        # the client's recorded duration is the whole request; the others' is their own time
        spans[s] = max(own, wrapped) if s is Stage.CLIENT else own + wrapped
        wrapped = spans[s]
        owns[s] = own
    bars: list[StageBar] = []
    start = 0.0
    outer_span: float | None = None
    for s in _WRAPPERS:
        if s not in spans:
            continue
        if outer_span is not None:
            start += max(0.0, (outer_span - spans[s]) / 2)
        bars.append(StageBar(s.value, start, spans[s], owns[s]))
        outer_span = spans[s]
    if outer_span is not None:  # the sequence starts after the innermost wrapper's first half
        start += max(0.0, (outer_span - inner) / 2)
    infer_start = infer_len = None
    for s in _SEQUENCE:
        d = _get(chain, s)
        if d is None:
            continue
        if s is Stage.COMPUTE_INFER:
            infer_start, infer_len = start, d
        bars.append(StageBar(s.value, start, d, d))
        start += d
    model = _get(chain, Stage.MODEL_CODE)
    if model is not None:
        at = start if infer_start is None else infer_start + max(0.0, (infer_len or 0) - model) / 2
        bars.append(StageBar(Stage.MODEL_CODE.value, at, model, model))
    return bars


def _bar(b: StageBar, scale: float, width: int) -> str:
    """Spaces up to the start, then ``█`` for own time and ``░`` for wrapped children."""
    k = width / scale if scale > 0 else 0.0
    lead = round(b.start * k)
    own = round(b.own * k)
    child = max(0, round(b.span * k) - own) if b.span > b.own else 0
    before = own // 2 if child else own
    text = " " * lead + OWN * before + CHILD * child + OWN * (own - before)
    return text[:width].ljust(width)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _gpu_line(gpu: GpuReading | None) -> str:
    if gpu is None:
        return "gpu     no reading attached to this chain"
    kind = "SIMULATED twin" if gpu.simulated else "hardware"
    parts = [
        f"device {gpu.device or '?'} ({kind})",
        f"temperature {gpu.temperature_c:.1f} C",
        f"SM clock {gpu.sm_clock_mhz:.0f}/{gpu.sm_clock_max_mhz:.0f} MHz",
        f"utilisation {gpu.utilization * 100:.0f}%",
        f"memory used {gpu.memory_used_bytes / 2**30:.2f}/{gpu.memory_total_bytes / 2**30:.2f} GiB",
    ]
    if gpu.throttle_reasons:
        parts.append("throttled: " + ",".join(gpu.throttle_reasons))
    return "gpu     " + ", ".join(parts)


def render_chain(
    chain: RequestChain, width: int = BAR_WIDTH, spans: Sequence[Span] = ()
) -> list[str]:
    """The waterfall of one chain as lines of text (header, one line per stage, GPU).

    Pass the chain's kept raw ``spans`` (``Store.spans``) to place stages where they were."""
    when = datetime.fromtimestamp(chain.ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    lines = [
        f"trace {chain.trace_id}  {when} UTC  latency {_ms(chain.latency_s)} ms"
        + ("  ERROR" if chain.error else ""),
        f"model {chain.model or '?'}  variant {chain.variant or '?'}  replica "
        f"{chain.replica or '?'}  spans {chain.span_count}",
        f"{'stage':<15} {'offset ms':>10}  {'':{width + 2}} {'ms':>9}",
    ]
    bars = layout(chain, spans)
    scale = max([chain.latency_s, *(b.start + b.span for b in bars)], default=0.0)
    seen = {b.stage for b in bars}
    for b in bars:
        offset = _ms(b.start) if b.exact else "~" + _ms(b.start)
        lines.append(f"{b.stage:<15} {offset:>10}  |{_bar(b, scale, width)}| "
                     f"{_ms(b.own):>9}")
    missing = [s.value for s in Stage if s.value not in seen]
    if missing:
        lines.append("not seen: " + ", ".join(missing))
    lines.append(_gpu_line(chain.gpu))
    legend = f"{OWN} the stage's recorded time  {CHILD} the stages it wraps"
    if any(not b.exact for b in bars):
        legend += "  ~ offset reconstructed from the nesting (no raw spans kept)"
    lines.append(legend)
    return lines
