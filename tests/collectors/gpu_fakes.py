"""Test doubles for what cannot run here: ``FakeNvml`` (the pynvml module) and ``FakeTorch``
(``torch.cuda``'s allocator stats). They use the exact names, constants and error classes the
collectors call, so the collectors run unchanged against the real modules on a GPU host.

Values are those of a busy H100 SXM read with nvidia-smi: 700 W limit, 1980 MHz max SM clock,
80 GiB, memory clock 2619 MHz.
"""

from __future__ import annotations

import types
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# pynvml constants, values as in nvidia-ml-py's pynvml.py
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
nvmlEventTypeXidCriticalError = 0x8


class NVMLError(Exception):
    def __init__(self, value: int = 999) -> None:
        super().__init__(value)
        self.value = value


def _err(name: str, value: int) -> type[NVMLError]:
    return type(name, (NVMLError,), {"__init__": lambda self: NVMLError.__init__(self, value)})


NVMLError_NotSupported = _err("NVMLError_NotSupported", 3)
NVMLError_Timeout = _err("NVMLError_Timeout", 10)
NVMLError_LibraryNotFound = _err("NVMLError_LibraryNotFound", 12)
NVMLError_FunctionNotFound = _err("NVMLError_FunctionNotFound", 13)
NVMLError_GpuIsLost = _err("NVMLError_GpuIsLost", 15)
NVMLError_Unknown = _err("NVMLError_Unknown", 999)

GIB = 1 << 30


@dataclass
class FakeGpu:
    """One device's state; tests change it between collects."""

    name: str = "NVIDIA H100 80GB HBM3"
    temperature: int = 61
    power_mw: int = 412_345
    limit_mw: int = 700_000
    sm_mhz: int = 1755
    sm_max_mhz: int = 1980
    mem_mhz: int = 2619
    util_gpu: int = 87
    mem_used: int = 31 * GIB
    mem_total: int = 80 * GIB
    reasons: int = 0x0
    ecc_uncorrected: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=lambda: [(4242, 30 * GIB)])
    events_supported: bool = True
    unsupported: set[str] = field(default_factory=set)  # function names -> NotSupported
    failing: dict[str, Exception] = field(default_factory=dict)  # function names -> raise


