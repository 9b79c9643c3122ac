"""Unit tests of the router's parts that need no sockets: policies, ejection, EWMA, config."""

from __future__ import annotations

import collections
import importlib.util
import math
import random

import pytest
from pydantic import ValidationError

from serving.router.config import EjectionConfig, RouterConfig
from serving.router.policies import POLICIES, make_policy
from serving.router.replicas import ReplicaPool, ReplicaState
from serving.router.variants import VariantSplitter


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _replicas(*weights: float) -> list[ReplicaState]:
    return [ReplicaState(f"r{i}", f"http://h:{i}", w, healthy=True, now=0.0)
            for i, w in enumerate(weights)]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_idle_shares_follow_weights(name: str) -> None:
    replicas = _replicas(3.0, 1.0, 0.5)
    policy = make_policy(name, random.Random(7), FakeClock(), 10.0)
    counts = collections.Counter(policy.choose(replicas).name for _ in range(9000))
    total = 4.5
    for r in replicas:
        assert counts[r.name] / 9000 == pytest.approx(r.weight / total, abs=0.03), counts


def test_round_robin_is_exact_and_interleaved() -> None:
    replicas = _replicas(2.0, 1.0)
    policy = make_policy("round_robin", random.Random(0), FakeClock(), 10.0)
    seq = [policy.choose(replicas).name for _ in range(6)]
    assert seq.count("r0") == 4 and seq.count("r1") == 2
    assert "r0r0r0" not in "".join(seq)


def test_least_outstanding_avoids_the_busy_replica() -> None:
    replicas = _replicas(1.0, 1.0)
    replicas[0].outstanding = 5
    policy = make_policy("least_outstanding", random.Random(1), FakeClock(), 10.0)
    assert all(policy.choose(replicas).name == "r1" for _ in range(100))


def test_peak_ewma_prefers_fast_and_forgives_slowly() -> None:
    clock = FakeClock(0.0)
    replicas = _replicas(1.0, 1.0)
    replicas[0].observe_rtt(0.050, clock(), 1.0)
    replicas[1].observe_rtt(0.010, clock(), 1.0)
    policy = make_policy("peak_ewma", random.Random(2), clock, 1.0)
    assert all(policy.choose(replicas).name == "r1" for _ in range(50))
    # the slow estimate decays towards zero while unobserved; the fast one was just refreshed
    clock.t = 3.0
    replicas[1].observe_rtt(0.010, clock(), 1.0)
    assert replicas[0].ewma(clock(), 1.0) == pytest.approx(0.050 * math.exp(-3.0), rel=1e-6)
    assert policy.choose(replicas).name == "r0"


def test_peak_ewma_jumps_up_at_once_and_blends_down() -> None:
    r = _replicas(1.0)[0]
    r.observe_rtt(0.010, 0.0, 10.0)
    r.observe_rtt(0.100, 0.1, 10.0)
    assert r.rtt_estimate == pytest.approx(0.100)
    r.observe_rtt(0.010, 10.1, 10.0)  # one time constant later
    expected = 0.100 * math.exp(-1.0) + 0.010 * (1 - math.exp(-1.0))
    assert r.rtt_estimate == pytest.approx(expected)


def test_ejection_grows_and_needs_time_and_a_passing_check() -> None:
    clock = FakeClock(0.0)
    pool = ReplicaPool(EjectionConfig(consecutive_failures=3, base_ejection_s=10,
                                      max_ejection_s=25, max_ejection_percent=100), clock,
                       ewma_decay_s=10)
    r = pool.add("r0", "http://h:1", 1.0)
    pool.add("r1", "http://h:2", 1.0)
    assert not pool.record_failure(r) and not pool.record_failure(r)
    pool.record_success(r)  # a success resets the streak
    assert not pool.record_failure(r) and not pool.record_failure(r)
    assert pool.record_failure(r)
    assert r.ejected and r.ejected_until == 10 and [x.name for x in pool.available()] == ["r1"]
    clock.t = 5
    pool.record_check(r, True, healthy_threshold=1, unhealthy_threshold=1)
    assert r.ejected, "a passing check must not cut the ejection short"
    clock.t = 11
    assert r.ejected, "time alone does not re-admit while active checks are on"
    pool.record_check(r, True, healthy_threshold=1, unhealthy_threshold=1)
    assert not r.ejected and r.available
    for _ in range(3):
        pool.record_failure(r)
    assert r.ejected_until == 11 + 20  # second ejection: twice the base
    clock.t = 31
    pool.record_check(r, True, healthy_threshold=1, unhealthy_threshold=1)
    for _ in range(3):
        pool.record_failure(r)
    assert r.ejected_until == 31 + 25  # capped at max_ejection_s


