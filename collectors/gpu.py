"""The GPU collector: real hardware through NVML (plus the allocator) when there is a GPU, the
simulated twin when there is not. Either way the engine gets ``GpuReading`` records, and twin
readings say ``simulated=True``.

The choice is made once, at start, by trying NVML: a host that has a GPU must never silently
report a twin, and a host without one must start cleanly instead of failing on a missing driver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from collectors.allocator import TorchAllocatorCollector
from collectors.gpu_twin_source import TwinCollector, TwinHttpSource
from collectors.nvml import NvmlCollector, NvmlUnavailable, load_pynvml
from warden.records import GpuReading, Sample

__all__ = ["GpuCollector", "NvmlGpuCollector", "make_gpu_collector"]

log = logging.getLogger(__name__)


class GpuCollector(Protocol):
    """What the engine calls; ``simulated`` says which world the readings come from."""

    simulated: bool

    def collect(self, now: float | None = None) -> list[GpuReading | Sample]: ...

    def close(self) -> None: ...


class NvmlGpuCollector:
    """NVML readings with the allocator's fields merged in for devices this process uses."""

    simulated = False

    def __init__(self, nvml: NvmlCollector,
                 allocator: TorchAllocatorCollector | None = None) -> None:
        self.nvml = nvml
        self.allocator = allocator

    def collect(self, now: float | None = None) -> list[GpuReading | Sample]:
        items = self.nvml.collect(now)
        if self.allocator is None:
            return items
        return [self.allocator.merge(i) if isinstance(i, GpuReading) else i for i in items]

    def close(self) -> None:
        self.nvml.close()


def make_gpu_collector(
    *,
    nvml: Any | None = None,
    torch: Any | None = None,
    twins: Mapping[str, Any] | None = None,
    twin_urls: Mapping[str, str] | None = None,
    replica: str = "",
    prefer: str = "auto",
    clock: Callable[[], float] = time.time,
) -> GpuCollector:
    """Pick the collector for this host.

    Args:
        nvml: the NVML module (default: ``pynvml``, imported lazily).
        torch: the torch module for allocator stats (default: imported lazily if present).
        twins: in-process twins ``{replica: GpuTwin}`` to read when there is no GPU.
        twin_urls: ``{replica: "http://127.0.0.1:PORT/gpu"}`` to poll when there is no GPU;
            wins over ``twins``. With neither, a lone idle twin ``sim0`` is read.
        replica: label for NVML readings (the replica this host serves, if one).
        prefer: ``"auto"`` (NVML if it initialises), ``"nvml"`` (raise
            :class:`~collectors.nvml.NvmlUnavailable` if it does not) or ``"twin"``.
    """
    if prefer not in ("auto", "nvml", "twin"):
        raise ValueError(f"prefer must be 'auto', 'nvml' or 'twin', got {prefer!r}")
    if prefer != "twin":
        try:
            module = nvml if nvml is not None else load_pynvml()
            why = NvmlCollector.init_error(module)
        except NvmlUnavailable as exc:
            module, why = None, str(exc)
        if why is None:
            collector = NvmlCollector(module, clock=clock, replica=replica)
            collector.start()
            allocator = (TorchAllocatorCollector(torch)
                         if TorchAllocatorCollector.available(torch) else None)
            log.info("GPU collector: NVML%s", " + torch allocator" if allocator else "")
            return NvmlGpuCollector(collector, allocator)
        if prefer == "nvml":
            raise NvmlUnavailable(f"NVML init failed ({why})")
        log.info("GPU collector: simulated twin (NVML unavailable: %s)", why)
    if twin_urls:
        return TwinHttpSource(twin_urls, clock=clock)
    if twins is None:
        from serving.gpu_twin import GpuTwin  # only here: the core need not import serving

        twins = {replica: GpuTwin("sim0")}
    return TwinCollector(twins, clock=clock)
