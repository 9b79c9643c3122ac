"""PyTorch CUDA caching-allocator stats, merged into the NVML reading of the same device.

NVML sees what the driver handed out (``reserved`` plus the CUDA context); only the caching
allocator knows how much of that is live (``allocated``), how much sits in split blocks that no
request of a bigger shape can use (``inactive_split``: fragmentation), and how often it had to
flush its cache and retry (``num_alloc_retries``) or gave up (``num_ooms``). Those are the
signals that precede an OOM, so the model process (the only one that sees its own allocator)
reports them.

``torch`` is imported lazily and only when asked for: the lab runs without it, and a CUDA
wheel is gigabytes. ``torch.cuda.memory_stats`` returns ``{}`` before CUDA is initialised, so
asking never creates a CUDA context by itself.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import logging
from collections.abc import Mapping
from typing import Any

from warden.records import GpuReading

__all__ = ["ALLOCATOR_STAT_KEYS", "TorchAllocatorCollector", "load_torch"]

log = logging.getLogger(__name__)

# GpuReading field -> key of torch.cuda.memory_stats(device)
ALLOCATOR_STAT_KEYS: dict[str, str] = {
    "alloc_allocated_bytes": "allocated_bytes.all.current",
    "alloc_reserved_bytes": "reserved_bytes.all.current",
    "alloc_active_bytes": "active_bytes.all.current",
    "alloc_inactive_split_bytes": "inactive_split_bytes.all.current",
    "alloc_retries": "num_alloc_retries",
    "alloc_ooms": "num_ooms",
}


def load_torch() -> Any | None:
    """``torch`` if importable, else ``None`` (never raises)."""
    try:
        return importlib.import_module("torch")
    except Exception as exc:  # ImportError, or a broken CUDA install raising OSError
        log.debug("torch not importable: %s", exc)
        return None


class TorchAllocatorCollector:
    """Reads ``torch.cuda.memory_stats`` for this process's devices.

    ``devices`` maps Warden device names to torch indices; by default ``gpuN`` -> ``N``, which
    holds when ``CUDA_VISIBLE_DEVICES`` is unset (torch numbers visible devices, NVML all).
    """

    def __init__(self, torch: Any | None = None, *,
                 devices: Mapping[str, int] | None = None) -> None:
        self._torch = torch if torch is not None else load_torch()
        self._devices = dict(devices) if devices is not None else None
        self.errors: collections.Counter[str] = collections.Counter()

    @staticmethod
    def available(torch: Any | None = None) -> bool:
        """True when torch imports and sees a CUDA device."""
        torch = torch if torch is not None else load_torch()
        try:
            return bool(torch is not None and torch.cuda.is_available())
        except Exception:
            return False

    def index_of(self, device: str) -> int | None:
        if self._devices is not None:
            return self._devices.get(device)
        if device.startswith("gpu") and device[3:].isdigit():
            return int(device[3:])
        return None

    def stats(self, index: int) -> dict[str, float | int | None]:
        """Allocator fields for torch device ``index``; all ``None`` when unreadable."""
        empty: dict[str, float | int | None] = {f: None for f in ALLOCATOR_STAT_KEYS}
        if self._torch is None:
            return empty
        try:
            raw = self._torch.cuda.memory_stats(index)
        except Exception as exc:
            self.errors["memory_stats"] += 1
            log.debug("torch.cuda.memory_stats(%s) failed: %s", index, exc)
            return empty
        if not raw:  # CUDA not initialised in this process: nothing allocated through torch
            return empty
        out = dict(empty)
        for field, key in ALLOCATOR_STAT_KEYS.items():
            value = raw.get(key)
            if value is None:
                continue
            out[field] = int(value) if field in ("alloc_retries", "alloc_ooms") else float(value)
        return out

    def merge(self, reading: GpuReading) -> GpuReading:
        """``reading`` with its allocator fields filled from the same device, when known."""
        index = self.index_of(reading.device)
        if index is None:
            return reading
        stats = self.stats(index)
        if all(v is None for v in stats.values()):
            return reading
        return dataclasses.replace(reading, **stats)  # type: ignore[arg-type]