def test_max_ejection_percent_keeps_replicas_in() -> None:
    pool = ReplicaPool(EjectionConfig(consecutive_failures=1, max_ejection_percent=50),
                       FakeClock(), ewma_decay_s=10)
    rs = [pool.add(f"r{i}", f"http://h:{i}", 1.0) for i in range(4)]
    assert [pool.record_failure(r) for r in rs] == [True, True, False, False]
    assert len(pool.available()) == 2
    small = ReplicaPool(EjectionConfig(consecutive_failures=1, max_ejection_percent=0),
                        FakeClock(), ewma_decay_s=10)
    a, b = small.add("a", "http://h:1", 1.0), small.add("b", "http://h:2", 1.0)
    assert small.record_failure(a) and not small.record_failure(b), "one may always go"


def test_ejection_without_active_checks_ends_with_time() -> None:
    clock = FakeClock(0.0)
    pool = ReplicaPool(EjectionConfig(consecutive_failures=1, base_ejection_s=5), clock,
                       ewma_decay_s=10)
    pool.active_checks = False
    r = pool.add("r0", "http://h:1", 1.0)
    pool.record_failure(r)
    assert pool.available() == []
    clock.t = 5
    assert pool.available() == [r]


def test_unhealthy_after_threshold_failed_checks() -> None:
    pool = ReplicaPool(EjectionConfig(), FakeClock(), ewma_decay_s=10)
    r = pool.add("r0", "http://h:1", 1.0)
    pool.record_check(r, False, healthy_threshold=2, unhealthy_threshold=2)
    assert r.healthy
    pool.record_check(r, False, healthy_threshold=2, unhealthy_threshold=2)
    assert not r.healthy
    pool.record_check(r, True, healthy_threshold=2, unhealthy_threshold=2)
    assert not r.healthy
    pool.record_check(r, True, healthy_threshold=2, unhealthy_threshold=2)
    assert r.healthy


def test_variant_splitter_fraction_and_validation() -> None:
    s = VariantSplitter({"mlp"}, {"mlp": 0.25}, random.Random(3))
    n = sum(s.to_lite("mlp") for _ in range(8000))
    assert n / 8000 == pytest.approx(0.25, abs=0.02)
    assert not s.to_lite("synth")
    s.set("mlp", 1)
    assert all(s.to_lite("mlp") for _ in range(100))
    s.set("mlp", 0)
    assert not any(s.to_lite("mlp") for _ in range(100))
    for bad in (-0.1, 1.5, float("nan"), True, "0.5", None):
        with pytest.raises(ValueError):
            s.set("mlp", bad)
    with pytest.raises(ValueError, match="no lite variant"):
        s.set("synth", 0.5)


@pytest.mark.parametrize("bad", [
    {"policy": "random"},
    {"replicas": [{"name": "r0", "url": "http://h:1"}, {"name": "r0", "url": "http://h:2"}]},
    {"replicas": [{"name": "r0", "url": "ftp://h"}]},
    {"replicas": [{"name": "r 0", "url": "http://h:1"}]},
    {"replicas": [{"name": "r0", "url": "http://h:1", "weight": -1}]},
    {"variant_split": {"mlp": 0.5}},
    {"lite_models": ["mlp"], "variant_split": {"mlp": 2}},
    {"timeout_s": 0},
    {"ejection": {"base_ejection_s": 10, "max_ejection_s": 5}},
    {"unknown_key": 1},
])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RouterConfig.model_validate(bad)


def test_config_defaults_and_url_normalised() -> None:
    cfg = RouterConfig(replicas=[{"name": "r0", "url": "http://127.0.0.1:8000/"}])
    assert cfg.replicas[0].url == "http://127.0.0.1:8000"
    assert cfg.max_body_bytes == 64 * 1024 * 1024 and cfg.policy == "peak_ewma"


def test_event_loop_is_uvloop_where_installed_and_asyncio_without(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from serving.router.thread import new_event_loop

    if importlib.util.find_spec("uvloop") is not None:
        loop = new_event_loop()
        assert type(loop).__module__.startswith("uvloop")
        loop.close()
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: import fails
    loop = new_event_loop()
    assert type(loop).__module__.startswith("asyncio")
    loop.close()
    with pytest.raises(ImportError):
        new_event_loop(True)
