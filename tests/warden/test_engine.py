"""The engine loop: fixed-grid ticks without drift, skipped slots, errors that never stop it."""

from __future__ import annotations

from pathlib import Path

import pytest

from warden.engine import Engine
from warden.records import GpuReading, Sample, freeze_labels
from warden.store import Store


class FakeTime:
    """A monotonic clock that advances only when the engine sleeps or a collector works."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class CountingCollector:
    def __init__(self, time: FakeTime, cost_s: float = 0.0) -> None:
        self.time, self.cost_s, self.calls = time, cost_s, []

    def collect(self, now: float):
        self.calls.append(self.time.t)
        self.time.t += self.cost_s
        yield Sample("up", freeze_labels({"replica": "r0"}), now, 1.0)
        yield GpuReading(ts=now, device="sim0", simulated=True, temperature_c=50, power_w=70,
                         power_limit_w=150, sm_clock_mhz=1695, sm_clock_max_mhz=1695,
                         mem_clock_mhz=6251, utilization=0.4, memory_used_bytes=1e9,
                         memory_total_bytes=24e9, replica="r0")


class Broken:
    def collect(self, now: float):
        raise RuntimeError("scrape exploded")


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "w.db")


def test_ticks_stay_on_the_grid_whatever_each_tick_costs(store: Store) -> None:
    t = FakeTime()
    collector = CountingCollector(t, cost_s=0.3)
    engine = Engine(store, [collector], interval_s=1.0, clock=lambda: t.t,
                    monotonic=t.monotonic, sleep=t.sleep)
    engine.run(ticks=5)
    assert collector.calls == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
    assert engine.skipped_ticks == 0


def test_an_overrun_skips_missed_slots_instead_of_bursting(store: Store) -> None:
    t = FakeTime()
    collector = CountingCollector(t, cost_s=2.5)
    engine = Engine(store, [collector], interval_s=1.0, clock=lambda: t.t,
                    monotonic=t.monotonic, sleep=t.sleep)
    engine.run(ticks=3)
    assert collector.calls == [1000.0, 1003.0, 1006.0]
    assert engine.skipped_ticks == 6  # two slots lost after each of the three ticks


def test_failures_are_counted_and_the_rest_of_the_tick_still_runs(store: Store) -> None:
    t = FakeTime()
    seen: list[float] = []

    def bad_hook(now: float) -> None:
        raise ValueError("detector bug")

    engine = Engine(store, [Broken(), CountingCollector(t)], hooks=[bad_hook, seen.append],
                    clock=lambda: t.t, monotonic=t.monotonic, sleep=t.sleep)
    report = engine.tick()
    assert report.samples == 1 and report.gpu_readings == 1
    assert seen == [1000.0]
    assert engine.errors["collector:Broken"] == 1
    assert any(k.startswith("hook:") for k in engine.errors)
    assert len(store.series("up")) == 1
    assert len(store.gpu_readings()) == 1


def test_interval_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Engine(store, [], interval_s=0)


def test_a_paused_engine_keeps_its_grid_but_collects_nothing(store: Store) -> None:
    t = FakeTime()
    collector = CountingCollector(t)
    engine = Engine(store, [collector], interval_s=1.0, clock=lambda: t.t,
                    monotonic=t.monotonic, sleep=t.sleep)
    engine.run(ticks=2)
    engine.pause()
    engine.run(ticks=3)
    engine.resume()
    engine.run(ticks=1)
    assert collector.calls == [1000.0, 1001.0, 1005.0]
    assert engine.ticks == 3
