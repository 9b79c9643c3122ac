"""Real GPU readings through NVML (the ``pynvml`` module of ``nvidia-ml-py``).

The collector takes the NVML module as an argument, so the code path that runs on a GPU host is
the same one the tests drive with ``FakeNvml``. Hardware differs in what it supports (no ECC on
consumer cards, no power reading on some boards, no events in containers), so every NVML call is
guarded: ``NVMLError_NotSupported`` gives the field's default, any other error is counted in
:attr:`NvmlCollector.errors` and gives the default too. A collector in the engine's loop must
never die because one counter is missing.

XID errors arrive as NVML events, not as a counter: each device gets an event set registered for
``nvmlEventTypeXidCriticalError``, drained without blocking on every collect, and the running
count is reported as ``GpuReading.xid_errors`` with the last code as ``gpu_xid_last_code``.

Per-process GPU memory goes out as ``Sample("gpu_process_memory_bytes", {device, pid})``.
"""

from __future__ import annotations

import collections
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collectors.gpu_record import decode_clock_reasons
from warden.records import GpuReading, Sample, freeze_labels

__all__ = ["NvmlCollector", "NvmlUnavailable", "load_pynvml"]

log = logging.getLogger(__name__)
_MAX_EVENTS_PER_COLLECT = 256


class NvmlUnavailable(RuntimeError):
    """NVML could not be initialised here (no driver, no GPU, no library)."""


