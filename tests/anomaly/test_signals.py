"""Signal rules through the alert rules: fire on the fault, quiet when healthy and on one blip,
resolve after the fault.

The GPU cases run on the real GPU twin under a fake clock (its physics, its clocks-event
reasons), the hung and saturation cases on observations shaped as the lab recorded them
(router state, scrapes, utilisation and Triton queue time during a SIGSTOP and a surge).
"""

from __future__ import annotations

import dataclasses

import pytest

from anomaly.rules import RuleEvaluator
from anomaly.signals import (
    SIGNAL_RULES,
    HungRule,
    ReplicaLoad,
    ReplicaStatus,
    SaturationRule,
    ThrottleRule,
)
from serving.gpu_twin import GpuTwin
from warden.records import GpuReading

T0 = 1_800_000_000.0


def transitions(ev: RuleEvaluator, detector: str, scores: list[tuple[dict, float]],
                dt: float = 1.0) -> list[tuple[float, str, str]]:
    """Feed one (labels, score) per tick; returns (tick time, status, replica-or-model)."""
    out = []
    for i, (labels, score) in enumerate(scores):
        for a in ev.observe(detector, labels, T0 + i * dt, score, {"why": "test"}):
            lb = dict(a.labels)
            out.append((i * dt, a.status.value, lb.get("replica", lb.get("model", ""))))
    return out


# -- ReplicaHung -----------------------------------------------------------------------------

OK = ReplicaStatus("r0", healthy=True, scraped=True)


def hung_ticks(r1_states: list[tuple[bool, bool | None]], peer: ReplicaStatus = OK
               ) -> list[tuple[dict, float]]:
    rule = HungRule()
    out = []
    for healthy, scraped in r1_states:
        scores = rule.score([peer, ReplicaStatus("r1", healthy=healthy, scraped=scraped,
                                                 outstanding=0 if healthy else 96)])
        assert scores["r0"].value == 0.0  # the peer that answers is never blamed
        out.append(({"model": "synth", "replica": "r1"}, scores["r1"].value))
    return out


def test_a_silent_replica_fires_after_for_and_resolves_once_it_answers():
    ev = RuleEvaluator(SIGNAL_RULES)
    # SIGSTOP: the router marks it unhealthy after two missed checks, our scrape times out
    ticks = hung_ticks([(True, True)] * 3 + [(False, False)] * 8 + [(True, True)] * 12)
    assert transitions(ev, "replica_hung", ticks) == [(5.0, "firing", "r1"),
                                                      (21.0, "resolved", "r1")]


def test_evidence_names_both_observers():
    (score, ev) = HungRule().score([OK, ReplicaStatus("r1", healthy=False, scraped=False,
                                                      ejected=True, outstanding=96,
                                                      last_chain_age_s=9.3)])["r1"]
    assert score == 1.0
    assert ev["router_healthy"] is False and ev["metrics_scrape"] == "failed"
    assert ev["outstanding"] == 96 and ev["answering_peers"] == "r0"
    assert ev["last_chain_age_s"] == 9.3


def test_one_silent_tick_does_not_fire():
    ev = RuleEvaluator(SIGNAL_RULES)
    ticks = hung_ticks([(True, True), (False, False), (True, True), (False, False), (True, True)]
                       * 4)
    assert transitions(ev, "replica_hung", ticks) == []


@pytest.mark.parametrize("healthy, scraped", [
    (False, True),   # the router's check failed but it answers Warden: slow, or erroring
    (True, False),   # one scrape timed out, the router still gets answers
    (False, None),   # never scraped yet (a replica just added): no evidence it is silent
])
def test_one_observer_alone_is_not_a_hang(healthy, scraped):
    ev = RuleEvaluator(SIGNAL_RULES)
    assert transitions(ev, "replica_hung", hung_ticks([(healthy, scraped)] * 20)) == []


def test_every_replica_silent_blames_no_replica():
    """The host or the network stalled: paging (and restarting) each replica would be wrong."""
    down = ReplicaStatus("r0", healthy=False, scraped=False)
    ev = RuleEvaluator(SIGNAL_RULES)
    assert transitions(ev, "replica_hung", hung_ticks([(False, False)] * 20, peer=down)) == []


def test_a_lone_replica_can_hang():
    scores = HungRule().score([ReplicaStatus("r0", healthy=False, scraped=False)])
    assert scores["r0"].value == 1.0


# -- GpuThrottling ---------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def twin_readings(faults: list[tuple[float, dict | None]], seconds: int, util: float = 0.3
                  ) -> list[GpuReading]:
    """One reading a second from a twin busy ``util`` of the time; ``faults`` are applied
    (``None``: cleared) at their second, as the chaos fault does over HTTP."""
    clock = FakeClock()
    twin = GpuTwin("sim0", clock=clock, wall_clock=clock, sleep=clock.sleep, replica="r0")
    pending = sorted(faults, key=lambda f: f[0])
    out = []
    for sec in range(seconds):
        while pending and pending[0][0] <= sec:
            spec = pending.pop(0)[1]
            twin.apply_faults(spec) if spec else twin.clear_faults()
        end = clock.t + 1.0
        while clock.t < end - 1e-9:  # 10 executions a second, each busy util/10 s
            with twin.executing(4):
                clock.t += util / 10
            clock.t += (1.0 - util) / 10
        out.append(twin.reading())
    return out


def throttle_transitions(readings: list[GpuReading]) -> list[tuple[float, str, str]]:
    rule, ev = ThrottleRule(), RuleEvaluator(SIGNAL_RULES)
    labels = {"model": "synth", "replica": "r0", "device": "sim0"}
    return transitions(ev, "gpu_throttling", [(labels, rule.score(r).value) for r in readings])


