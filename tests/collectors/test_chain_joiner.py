"""Joining REAL captured spans (Triton JSON + PyTriton/SDK protobuf) into request chains."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from collectors.chains import ChainJoiner, build_chain, keep_by_trace_id
from collectors.otlp import decode_json, decode_protobuf
from warden.records import Span, Stage

FIX = Path(__file__).parents[1] / "fixtures" / "triton"


def real_spans() -> list[Span]:
    out: list[Span] = []
    for f in sorted(FIX.glob("otlp_*")):
        body = f.read_bytes()
        out.extend((decode_json(body) if f.suffix == ".json" else decode_protobuf(body)).spans)
    return out


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_real_triton_names_and_events() -> None:
    spans = real_spans()
    names = {s.name for s in spans}
    # what Triton 2.51 + PyTriton 0.7 really send (documented in collectors/chains.py)
    assert {"warden.client", "warden.router", "InferRequest", "mlp", "compute", "warden.model",
            "python_backend_execute", "proxy_inference_callable"} <= names
    compute = next(s for s in spans if s.name == "compute")
    assert [e[0] for e in compute.events] == [
        "COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END"]
    sched = next(s for s in spans if s.name == "mlp")
    assert "QUEUE_START" in [e[0] for e in sched.events]
    assert sched.attributes["triton.model_name"] == "mlp"
    assert len({s.trace_id for s in spans}) == 3


def test_real_spans_join_into_full_chains_with_consistent_stages() -> None:
    clock = Clock()
    j = ChainJoiner(clock=clock, settle_s=1.0, sample_rate=0.0, slow_threshold_s=10.0)
    j.add(real_spans())
    assert j.poll() == []  # not settled yet
    clock.t = 1.0
    joined = j.poll()
    assert len(joined) == 3 and len(j) == 0
    for item in joined:
        c = item.chain
        assert item.spans is None  # fast, ok, not sampled: summary only
        assert (c.model, c.variant, c.replica) == ("mlp", "full", "r0")
        assert set(c.stages) == {s.value for s in Stage}
        assert c.latency_s == c.stages["client"] and c.span_count == 8
        inner = sum(c.stages[s] for s in ("router", "triton_http", "queue", "compute_input",
                                          "compute_infer", "compute_output"))
        assert 0 < inner <= c.latency_s
        assert c.stages["model_code"] <= c.stages["compute_infer"]
        assert c.gpu is not None and c.gpu.simulated and c.gpu.temperature_c == 61.5
        assert c.gpu.device == "sim0" and c.gpu.replica == "r0"


def test_out_of_order_arrival_gives_the_same_chain() -> None:
    spans = real_spans()
    shuffled = spans[:]
    random.Random(7).shuffle(shuffled)
    c1, c2 = Clock(), Clock()
    a, b = ChainJoiner(clock=c1, settle_s=0.0), ChainJoiner(clock=c2, settle_s=0.0)
    a.add(spans)
    for s in shuffled:
        b.add([s])
    ca = sorted((x.chain for x in a.poll()), key=lambda c: c.trace_id)
    cb = sorted((x.chain for x in b.poll()), key=lambda c: c.trace_id)
    assert ca == cb


def test_late_model_spans_reopen_and_reemit_the_chain() -> None:
    spans = real_spans()
    early = [s for s in spans if s.service != "warden-replica-r0" or s.name in
             ("InferRequest", "mlp", "compute")]
    late = [s for s in spans if s not in early]  # PyTriton's batch exporter: 5 s later
    clock = Clock()
    j = ChainJoiner(clock=clock, settle_s=1.0)
    j.add(early)
    clock.t = 1.5
    first = {x.chain.trace_id: x for x in j.poll()}
    assert all("model_code" not in x.chain.stages for x in first.values())
    clock.t = 5.0
    j.add(late)
    assert j.late_spans == 3
    clock.t = 6.5
    second = j.poll()
    assert len(second) == 3 and all(x.reemitted for x in second)
    assert all(x.chain.stages.get("model_code") for x in second)
    assert all(x.chain.span_count == 8 for x in second)


def test_unrooted_trace_waits_for_timeout() -> None:
    triton_only = [s for s in real_spans() if s.name in ("InferRequest", "mlp", "compute")]
    clock = Clock()
    j = ChainJoiner(clock=clock, settle_s=1.0, timeout_s=10.0)
    j.add(triton_only)  # InferRequest's parent (the router span) never arrives
    clock.t = 5.0
    assert j.poll() == []
    clock.t = 10.0
    out = j.poll()
    assert len(out) == 3
    c = out[0].chain
    assert c.replica == "r0"  # from service.name warden-replica-r0
    assert c.latency_s == pytest.approx(c.stages["triton_http"] + c.stages["queue"]
                                        + c.stages["compute_input"] + c.stages["compute_infer"]
                                        + c.stages["compute_output"], abs=2e-4)


def _span(tid: str, sid: str, parent: str, name: str, dur_ms: float, error: bool = False) -> Span:
    return Span(tid, sid, parent, name, "svc", 10**18, 10**18 + int(dur_ms * 1e6),
                {"warden.model": "synth", "warden.variant": "lite", "warden.replica": "r2"},
                (), error)


def test_slow_and_failed_chains_kept_whole_rest_sampled() -> None:
    clock = Clock()
    j = ChainJoiner(clock=clock, settle_s=0.0, slow_threshold_s=0.1, sample_rate=0.0)
    j.add([_span("a" * 32, "1" * 16, "", "warden.client", 500)])  # slow
    j.add([_span("b" * 32, "2" * 16, "", "warden.client", 5, error=True)])  # failed
    j.add([_span("c" * 32, "3" * 16, "", "warden.client", 5)])  # fast, fine
    out = {x.chain.trace_id[0]: x for x in j.poll()}
    assert out["a"].spans is not None and out["b"].spans is not None and out["c"].spans is None
    assert out["b"].chain.error and out["a"].chain.variant == "lite"


def test_sampling_is_deterministic_and_near_rate() -> None:
    rng = random.Random(1)
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(20_000)]
    kept = [keep_by_trace_id(t, 0.1) for t in ids]
    assert kept == [keep_by_trace_id(t, 0.1) for t in ids]
    assert 0.09 < sum(kept) / len(kept) < 0.11
    assert keep_by_trace_id(ids[0], 1.0) and not keep_by_trace_id(ids[0], 0.0)


def test_router_minus_child_and_duplicates() -> None:
    spans = [
        _span("d" * 32, "1" * 16, "", "warden.router", 10),
        _span("d" * 32, "2" * 16, "1" * 16, "InferRequest", 7),
    ]
    c = build_chain("d" * 32, spans)
    assert c.stages["router"] == pytest.approx(0.003)
    assert c.stages["triton_http"] == pytest.approx(0.007)
    assert "client" not in c.stages and c.latency_s == pytest.approx(0.010)
    j = ChainJoiner(clock=Clock(), settle_s=0.0)
    j.add(spans)
    j.add(spans[:1])
    assert j.duplicate_spans == 1 and j.poll()[0].chain.span_count == 2


def test_bounded_memory_evicts_oldest() -> None:
    clock = Clock()
    j = ChainJoiner(clock=clock, settle_s=100.0, max_traces=2)
    for i in range(4):
        j.add([_span(f"{i + 1:032x}", "1" * 16, "", "warden.client", 1)])
    out = j.poll()
    assert j.evicted == 2 and len(out) == 2 and len(j) == 2
    with pytest.raises(ValueError):
        ChainJoiner(sample_rate=2.0)


def test_router_stage_needs_its_triton_child() -> None:
    """A request the router did not send deep has no Triton spans: its router span holds the
    replica's time too, so the chain gets its latency and labels but no router stage."""
    spans = [
        _span("e" * 32, "3" * 16, "", "warden.client", 12),
        _span("e" * 32, "1" * 16, "3" * 16, "warden.router", 10),
    ]
    c = build_chain("e" * 32, spans)
    assert "router" not in c.stages and c.stages["client"] == pytest.approx(0.012)
    assert c.latency_s == pytest.approx(0.012)


