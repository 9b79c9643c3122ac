"""The GPU twin's physics under an injected clock, and its clock feedback on real work."""

from __future__ import annotations

import math
import threading
import time

import pytest

from serving.gpu_twin import (
    GpuTwin,
    SimulatedCudaOOM,
    SimulatedXidError,
    TwinParams,
)

MIB = 1 << 20


class FakeClock:
    """Monotonic and wall clock at once; ``sleep`` advances it, as the stretch sleep would."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def make(params: TwinParams | None = None) -> tuple[GpuTwin, FakeClock]:
    clock = FakeClock()
    return GpuTwin("sim0", clock=clock, wall_clock=clock, sleep=clock.sleep, params=params), clock


def drive(twin: GpuTwin, clock: FakeClock, seconds: float, busy: float, gap: float,
          batch: int = 8) -> None:
    """Closed-loop executor: ``busy`` seconds of work then ``gap`` idle, for ``seconds``."""
    end = clock.t + seconds
    while clock.t < end:
        with twin.executing(batch, 1024):
            clock.t += busy
        clock.t += gap


def test_utilisation_follows_measured_busy_time():
    twin, clock = make()
    assert twin.reading().utilization == 0.0
    drive(twin, clock, 4.0, busy=0.003, gap=0.007)
    assert twin.reading().utilization == pytest.approx(0.3, abs=0.01)
    twin.record_busy(clock.t, clock.t + 1.0)  # work outside executing() counts too
    clock.t += 1.0
    assert twin.reading().utilization == pytest.approx(0.5 + 0.3 / 2, abs=0.01)
    clock.t += 5.0
    reading = twin.reading()
    assert reading.utilization == 0.0 and "GPU_IDLE" in reading.throttle_reasons
    assert reading.sm_clock_mhz == twin.params.sm_clock_idle_mhz
    with pytest.raises(ValueError):
        twin.record_busy(5.0, 4.0)


def test_temperature_lags_then_settles_below_slowdown_when_healthy():
    twin, clock = make()
    p = twin.params
    idle = p.ambient_c + p.thermal_resistance_c_per_w * p.idle_power_w
    full = p.ambient_c + p.thermal_resistance_c_per_w * p.tdp_w
    assert twin.reading().temperature_c == pytest.approx(idle)
    drive(twin, clock, p.thermal_time_constant_s, busy=0.05, gap=0.0)
    one_tau = twin.reading().temperature_c
    # First-order lag: one time constant covers 1 - 1/e of the way.
    assert one_tau == pytest.approx(idle + (full - idle) * (1 - math.exp(-1)), abs=1.0)
    drive(twin, clock, 8 * p.thermal_time_constant_s, busy=0.05, gap=0.0)
    settled = twin.reading()
    assert settled.temperature_c == pytest.approx(full, abs=0.5)
    assert settled.temperature_c < p.slowdown_c
    assert settled.power_w == pytest.approx(p.tdp_w, abs=1.0)
    assert settled.sm_clock_mhz == p.sm_clock_max_mhz and twin.stretch_factor() == 1.0
    assert settled.throttle_reasons == ()


def test_cooling_failure_throttles_and_stretches_execution():
    twin, clock = make()
    drive(twin, clock, 30.0, busy=0.04, gap=0.06)
    assert twin.stretch_factor() == 1.0
    twin.apply_faults({"cooling_failure": True})
    drive(twin, clock, 120.0, busy=0.04, gap=0.06)
    hot = twin.reading()
    assert hot.temperature_c > twin.params.slowdown_c
    assert "SW_THERMAL_SLOWDOWN" in hot.throttle_reasons
    assert hot.sm_clock_mhz < 0.8 * hot.sm_clock_max_mhz
    stretch = twin.stretch_factor()
    assert stretch == pytest.approx(hot.sm_clock_max_mhz / hot.sm_clock_mhz, rel=1e-3)
    # The stretch is really spent: 4 ms of work occupies the executor 4 ms * stretch.
    start = clock.t
    with twin.executing(8) as ex:
        clock.t += 0.004
    assert clock.t - start == pytest.approx(0.004 * ex.stretch)
    assert ex.reading is not None and ex.reading.simulated is True
    assert ex.reading.sm_clock_mhz == pytest.approx(ex.sm_clock_mhz, rel=1e-3)
    assert ex.extra_s == pytest.approx(0.004 * (ex.stretch - 1))
    # Busier because slower: utilisation rose from 0.4 with the same offered work.
    assert hot.utilization > 0.5
    twin.clear_faults()
    drive(twin, clock, 200.0, busy=0.04, gap=0.06)
    assert twin.reading().temperature_c < twin.params.slowdown_c
    assert twin.stretch_factor() == 1.0


def test_hot_twin_really_slows_a_real_workload():
    """Real clock, real sleep: a 20 ms job on a throttled twin takes measurably longer."""
    params = TwinParams(thermal_time_constant_s=0.05, util_window_s=0.2)
    healthy, hot = GpuTwin("cool", params=params), GpuTwin("hot", params=params)
    hot.apply_faults({"cooling_failure": 8.0})
    deadline = time.monotonic() + 5.0
    while hot.stretch_factor() < 2.5 and time.monotonic() < deadline:
        with hot.executing(8):
            time.sleep(0.01)
    assert hot.stretch_factor() >= 2.5

    def timed(twin: GpuTwin) -> tuple[float, float]:
        start = time.monotonic()
        with twin.executing(8) as ex:
            time.sleep(0.02)
        return time.monotonic() - start, ex.stretch

    cool_s, cool_stretch = timed(healthy)
    hot_s, hot_stretch = timed(hot)
    assert cool_stretch == 1.0 and hot_stretch >= 2.5
    assert hot_s >= 0.02 * hot_stretch * 0.99  # the stretch was really slept
    assert cool_s < hot_s * 0.7


def test_power_cap_lowers_the_clock_to_fit_the_limit():
    twin, clock = make()
    twin.apply_faults({"power_cap_w": 75})
    drive(twin, clock, 10.0, busy=0.01, gap=0.0)
    r = twin.reading()
    p = twin.params
    expected_clock = p.sm_clock_max_mhz * (75 - p.idle_power_w) / (p.tdp_w - p.idle_power_w)
    assert r.power_limit_w == 75.0 and r.power_w <= 75.0 + 1e-6
    assert r.sm_clock_mhz == pytest.approx(expected_clock, rel=1e-3)
    assert "SW_POWER_CAP" in r.throttle_reasons
    assert twin.stretch_factor() == pytest.approx(p.sm_clock_max_mhz / expected_clock, rel=1e-3)
    twin.clear_faults()
    assert twin.reading().power_limit_w == p.tdp_w and twin.stretch_factor() == 1.0


def test_memory_leak_ends_in_counted_oom_and_clear_recovers():
    params = TwinParams(memory_total_bytes=2048 * MIB)
    twin, clock = make(params)
    with twin.executing(8):
        clock.t += 0.01
    before = twin.reading()
    assert before.alloc_ooms == 0 and before.alloc_reserved_bytes > before.alloc_allocated_bytes
    twin.apply_faults({"memory_leak_mib_per_s": 200})
    clock.t += 4.0
    mid = twin.reading()
    assert mid.alloc_allocated_bytes == pytest.approx(before.alloc_allocated_bytes + 800 * MIB,
                                                      rel=0.01)
    clock.t += 30.0  # far past capacity: the leak fills what it can
    full = twin.reading()
    assert full.memory_used_bytes <= full.memory_total_bytes
    assert full.memory_used_bytes > 0.95 * full.memory_total_bytes
    for _ in range(2):
        with pytest.raises(SimulatedCudaOOM):
            with twin.executing(8):
                pytest.fail("body must not run when memory cannot be allocated")
    failed = twin.reading()
    assert failed.alloc_ooms == 2
    assert failed.alloc_retries >= 1  # the batch's cached segment was flushed for the leak first
    twin.clear_faults()
    with twin.executing(8):
        clock.t += 0.01
    after = twin.reading()
    assert after.alloc_ooms == 2  # a counter: it stays
    assert after.alloc_allocated_bytes < mid.alloc_allocated_bytes


def test_allocator_moves_with_batch_shapes_and_fragmentation_fault():
    uniform, clock_u = make()
    for _ in range(50):
        with uniform.executing(8):
            clock_u.t += 0.01
    varied, clock_v = make()
    for i in range(50):
        with varied.executing([1, 32, 4, 16, 2][i % 5]):
            clock_v.t += 0.01
    u, v = uniform.reading(), varied.reading()
    assert v.alloc_reserved_bytes > u.alloc_reserved_bytes  # cache grew to the high-water mark
    assert v.alloc_reserved_bytes >= 512 * MIB + 32 * 4 * MIB
    assert u.alloc_inactive_split_bytes > 0  # the last output splits its segment
    before = v.alloc_reserved_bytes
    varied.apply_faults({"fragmentation": True})
    for i in range(50):
        with varied.executing([1, 32, 4, 16, 2][i % 5]):
            clock_v.t += 0.01
    frag = varied.reading()
    assert frag.alloc_reserved_bytes > before
    assert frag.alloc_inactive_split_bytes > 10 * v.alloc_inactive_split_bytes
    varied.clear_faults()
    with varied.executing(1):
        clock_v.t += 0.01
    assert varied.reading().alloc_inactive_split_bytes < frag.alloc_inactive_split_bytes


def test_xid_79_fails_every_execution_until_reset_and_others_only_count():
    twin, clock = make()
    twin.apply_faults({"xid": 13})
    with twin.executing(1):
        clock.t += 0.01
    assert twin.reading().xid_errors == 1
    state = twin.apply_faults({"xid": 79})
    assert state["device_lost"] is True and state["xid_last"] == 79
    for _ in range(3):
        with pytest.raises(SimulatedXidError, match="fallen off the bus"):
            with twin.executing(1):
                pass
    twin.apply_faults({"xid": 79})  # same fault again: no new XID
    assert twin.reading().xid_errors == 2
    twin.clear_faults()
    with twin.executing(1):
        clock.t += 0.01
    assert twin.fault_state()["device_lost"] is False and twin.reading().xid_errors == 2


def test_faults_are_idempotent_and_validated():
    twin, clock = make()
    spec = {"cooling_failure": 3.0, "power_cap_w": 100, "memory_leak_mib_per_s": 1}
    first = twin.apply_faults(spec)
    assert twin.apply_faults(spec) == first
    assert first["cooling_failure"] == 3.0 and first["power_cap_w"] == 100.0
    state = twin.apply_faults({"power_cap_w": None})
    assert "power_cap_w" not in state and state["cooling_failure"] == 3.0
    for bad, match in [({"overheat": 1}, "unknown GPU fault 'overheat'"),
                       ({"power_cap_w": -5}, "power_cap_w"),
                       ({"cooling_failure": 0.5}, "cooling_failure"),
                       ({"xid": "79"}, "xid"),
                       ({"memory_leak_mib_per_s": math.inf}, "memory_leak_mib_per_s"),
                       ({"fragmentation": 2}, "fragmentation")]:
        with pytest.raises(ValueError, match=match):
            twin.apply_faults({"power_cap_w": 50, **bad})
    assert "power_cap_w" not in twin.fault_state()  # a bad spec changes nothing
    cleared = twin.clear_faults()
    assert twin.clear_faults() == cleared
    assert {k for k in cleared if k in spec} == set()
    with pytest.raises(ValueError):
        TwinParams(slowdown_c=120.0)


def test_deterministic_under_an_injected_clock():
    readings = []
    for _ in range(2):
        twin, clock = make()
        twin.apply_faults({"cooling_failure": True})
        drive(twin, clock, 20.0, busy=0.005, gap=0.005)
        readings.append(twin.reading())
    assert readings[0] == readings[1]


def test_thread_safe_under_concurrent_executors_and_readers():
    twin = GpuTwin("sim0", params=TwinParams(util_window_s=0.2))
    errors: list[BaseException] = []
    stop = threading.Event()

    def executor() -> None:
        try:
            for _ in range(40):
                with twin.executing(4):
                    time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            r = twin.reading()
            if not 0.0 <= r.utilization <= 1.0:
                errors.append(AssertionError(r.utilization))
            twin.apply_faults({"power_cap_w": 120})
            twin.clear_faults()

    threads = [threading.Thread(target=executor) for _ in range(3)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    stop.set()
    watcher.join(10)
    assert errors == []
    assert twin.reading().utilization > 0