def test_cooling_failure_fires_while_hot_and_resolves_once_cooled():
    # the rb_gpu_throttling fault (cooling x12) at 5 s, reverted at 40 s
    readings = twin_readings([(5, {"cooling_failure": 12.0}), (40, None)], 90)
    events = throttle_transitions(readings)
    assert [e[1] for e in events] == ["firing", "resolved"]
    fired, resolved = events[0][0], events[1][0]
    assert 5 < fired <= 5 + 12  # heats past the 87 C slowdown within seconds, then for_s
    assert 40 < resolved <= 40 + 35  # cools under it, then clear_for_s
    hot = next(r for r in readings[15:] if "SW_THERMAL_SLOWDOWN" in r.throttle_reasons)
    assert ThrottleRule().score(hot).evidence["temperature_c"] >= 87


def test_a_healthy_busy_card_never_fires():
    assert throttle_transitions(twin_readings([], 60, util=0.9)) == []


def test_a_power_limit_that_trims_a_few_percent_is_not_throttling():
    """A busy card at its power limit (what a real H200 reports at full load) is normal; a
    clock pulled far down by a power cap is throttling."""
    base = twin_readings([], 1)[0]
    trimmed = dataclasses.replace(base, throttle_reasons=("SW_POWER_CAP",),
                                  sm_clock_mhz=base.sm_clock_max_mhz * 0.95)
    capped = dataclasses.replace(trimmed, sm_clock_mhz=base.sm_clock_max_mhz * 0.3)
    assert ThrottleRule().score(trimmed).value == 0.0
    assert ThrottleRule().score(capped).value == 1.0
    power_capped = twin_readings([(2, {"power_cap_w": 40.0})], 10, util=0.9)[-1]
    assert ThrottleRule().score(power_capped).value == 1.0  # the gpu_power_cap fault


def test_one_hot_reading_does_not_fire():
    cool = twin_readings([], 1)[0]
    hot = dataclasses.replace(cool, throttle_reasons=("SW_THERMAL_SLOWDOWN",), sm_clock_mhz=900.0)
    assert throttle_transitions([cool, hot, cool, cool, hot, cool] * 3) == []


def test_throttle_rule_validates_its_parameter():
    with pytest.raises(ValueError, match="clock_ratio_below"):
        ThrottleRule(clock_ratio_below=0.0)


# -- ModelSaturated --------------------------------------------------------------------------

def loads(util: float, queue_s: float, *, r1: tuple[float, float] | None = None
          ) -> list[ReplicaLoad]:
    u1, q1 = r1 if r1 is not None else (util, queue_s)
    return [ReplicaLoad("r0", util, queue_s, 10.0), ReplicaLoad("r1", u1, q1, 12.0)]


# Recorded in the engine lab (synth at 12 ms per item, 2 replicas): calm at 40 req/s, then a
# 150 req/s surge: GPU utilisation and Triton's mean queue time per tick.
CALM = [(0.33, 0.004), (0.29, 0.003), (0.30, 0.007), (0.25, 0.005)]
SURGE = [(0.63, 0.070), (0.92, 0.152), (0.93, 0.229), (0.94, 0.248), (0.91, 0.542),
         (0.93, 0.732), (0.90, 0.952), (0.91, 1.151), (0.95, 1.281), (0.90, 1.398)]
DRAINED = [(0.77, 0.383), (0.47, 0.005), (0.36, 0.004), (0.33, 0.002)] + [(0.33, 0.003)] * 10


def saturation_transitions(series: list[list[ReplicaLoad]]) -> list[tuple[float, str, str]]:
    rule, ev = SaturationRule(), RuleEvaluator(SIGNAL_RULES)
    return transitions(ev, "model_saturated",
                       [({"model": "synth"}, rule.score(x).value) for x in series])


def test_a_surge_past_capacity_fires_and_resolves_after_it_drains():
    series = [loads(u, q) for u, q in CALM + SURGE + DRAINED]
    events = saturation_transitions(series)
    assert [e[1:] for e in events] == [("firing", "synth"), ("resolved", "synth")]
    assert events[0][0] <= len(CALM) + 5  # util and queue up from the surge's 2nd second
    assert events[1][0] >= len(CALM) + len(SURGE)


def test_one_hot_replica_among_calm_peers_is_not_saturation():
    """A throttled or slowed replica queues alone: routing fixes that, not scaling."""
    series = [loads(u, q, r1=(0.35, 0.006)) for u, q in CALM + SURGE + SURGE]
    assert saturation_transitions(series) == []


def test_busy_without_queueing_or_queueing_without_busy_is_not_saturation():
    assert saturation_transitions([loads(0.97, 0.01)] * 20) == []  # busy, batches keep up
    assert saturation_transitions([loads(0.40, 0.50)] * 20) == []  # a stall, not load


def test_a_single_saturated_tick_does_not_fire():
    series = [loads(u, q) for u, q in CALM + [(0.95, 0.4)] + CALM * 3]
    assert saturation_transitions(series) == []


def test_replicas_without_data_are_left_out():
    rule = SaturationRule()
    got = rule.score([ReplicaLoad("r0", 0.95, 0.3), ReplicaLoad("r2", None, None)])
    assert got.value == pytest.approx(min(1.0, min(0.95 / 0.85, 0.3 / 0.05) / 2))
    assert got.evidence["replicas"] == "r0" and "pending_requests" not in got.evidence
    assert rule.score([ReplicaLoad("r2", None, 0.3)]).value == 0.0


@pytest.mark.parametrize("kwargs, msg", [({"util_at": 0.0}, "util_at"),
                                         ({"queue_at_s": float("inf")}, "queue_at_s")])
def test_saturation_rule_validates_its_parameters(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        SaturationRule(**kwargs)