def _router(tid: str, sid: str, parent: str, deep: bool | None) -> Span:
    attrs = {"warden.model": "synth", "warden.replica": "r0"}
    if deep is not None:
        attrs["warden.deep"] = deep
    return Span(tid, sid, parent, "warden.router", "warden-router", 10**18, 10**18 + 3_000_000,
                attrs)


def test_shallow_trace_is_emitted_without_waiting_for_replica_spans() -> None:
    """The router kept the context from the replica (``warden.deep`` false): no Triton span can
    follow, so the chain goes out as soon as its root is in, not ``settle_s`` later."""
    clock = Clock()
    j = ChainJoiner(clock=clock, settle_s=2.0)
    client = _span("a" * 32, "1" * 16, "", "warden.client", 4)
    j.add([_router("a" * 32, "2" * 16, "1" * 16, deep=False)])
    assert j.poll() == []  # root not in yet: the client span may still bring the latency
    j.add([client])
    (out,) = j.poll()
    assert out.chain.replica == "r0" and out.chain.latency_s == pytest.approx(0.004)
    # deep, or a router that does not say: the settle time still guards the replica's spans
    for tid, deep in (("b" * 32, True), ("c" * 32, None)):
        j.add([_router(tid, "2" * 16, "1" * 16, deep=deep), _span(tid, "1" * 16, "",
                                                                 "warden.client", 4)])
    assert j.poll() == []
    clock.t += 2.0
    assert len(j.poll()) == 2