def load_pynvml() -> Any:
    """Import ``pynvml`` lazily; raises :class:`NvmlUnavailable` when it is not installed."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise NvmlUnavailable(f"pynvml not importable: {exc}") from exc


@dataclass(slots=True)
class _Device:
    index: int
    name: str
    handle: Any
    sm_clock_max_mhz: float
    events: Any = None
    xid_count: int = 0
    xid_last: int = 0


class NvmlCollector:
    """Reads every NVML device; ``collect(now)`` returns one ``GpuReading`` per device
    (``simulated=False``, allocator fields ``None``) followed by ``Sample``s."""

    def __init__(self, nvml: Any, *, clock: Callable[[], float] = time.time,
                 replica: str = "", xid_events: bool = True) -> None:
        self._nvml = nvml
        self._clock = clock
        self._replica = replica
        self._xid_events = xid_events
        self._devices: list[_Device] | None = None
        self.errors: collections.Counter[str] = collections.Counter()

    # ------------------------------------------------------------------ availability
    @staticmethod
    def init_error(nvml: Any | None = None) -> str | None:
        """``None`` when NVML initialises here, else why not (for a clear message)."""
        try:
            nvml = nvml if nvml is not None else load_pynvml()
            nvml.nvmlInit()
        except NvmlUnavailable as exc:
            return str(exc)
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            return f"{type(exc).__name__}: {exc}"
        try:
            count = nvml.nvmlDeviceGetCount()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            try:
                nvml.nvmlShutdown()
            except Exception:
                pass
        return None if count > 0 else "NVML initialised but reports no devices"

    @classmethod
    def available(cls, nvml: Any | None = None) -> bool:
        """True when NVML initialises and sees at least one device."""
        return cls.init_error(nvml) is None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Initialise NVML and open the devices; raises :class:`NvmlUnavailable` if it cannot."""
        if self._devices is not None:
            return
        n = self._nvml
        try:
            n.nvmlInit()
            count = n.nvmlDeviceGetCount()
        except n.NVMLError as exc:
            raise NvmlUnavailable(f"NVML init failed ({exc})") from exc
        devices = []
        for index in range(count):
            handle = self._call("nvmlDeviceGetHandleByIndex", n.nvmlDeviceGetHandleByIndex, index)
            if handle is None:
                continue
            name = self._call("nvmlDeviceGetName", n.nvmlDeviceGetName, handle, default="")
            max_sm = self._call("nvmlDeviceGetMaxClockInfo", n.nvmlDeviceGetMaxClockInfo,
                                handle, n.NVML_CLOCK_SM, default=0)
            dev = _Device(index, name.decode() if isinstance(name, bytes) else str(name),
                          handle, float(max_sm))
            if self._xid_events:
                dev.events = self._register_xid(handle)
            devices.append(dev)
        self._devices = devices

    def close(self) -> None:
        """Free event sets and shut NVML down; safe to call twice."""
        if self._devices is None:
            return
        for dev in self._devices:
            if dev.events is not None:
                self._call("nvmlEventSetFree", self._nvml.nvmlEventSetFree, dev.events)
        self._devices = None
        self._call("nvmlShutdown", self._nvml.nvmlShutdown)

    @property
    def device_names(self) -> dict[str, str]:
        """``{"gpu0": "NVIDIA H100 80GB HBM3", ...}`` once started."""
        return {f"gpu{d.index}": d.name for d in self._devices or ()}

    # ------------------------------------------------------------------ reading
    def collect(self, now: float | None = None) -> list[GpuReading | Sample]:
        """One reading per device, then per-process memory, XID and error-count samples."""
        self.start()
        ts = self._clock() if now is None else now
        readings: list[GpuReading | Sample] = []
        samples: list[GpuReading | Sample] = []
        for dev in self._devices or ():
            reading, extra = self._read(dev, ts)
            readings.append(reading)
            samples.extend(extra)
        errors = sum(self.errors.values())
        samples.append(Sample("warden_gpu_collector_errors_total",
                              freeze_labels({"collector": "nvml", "replica": self._replica}),
                              ts, float(errors)))
        return readings + samples

    def _read(self, dev: _Device, ts: float) -> tuple[GpuReading, list[Sample]]:
        n, h = self._nvml, dev.handle
        device = f"gpu{dev.index}"
        temp = self._call("nvmlDeviceGetTemperature", n.nvmlDeviceGetTemperature, h,
                          n.NVML_TEMPERATURE_GPU, default=0)
        power_mw = self._call("nvmlDeviceGetPowerUsage", n.nvmlDeviceGetPowerUsage, h, default=0)
        limit_mw = self._call("nvmlDeviceGetEnforcedPowerLimit",
                              n.nvmlDeviceGetEnforcedPowerLimit, h, default=0)
        sm = self._call("nvmlDeviceGetClockInfo", n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM,
                        default=0)
        mem_clk = self._call("nvmlDeviceGetClockInfo", n.nvmlDeviceGetClockInfo, h,
                             n.NVML_CLOCK_MEM, default=0)
        util = self._call("nvmlDeviceGetUtilizationRates", n.nvmlDeviceGetUtilizationRates, h)
        mem = self._call("nvmlDeviceGetMemoryInfo", n.nvmlDeviceGetMemoryInfo, h)
        ecc = self._call("nvmlDeviceGetTotalEccErrors", n.nvmlDeviceGetTotalEccErrors, h,
                         n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_VOLATILE_ECC, default=0)
        self._drain_xid(dev)
        labels = {"device": device, "replica": self._replica}
        samples = [Sample("gpu_xid_last_code", freeze_labels(labels), ts, float(dev.xid_last))]
        procs = self._call("nvmlDeviceGetComputeRunningProcesses",
                           n.nvmlDeviceGetComputeRunningProcesses, h, default=[])
        for proc in procs or ():
            used = getattr(proc, "usedGpuMemory", None)
            if used is not None:  # None: the driver hides it (e.g. in some containers)
                samples.append(Sample("gpu_process_memory_bytes",
                                      freeze_labels({**labels, "pid": str(proc.pid)}),
                                      ts, float(used)))
        reading = GpuReading(
            ts=ts,
            device=device,
            simulated=False,
            temperature_c=float(temp),
            power_w=power_mw / 1000.0,
            power_limit_w=limit_mw / 1000.0,
            sm_clock_mhz=float(sm),
            sm_clock_max_mhz=dev.sm_clock_max_mhz,
            mem_clock_mhz=float(mem_clk),
            utilization=(util.gpu / 100.0) if util is not None else 0.0,
            memory_used_bytes=float(mem.used) if mem is not None else 0.0,
            memory_total_bytes=float(mem.total) if mem is not None else 0.0,
            throttle_reasons=decode_clock_reasons(self._clock_reasons(h)),
            xid_errors=dev.xid_count,
            ecc_errors=int(ecc or 0),
            replica=self._replica,
        )
        return reading, samples

    def _clock_reasons(self, handle: Any) -> int:
        """Newer drivers name it ClocksEventReasons; older ones only ClocksThrottleReasons."""
        n = self._nvml
        fn = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if fn is not None:
            try:
                return int(fn(handle))
            except n.NVMLError_FunctionNotFound:
                pass
            except n.NVMLError_NotSupported:
                return 0
            except n.NVMLError as exc:
                self._count("nvmlDeviceGetCurrentClocksEventReasons", exc)
                return 0
        return int(self._call("nvmlDeviceGetCurrentClocksThrottleReasons",
                              n.nvmlDeviceGetCurrentClocksThrottleReasons, handle, default=0))

    # ------------------------------------------------------------------ XID events
    def _register_xid(self, handle: Any) -> Any:
        n = self._nvml
        events = self._call("nvmlEventSetCreate", n.nvmlEventSetCreate)
        if events is None:
            return None
        try:
            n.nvmlDeviceRegisterEvents(handle, n.nvmlEventTypeXidCriticalError, events)
            return events
        except n.NVMLError as exc:
            if not isinstance(exc, n.NVMLError_NotSupported):
                self._count("nvmlDeviceRegisterEvents", exc)
            self._call("nvmlEventSetFree", n.nvmlEventSetFree, events)
            return None

    def _drain_xid(self, dev: _Device) -> None:
        """Take every pending event without blocking (timeout 0 ms)."""
        if dev.events is None:
            return
        n = self._nvml
        for _ in range(_MAX_EVENTS_PER_COLLECT):
            try:
                data = n.nvmlEventSetWait(dev.events, 0)
            except n.NVMLError_Timeout:
                return
            except n.NVMLError as exc:
                self._count("nvmlEventSetWait", exc)
                return
            if data.eventType & n.nvmlEventTypeXidCriticalError:
                dev.xid_count += 1
                dev.xid_last = int(data.eventData)

    # ------------------------------------------------------------------ guarding
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
        try:
            return fn(*args)
        except self._nvml.NVMLError_NotSupported:
            return default
        except self._nvml.NVMLError as exc:
            self._count(what, exc)
            return default
        except Exception as exc:  # a broken binding must not kill the loop either
            log.exception("NVML call %s failed unexpectedly", what)
            self._count(what, exc)
            return default

    def _count(self, what: str, exc: BaseException) -> None:
        self.errors[what] += 1
        log.debug("NVML %s failed: %s", what, exc)
