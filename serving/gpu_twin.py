"""A simulated GPU that behaves like one card under the replica's real load.

With no GPU in the lab, detectors and runbooks still need GPU signals that *act* like a GPU: a
thermal fault must really slow the model and really move P99. So the twin is driven by the
replica's measured busy time, and feeds its clock back into the model's execution time.

The physics, kept small (defaults resemble an A10: 150 W, 1695 MHz, 24 GiB):

* utilisation: busy fraction of the model executor over a sliding window (in-flight work counts);
* power: ``idle + (tdp - idle) * util * clock / clock_max``, never above the power limit;
* temperature: first-order lag toward ``ambient + R * power`` with time constant ``tau``;
* SM clock: full until ``slowdown_c``, then linear down to a floor at ``clock_floor_c``; a power
  cap lowers the running clock so that full-load power fits the limit. Since a hot GPU draws less
  at a lower clock, a cooling failure settles in the throttle band, as hardware does;
* execution is stretched by ``clock_max / clock``: :meth:`GpuTwin.executing` sleeps the extra
  ``(stretch - 1) * busy`` after the real work, so the replica really gets slower;
* memory: a caching allocator in miniature (:mod:`serving.gpu_twin_memory`): allocated,
  reserved, inactive-split (fragmentation), retries and OOMs move with batch shapes.

Faults (:meth:`GpuTwin.apply_faults`, idempotent; :meth:`GpuTwin.clear_faults` is the reset):
``cooling_failure`` (factor on the thermal resistance, ``True`` = default), ``power_cap_w``,
``memory_leak_mib_per_s``, ``fragmentation`` (outputs never freed), ``xid`` (an XID code; 79,
"fallen off the bus", makes every execution fail until the reset; others are only counted).

The twin is deterministic under an injected clock and sleep, and thread-safe: the replica's
executor thread and a control endpoint may call it at once. No lock is held while sleeping.

Errors (from :mod:`serving.gpu_twin_memory`): ``SimulatedGpuError`` and its
``SimulatedCudaOOM`` and ``SimulatedXidError``, raised before the model's body runs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from serving.gpu_twin_memory import (
    Segment,
    SimulatedCudaOOM,
    SimulatedGpuError,
    SimulatedXidError,
    TwinMemory,
    round_up,
)
from warden.records import GpuReading

__all__ = [
    "Execution",
    "FAULT_KEYS",
    "GpuTwin",
    "SimulatedCudaOOM",
    "SimulatedGpuError",
    "SimulatedXidError",
    "TwinParams",
]

MIB = 1 << 20
GIB = 1 << 30
XID_FALLEN_OFF_BUS = 79
FAULT_KEYS = ("cooling_failure", "fragmentation", "memory_leak_mib_per_s", "power_cap_w", "xid")
_MAX_STEP_S = 0.5  # integration step: small against tau, so the clock/temperature loop is stable
_MAX_STEPS = 400

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TwinParams:
    """Physical constants of one simulated card; defaults resemble an NVIDIA A10."""

    tdp_w: float = 150.0
    idle_power_w: float = 20.0
    sm_clock_max_mhz: float = 1695.0
    sm_clock_idle_mhz: float = 210.0
    sm_clock_floor_mhz: float = 300.0
    mem_clock_mhz: float = 6251.0
    memory_total_bytes: int = 24 * GIB
    context_bytes: int = 300 * MIB  # CUDA context: used per NVML, invisible to the allocator
    weights_bytes: int = 512 * MIB
    bytes_per_item: int = 4 * MIB  # activations and workspace per batch item
    output_bytes_per_item: int = 64 * 1024
    segment_bytes: int = 2 * MIB  # the caching allocator rounds large segments so
    ambient_c: float = 30.0
    thermal_resistance_c_per_w: float = 0.3  # 75 C at full load with healthy cooling
    thermal_time_constant_s: float = 25.0
    slowdown_c: float = 87.0
    hw_slowdown_c: float = 92.0
    clock_floor_c: float = 100.0  # where the thermal ramp reaches the floor clock
    util_window_s: float = 2.0
    cooling_failure_factor: float = 5.0

    def __post_init__(self) -> None:
        for name in ("tdp_w", "sm_clock_max_mhz", "sm_clock_floor_mhz", "memory_total_bytes",
                     "thermal_resistance_c_per_w", "thermal_time_constant_s", "util_window_s",
                     "segment_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TwinParams.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.idle_power_w < self.tdp_w:
            raise ValueError("TwinParams.idle_power_w must be in [0, tdp_w)")
        if not self.sm_clock_floor_mhz <= self.sm_clock_max_mhz:
            raise ValueError("TwinParams.sm_clock_floor_mhz must be <= sm_clock_max_mhz")
        if not self.slowdown_c < self.clock_floor_c:
            raise ValueError("TwinParams.slowdown_c must be < clock_floor_c")
        if self.context_bytes + self.weights_bytes >= self.memory_total_bytes:
            raise ValueError("TwinParams: context and weights do not fit in memory_total_bytes")


@dataclass(slots=True)
class Execution:
    """What one :meth:`GpuTwin.executing` block did; filled in when the block exits."""

    batch_size: int
    need_bytes: int
    start: float
    busy_s: float = 0.0
    stretch: float = 1.0
    extra_s: float = 0.0
    sm_clock_mhz: float = 0.0
    reading: GpuReading | None = None  # the device as the batch ended, for the model's span
    _segment: Segment | None = field(default=None, repr=False)


class GpuTwin:
    """One simulated device. All times come from ``clock`` (monotonic seconds)."""

    def __init__(
        self,
        device: str = "sim0",
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        params: TwinParams | None = None,
        replica: str = "",
    ) -> None:
        self.device = device
        self.replica = replica
        self.params = params or TwinParams()
        self._clock, self._wall, self._sleep = clock, wall_clock, sleep
        self._lock = threading.RLock()
        self._t = clock()
        self._temp = self._equilibrium_idle()
        self._busy: deque[tuple[float, float]] = deque()
        self._busy_total = 0.0
        self._inflight: dict[int, float] = {}
        p = self.params
        self._mem = TwinMemory(device, capacity=p.memory_total_bytes - p.context_bytes,
                               weights_bytes=p.weights_bytes, segment_bytes=p.segment_bytes)
        self._xid_count = 0
        self._xid_last = 0
        self._faults: dict[str, Any] = {}

    # ---------------------------------------------------------------- load: executions
    @contextmanager
    def executing(self, batch_size: int = 1, input_bytes: int = 0) -> Iterator[Execution]:
        """Wrap the model's real work for one batch.

        Raises :class:`SimulatedXidError` when the device is lost and :class:`SimulatedCudaOOM`
        when the workspace does not fit, both before the body runs. After the body, sleeps the
        clock-stretch extra, records the busy time and frees the workspace.
        """
        if batch_size < 0 or input_bytes < 0:
            raise ValueError("batch_size and input_bytes must be >= 0")
        p = self.params
        need = round_up(max(batch_size * p.bytes_per_item + input_bytes, 1), 512)
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._xid_last == XID_FALLEN_OFF_BUS:
                raise SimulatedXidError(f"{self.device}: XID 79, GPU has fallen off the bus")
            ex = Execution(batch_size, need, now)
            ex._segment = self._mem.allocate(
                need, fragmentation="fragmentation" in self._faults)
            ex.stretch = self._stretch(self._temp)
            ex.sm_clock_mhz = p.sm_clock_max_mhz / ex.stretch
            self._inflight[id(ex)] = now
        try:
            yield ex
        finally:
            busy = max(0.0, self._clock() - ex.start)
            with self._lock:  # the stretch is taken at the end: a GPU heating mid-batch slows it
                self._advance(self._clock())
                ex.stretch = self._stretch(self._temp)
                ex.sm_clock_mhz = p.sm_clock_max_mhz / ex.stretch
            ex.busy_s, ex.extra_s = busy, (ex.stretch - 1.0) * busy
            if ex.extra_s > 0:
                self._sleep(ex.extra_s)
            with self._lock:
                end = self._clock()
                self._advance(end)
                self._inflight.pop(id(ex), None)
                self._add_busy(ex.start, end)
                self._mem.release(ex._segment, batch_size * p.output_bytes_per_item)
                ex._segment = None
                ex.reading = self.reading()

    def run(self, fn: Callable[..., T], *args: Any, batch_size: int = 1, input_bytes: int = 0,
            **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` inside :meth:`executing`; returns its result."""
        with self.executing(batch_size, input_bytes):
            return fn(*args, **kwargs)

    def record_busy(self, start: float, end: float) -> None:
        """Count ``[start, end]`` (this twin's clock) as busy, for work not run in executing()."""
        if not end >= start:
            raise ValueError(f"record_busy: end {end!r} before start {start!r}")
        with self._lock:
            self._advance(self._clock())
            self._add_busy(start, end)

    def stretch_factor(self) -> float:
        """``clock_max / clock`` now: how much longer the same work takes on this device."""
        with self._lock:
            self._advance(self._clock())
            return self._stretch(self._temp)

    # ---------------------------------------------------------------- faults
    def apply_faults(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Set the named faults (others untouched); applying the same spec again changes nothing.

        Keys: ``cooling_failure`` (bool or factor >= 1), ``power_cap_w`` (> 0),
        ``memory_leak_mib_per_s`` (>= 0), ``fragmentation`` (bool), ``xid`` (int code). A new XID
        code counts one XID error; re-applying the same code does not. Bad keys or values raise
        ``ValueError`` naming the key, before anything changes. Returns :meth:`fault_state`.
        """
        clean = _validate_faults(spec, self.params.cooling_failure_factor)
        with self._lock:
            self._advance(self._clock())
            for key, value in clean.items():
                if key == "xid" and self._faults.get("xid") != value:
                    if value is not None:  # a new XID event; None clears the fault and the loss
                        self._xid_count += 1
                    self._xid_last = value or 0
                if value is None:
                    self._faults.pop(key, None)
                else:
                    self._faults[key] = value
            return self._fault_state()

    def clear_faults(self) -> dict[str, Any]:
        """Revert every fault: cooling and power limit restored, leaked and pinned memory freed,
        a lost device reset. Counters (XIDs, retries, OOMs) stay, as on hardware."""
        with self._lock:
            self._advance(self._clock())
            self._faults.clear()
            self._mem.free_leak()
            self._mem.release_pins()
            self._xid_last = 0
            return self._fault_state()

    def fault_state(self) -> dict[str, Any]:
        """The active faults plus the XID state, as plain JSON-able values."""
        with self._lock:
            return self._fault_state()

    # ---------------------------------------------------------------- readings
    def reading(self, now: float | None = None, *, replica: str | None = None) -> GpuReading:
        """The device now. ``now`` only stamps the record (wall seconds, default ``wall_clock``);
        physics uses ``clock``. ``replica`` defaults to the one given at construction."""
        p = self.params
        with self._lock:
            t = self._clock()
            self._advance(t)
            util = self._util(t)
            clock = p.sm_clock_max_mhz / self._stretch(self._temp)
            reasons = self._reasons(self._temp, util)
            mem = self._mem
            allocated, reserved = mem.allocated(), mem.reserved()
            lost = self._xid_last == XID_FALLEN_OFF_BUS
            return GpuReading(
                ts=self._wall() if now is None else now,
                device=self.device,
                simulated=True,
                temperature_c=round(self._temp, 3),
                power_w=round(self._power(util, clock), 3),
                power_limit_w=self._power_limit(),
                sm_clock_mhz=round(p.sm_clock_idle_mhz if util < 0.01 else clock, 3),
                sm_clock_max_mhz=p.sm_clock_max_mhz,
                mem_clock_mhz=0.0 if lost else p.mem_clock_mhz,
                utilization=round(util, 6),
                memory_used_bytes=float(p.context_bytes + reserved),
                memory_total_bytes=float(p.memory_total_bytes),
                throttle_reasons=reasons,
                xid_errors=self._xid_count,
                ecc_errors=0,
                alloc_allocated_bytes=float(allocated),
                alloc_reserved_bytes=float(reserved),
                alloc_active_bytes=float(allocated),
                alloc_inactive_split_bytes=float(mem.inactive_split()),
                alloc_retries=mem.retries,
                alloc_ooms=mem.ooms,
                replica=self.replica if replica is None else replica,
            )

    # ---------------------------------------------------------------- internals (lock held)
    def _fault_state(self) -> dict[str, Any]:
        state = dict(sorted(self._faults.items()))
        state.update(xid_errors=self._xid_count, xid_last=self._xid_last,
                     device_lost=self._xid_last == XID_FALLEN_OFF_BUS,
                     leaked_bytes=int(self._mem.leaked))
        return state

    def _power_limit(self) -> float:
        return float(min(self.params.tdp_w, self._faults.get("power_cap_w", self.params.tdp_w)))

    def _clock_at(self, temp: float) -> tuple[float, float]:
        """(thermal clock, power-cap clock) for a busy device at ``temp``."""
        p = self.params
        frac = (temp - p.slowdown_c) / (p.clock_floor_c - p.slowdown_c)
        thermal = p.sm_clock_max_mhz - min(max(frac, 0.0), 1.0) * (
            p.sm_clock_max_mhz - p.sm_clock_floor_mhz)
        # Under load the card draws full dynamic power at full clock: scale the clock to fit.
        headroom = (self._power_limit() - p.idle_power_w) / (p.tdp_w - p.idle_power_w)
        capped = max(p.sm_clock_floor_mhz, p.sm_clock_max_mhz * min(max(headroom, 0.0), 1.0))
        return thermal, capped

    def _stretch(self, temp: float) -> float:
        return self.params.sm_clock_max_mhz / min(self._clock_at(temp))

    def _reasons(self, temp: float, util: float) -> tuple[str, ...]:
        p = self.params
        thermal, capped = self._clock_at(temp)
        reasons = []
        if util < 0.01:
            reasons.append("GPU_IDLE")
        elif capped < p.sm_clock_max_mhz and capped <= thermal:
            reasons.append("SW_POWER_CAP")
        if temp >= p.slowdown_c:
            reasons.append("SW_THERMAL_SLOWDOWN")
        if temp >= p.hw_slowdown_c:
            reasons.append("HW_THERMAL_SLOWDOWN")
        return tuple(reasons)

    def _power(self, util: float, clock: float) -> float:
        p = self.params
        dyn = (p.tdp_w - p.idle_power_w) * util * clock / p.sm_clock_max_mhz
        return min(p.idle_power_w + dyn, max(self._power_limit(), p.idle_power_w))

    def _resistance(self) -> float:
        return self.params.thermal_resistance_c_per_w * float(
            self._faults.get("cooling_failure", 1.0))

    def _equilibrium_idle(self) -> float:
        p = self.params
        return p.ambient_c + p.thermal_resistance_c_per_w * p.idle_power_w

    def _add_busy(self, start: float, end: float) -> None:
        self._busy.append((start, end))
        self._busy_total += end - start

    def _util(self, t: float) -> float:
        """Busy fraction of ``(t - window, t]``; O(1) amortised, as it runs on every execution."""
        lo = t - self.params.util_window_s
        while self._busy and self._busy[0][1] <= lo:
            s, e = self._busy.popleft()
            self._busy_total -= e - s
        if not self._busy:
            self._busy_total = 0.0
        busy = self._busy_total
        for s, e in self._busy:  # clip what lies before the window
            if s >= lo:
                break
            busy -= min(e, lo) - s
        for s, e in reversed(self._busy):  # and after t (integration substeps look back)
            if e <= t:
                break
            busy -= e - max(s, t)
        busy += sum(max(0.0, t - max(s, lo)) for s in self._inflight.values())
        return min(max(busy / self.params.util_window_s, 0.0), 1.0)

    def _advance(self, t: float) -> None:
        """Integrate temperature and the leak from the last update to ``t``."""
        dt = t - self._t
        if dt <= 0:
            return
        p = self.params
        steps = min(_MAX_STEPS, max(1, math.ceil(dt / _MAX_STEP_S)))
        h = dt / steps
        decay = math.exp(-h / p.thermal_time_constant_s)
        for i in range(1, steps + 1):
            tm = self._t + h * i
            power = self._power(self._util(tm), min(self._clock_at(self._temp)))
            target = p.ambient_c + self._resistance() * power
            self._temp = target + (self._temp - target) * decay
        self._t = t
        leak = float(self._faults.get("memory_leak_mib_per_s", 0.0)) * MIB * dt
        if leak > 0:
            self._mem.leak(leak)

def _validate_faults(spec: Mapping[str, Any], default_factor: float) -> dict[str, Any]:
    """Normalise a fault spec; ``None``/``False`` for a key clears that fault."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"fault spec must be a mapping, got {type(spec).__name__}")
    clean: dict[str, Any] = {}
    for key, value in spec.items():
        if key not in FAULT_KEYS:
            raise ValueError(f"unknown GPU fault {key!r}; known: {', '.join(FAULT_KEYS)}")
        if value is None or value is False:
            clean[key] = None
        elif key == "cooling_failure":
            factor = default_factor if value is True else _number(key, value)
            if factor < 1:
                raise ValueError(f"cooling_failure factor must be >= 1, got {value!r}")
            clean[key] = factor
        elif key == "fragmentation":
            if value is not True:
                raise ValueError(f"fragmentation must be true or false, got {value!r}")
            clean[key] = True
        elif key == "xid":
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"xid must be a positive integer code, got {value!r}")
            clean[key] = value
        else:
            number = _number(key, value)
            if number < 0 or (key == "power_cap_w" and number == 0):
                raise ValueError(f"{key} must be positive, got {value!r}")
            clean[key] = number
    return clean


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return float(value)