def _stretched(span: Span, by_ns: int, events: tuple[str, ...] = ()) -> Span:
    """``span`` ending ``by_ns`` later, with the named events stamped that much later too."""
    return dataclasses.replace(
        span, end_ns=span.end_ns + by_ns,
        events=tuple((n, t + by_ns if n in events else t) for n, t in span.events))


@pytest.mark.parametrize("late_ms", [0.3, 2.0, 50.0])
def test_triton_spans_that_outlast_the_router_are_fitted_into_it(late_ms: float) -> None:
    """On a busy host Triton stamps COMPUTE_END and HTTP_SEND_END after the router already has
    the reply: that tail is not on the request's path, so the server-side stages still add up
    to the router's span and none goes negative, however late the stamps are."""
    captured = real_spans()
    spans = [s for s in captured if s.trace_id == captured[0].trace_id]
    router = next(s for s in spans if s.name == "warden.router")
    late = int(late_ms * 1e6) + max(s.end_ns for s in spans) - router.end_ns
    stretched = [_stretched(s, late) if s.name == "InferRequest"
                 else _stretched(s, late, ("COMPUTE_END",)) if s.name == "compute"
                 else _stretched(s, late) if s.name in ("mlp", "python_backend_execute") else s
                 for s in spans]
    on_time = build_chain(router.trace_id, spans).stages
    fitted = build_chain(router.trace_id, stretched).stages
    server = ("router", "triton_http", "queue", "compute_input", "compute_infer",
              "compute_output")
    assert sum(fitted[s] for s in server) == pytest.approx(router.duration_s, abs=1e-9)
    assert sum(on_time[s] for s in server) == pytest.approx(router.duration_s, abs=1e-9)
    assert all(fitted[s] >= 0 for s in server)
    assert fitted["router"] == 0.0  # the InferRequest fills the router's whole span
    assert fitted["queue"] == on_time["queue"]  # trimmed from the end, not the start
    assert fitted["model_code"] <= fitted["compute_infer"]
    assert sum(fitted[s] for s in server) <= fitted["client"]
