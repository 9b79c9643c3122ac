"""GPU faults on the simulated twin (the replica's ``/gpu/faults``), as on hardware.

Cooling failure (thermal throttling), a power cap, a memory leak, fragmentation up to OOM, an
XID error. Each injects one key; the revert is the twin's reset (``DELETE /gpu/faults``): the
cooling and power limit restored, leaked and pinned memory freed, a lost device reset. The reset
is the whole twin's, so two GPU faults on one replica revert together; that is the right end
state for "always reverted on exit", and reverting twice is harmless.
"""

from __future__ import annotations

from typing import Any

from chaos.errors import FaultUnavailable
from chaos.faults.base import Fault, http_call
from chaos.target import Target

__all__ = ["CoolingFailure", "Fragmentation", "MemoryLeak", "PowerCap", "XidError"]


class _GpuFault(Fault):
    def __init__(self, target: Target, replica: str, spec: dict[str, Any]) -> None:
        super().__init__(target)
        self.replica = replica
        self.spec = spec
        self._control = target.replica(replica).control_url

    def available(self) -> str | None:
        if not self._control:
            return f"replica {self.replica}: no control_url in target"
        return None

    def inject(self) -> None:
        if not self._control:
            raise FaultUnavailable(self.available() or "")
        http_call("POST", f"{self._control}/gpu/faults", body=self.spec)

    def revert(self) -> None:
        if self._control:
            http_call("DELETE", f"{self._control}/gpu/faults")

    def describe(self) -> str:
        return f"GPU {self.spec} on {self.replica}"


class CoolingFailure(_GpuFault):
    """Multiply the thermal resistance: the GPU heats past slowdown and throttles its clock."""

    def __init__(self, target: Target, *, replica: str, factor: float = 5.0) -> None:
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        super().__init__(target, replica, {"cooling_failure": factor})


class PowerCap(_GpuFault):
    """Cap board power: the clock drops so that full-load power fits the limit."""

    def __init__(self, target: Target, *, replica: str, watts: float = 60.0) -> None:
        if watts <= 0:
            raise ValueError(f"watts must be > 0, got {watts}")
        super().__init__(target, replica, {"power_cap_w": watts})


class MemoryLeak(_GpuFault):
    """Leak device memory at a steady rate until allocations fail (simulated CUDA OOM)."""

    def __init__(self, target: Target, *, replica: str, mib_per_s: float = 2048.0) -> None:
        if mib_per_s <= 0:
            raise ValueError(f"mib_per_s must be > 0, got {mib_per_s}")
        super().__init__(target, replica, {"memory_leak_mib_per_s": mib_per_s})


class Fragmentation(_GpuFault):
    """Pin every output: the caching allocator fragments, retries, and ends in OOMs."""

    def __init__(self, target: Target, *, replica: str) -> None:
        super().__init__(target, replica, {"fragmentation": True})


class XidError(_GpuFault):
    """Raise an XID; 79 ("fallen off the bus") fails every execution until the reset."""

    def __init__(self, target: Target, *, replica: str, code: int = 79) -> None:
        if code <= 0:
            raise ValueError(f"code must be a positive XID, got {code}")
        super().__init__(target, replica, {"xid": code})
