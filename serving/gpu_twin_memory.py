"""The GPU twin's memory: PyTorch's CUDA caching allocator in miniature.

Separate from the thermal model in :mod:`serving.gpu_twin` because it is a different machine:
segments and blocks, not watts and degrees. What it keeps of the real allocator is what the
readings show and what leads to an OOM:

* each batch needs a workspace, placed best-fit in a cached segment that is not in use, or in a
  new segment rounded up to ``segment_bytes``; freed segments stay cached, so ``reserved`` grows
  to the high-water mark of the shapes seen;
* the batch's output stays alive in its segment until the next batch starts; the rest of that
  segment is then an inactive split block (``inactive_split_bytes``, PyTorch's measure of
  fragmentation). With the fragmentation fault outputs are never freed, every used segment stays
  split, and new segments keep being needed;
* when a new segment would pass capacity, cached segments holding nothing live are released and
  the allocation retried (``num_alloc_retries``); if it still does not fit, ``num_ooms`` counts
  it and :class:`SimulatedCudaOOM` is raised;
* a leak (bytes asked for over time, never freed) takes memory as it can; once it cannot, the
  batch that runs the leaking code fails with an OOM.

Not thread-safe by itself: :class:`~serving.gpu_twin.GpuTwin` calls it under its lock.

Exception tree::

    SimulatedGpuError(RuntimeError)
    ├── SimulatedCudaOOM    an allocation did not fit, even after freeing the cache
    └── SimulatedXidError   the device is lost (XID 79) until the twin is reset
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Segment",
    "SimulatedCudaOOM",
    "SimulatedGpuError",
    "SimulatedXidError",
    "TwinMemory",
]


class SimulatedGpuError(RuntimeError):
    """Base of the twin's errors; the model turns them into request errors."""


class SimulatedCudaOOM(SimulatedGpuError):
    """Like ``torch.cuda.OutOfMemoryError``: the allocation did not fit after a cache flush."""


class SimulatedXidError(SimulatedGpuError):
    """The device is lost (XID 79, GPU has fallen off the bus) until the twin is reset."""


def round_up(n: float, unit: int) -> int:
    return int(math.ceil(n / unit)) * unit


@dataclass(slots=True, eq=False)
class Segment:
    """One cudaMalloc'd segment of the cache."""

    size: int
    in_use: int = 0  # the running batch's workspace
    pinned: int = 0  # outputs still alive in this segment


class TwinMemory:
    """Allocator state of one simulated device; ``capacity`` excludes the CUDA context."""

    def __init__(self, device: str, *, capacity: int, weights_bytes: int,
                 segment_bytes: int) -> None:
        self.device = device
        self.capacity = capacity
        self.weights_bytes = weights_bytes
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.pins: list[tuple[Segment, int]] = []
        self.leaked = 0.0
        self.leak_wanted = 0.0  # what a leak fault has asked for; above ``leaked``, it starves
        self.retries = 0
        self.ooms = 0

    # -- readings
    def reserved(self) -> int:
        return (round_up(self.weights_bytes, self.segment_bytes)
                + sum(s.size for s in self.segments) + int(self.leaked))

    def allocated(self) -> float:
        return self.weights_bytes + self.leaked + sum(s.in_use + s.pinned for s in self.segments)

    def inactive_split(self) -> int:
        return sum(s.size - s.in_use - s.pinned for s in self.segments
                   if 0 < s.in_use + s.pinned < s.size)

    # -- batches
    def allocate(self, need: int, *, fragmentation: bool) -> Segment:
        """Place one batch's workspace; raises :class:`SimulatedCudaOOM` when it cannot."""
        if not fragmentation:  # the last batch's outputs were consumed by now
            self.release_pins()
        if self.leak_wanted > self.leaked + 1:  # the leaking code runs in this batch: it fails
            self.grow_leak()
            if self.leak_wanted > self.leaked + 1:
                self.ooms += 1
                raise SimulatedCudaOOM(f"{self.device}: out of memory "
                                       f"({int(self.leaked)} bytes held by leaked tensors)")
        fits = [s for s in self.segments if not s.in_use and s.size - s.pinned >= need]
        if fits:
            seg = min(fits, key=lambda s: s.size - s.pinned)
        else:
            seg = Segment(round_up(need, self.segment_bytes))
            if self.reserved() + seg.size > self.capacity:
                self.retries += 1
                self.free_cache()
                if self.reserved() + seg.size > self.capacity:
                    self.ooms += 1
                    raise SimulatedCudaOOM(
                        f"{self.device}: tried to allocate {need} bytes; "
                        f"{self.capacity - self.reserved()} bytes free of {self.capacity}")
            self.segments.append(seg)
        seg.in_use = need
        return seg

    def release(self, seg: Segment, output_bytes: int) -> None:
        """Free the workspace; the batch's output stays alive in the segment."""
        seg.in_use = 0
        keep = min(output_bytes, seg.size - seg.pinned)
        if keep > 0 and seg in self.segments:
            seg.pinned += keep
            self.pins.append((seg, keep))

    def release_pins(self) -> None:
        for seg, size in self.pins:
            seg.pinned -= size
        self.pins.clear()

    # -- leak
    def leak(self, amount: float) -> None:
        self.leak_wanted += amount
        self.grow_leak()

    def grow_leak(self) -> None:
        """Leaked tensors take memory as they can; short of it, the cache is flushed first."""
        want = self.leak_wanted - self.leaked
        if want > self.capacity - self.reserved() and self.free_cache():
            self.retries += 1
        self.leaked += max(0.0, min(want, self.capacity - self.reserved()))

    def free_leak(self) -> None:
        self.leaked = self.leak_wanted = 0.0

    def free_cache(self) -> bool:
        """PyTorch's retry path: drop cached segments holding nothing live. True if any went."""
        before = len(self.segments)
        self.segments = [s for s in self.segments if s.in_use or s.pinned]
        return len(self.segments) < before