class FakeNvml(types.SimpleNamespace):
    """A stand-in for the ``pynvml`` module. ``init_error`` makes ``nvmlInit`` fail."""

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: Exception | None = None,
                 event_reasons_function: bool = True) -> None:
        super().__init__()
        for name, value in globals().items():
            if name.startswith(("NVML", "nvmlEventType")):
                setattr(self, name, value)
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0
        self.event_sets: dict[int, tuple[int, deque[tuple[int, int]]]] = {}
        self.freed: list[int] = []
        self.wait_timeouts: list[int] = []
        if not event_reasons_function:  # older driver: only the Throttle name works
            self.nvmlDeviceGetCurrentClocksEventReasons = self._function_not_found

    # -- helpers for tests
    def push_xid(self, index: int, code: int) -> None:
        for dev, queue in self.event_sets.values():
            if dev == index:
                queue.append((nvmlEventTypeXidCriticalError, code))

    def _gpu(self, handle: int, fn: str) -> FakeGpu:
        if self.inits <= self.shutdowns:
            raise NVMLError(1)  # NVML_ERROR_UNINITIALIZED
        gpu = self.gpus[handle]
        if fn in gpu.unsupported:
            raise NVMLError_NotSupported()
        if fn in gpu.failing:
            raise gpu.failing[fn]
        return gpu

    @staticmethod
    def _function_not_found(handle: int) -> int:
        raise NVMLError_FunctionNotFound()

    # -- pynvml API, same names and argument order
    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        if self.inits <= self.shutdowns:
            raise NVMLError(1)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.gpus):
            raise NVMLError(2)  # INVALID_ARGUMENT
        return index

    def nvmlDeviceGetName(self, h: int) -> str:
        return self._gpu(h, "nvmlDeviceGetName").name

    def nvmlDeviceGetMaxClockInfo(self, h: int, clock: int) -> int:
        gpu = self._gpu(h, "nvmlDeviceGetMaxClockInfo")
        return gpu.sm_max_mhz if clock == NVML_CLOCK_SM else gpu.mem_mhz

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        gpu = self._gpu(h, "nvmlDeviceGetClockInfo")
        return gpu.sm_mhz if clock == NVML_CLOCK_SM else gpu.mem_mhz

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        assert sensor == NVML_TEMPERATURE_GPU
        return self._gpu(h, "nvmlDeviceGetTemperature").temperature

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetEnforcedPowerLimit").limit_mw

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        gpu = self._gpu(h, "nvmlDeviceGetUtilizationRates")
        return types.SimpleNamespace(gpu=gpu.util_gpu, memory=40)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        gpu = self._gpu(h, "nvmlDeviceGetMemoryInfo")
        return types.SimpleNamespace(total=gpu.mem_total, used=gpu.mem_used,
                                     free=gpu.mem_total - gpu.mem_used)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetCurrentClocksEventReasons").reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetCurrentClocksThrottleReasons").reasons

    def nvmlDeviceGetTotalEccErrors(self, h: int, error_type: int, counter_type: int) -> int:
        assert (error_type, counter_type) == (NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                                              NVML_VOLATILE_ECC)
        return self._gpu(h, "nvmlDeviceGetTotalEccErrors").ecc_uncorrected

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        gpu = self._gpu(h, "nvmlDeviceGetComputeRunningProcesses")
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF,
                                      computeInstanceId=0xFFFFFFFF)
                for pid, used in gpu.processes]

    def nvmlEventSetCreate(self) -> int:
        handle = 1000 + len(self.event_sets)
        self.event_sets[handle] = (-1, deque())
        return handle

    def nvmlDeviceRegisterEvents(self, h: int, types_mask: int, event_set: int) -> None:
        gpu = self._gpu(h, "nvmlDeviceRegisterEvents")
        if not gpu.events_supported:
            raise NVMLError_NotSupported()
        assert types_mask & nvmlEventTypeXidCriticalError
        self.event_sets[event_set] = (h, self.event_sets[event_set][1])

    def nvmlEventSetWait(self, event_set: int, timeout_ms: int) -> Any:
        self.wait_timeouts.append(timeout_ms)
        dev, queue = self.event_sets[event_set]
        if not queue:
            raise NVMLError_Timeout()
        kind, data = queue.popleft()
        return types.SimpleNamespace(device=dev, eventType=kind, eventData=data,
                                     gpuInstanceId=0, computeInstanceId=0)

    def nvmlEventSetFree(self, event_set: int) -> None:
        self.freed.append(event_set)


class FakeTorch(types.SimpleNamespace):
    """``torch`` reduced to ``torch.cuda.is_available`` and ``torch.cuda.memory_stats``."""

    def __init__(self, stats: dict[int, dict[str, float]] | None = None,
                 cuda_available: bool = True, error: Exception | None = None) -> None:
        def memory_stats(device: int) -> dict[str, float]:
            if error is not None:
                raise error
            return dict((stats or {}).get(device, {}))

        super().__init__(cuda=types.SimpleNamespace(is_available=lambda: cuda_available,
                                                    memory_stats=memory_stats))


def torch_stats(allocated: int, reserved: int, active: int, inactive_split: int,
                retries: int, ooms: int) -> dict[str, float]:
    """A ``torch.cuda.memory_stats`` dict: the keys read, plus neighbours that must be ignored."""
    return {
        "allocated_bytes.all.current": allocated,
        "allocated_bytes.all.peak": allocated * 2,
        "reserved_bytes.all.current": reserved,
        "active_bytes.all.current": active,
        "inactive_split_bytes.all.current": inactive_split,
        "inactive_split_bytes.large_pool.current": inactive_split,
        "num_alloc_retries": retries,
        "num_ooms": ooms,
        "num_device_alloc": 17,
    }
