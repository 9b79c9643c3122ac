"""TorchAllocatorCollector against FakeTorch (no CUDA torch here) and the real import path."""

from __future__ import annotations

from gpu_fakes import GIB, FakeTorch, torch_stats

from collectors.allocator import TorchAllocatorCollector, load_torch
from warden.records import GpuReading


def base_reading(device: str = "gpu0") -> GpuReading:
    return GpuReading(ts=1.0, device=device, simulated=False, temperature_c=50.0, power_w=100.0,
                      power_limit_w=700.0, sm_clock_mhz=1980.0, sm_clock_max_mhz=1980.0,
                      mem_clock_mhz=2619.0, utilization=0.5, memory_used_bytes=13.0 * GIB,
                      memory_total_bytes=80.0 * GIB)


def test_stats_map_the_documented_keys():
    torch = FakeTorch({1: torch_stats(1000, 4096, 1500, 700, 2, 1)})
    stats = TorchAllocatorCollector(torch).stats(1)
    assert stats == {"alloc_allocated_bytes": 1000.0, "alloc_reserved_bytes": 4096.0,
                     "alloc_active_bytes": 1500.0, "alloc_inactive_split_bytes": 700.0,
                     "alloc_retries": 2, "alloc_ooms": 1}
    assert isinstance(stats["alloc_retries"], int)


def test_merge_fills_only_the_matching_device():
    allocator = TorchAllocatorCollector(FakeTorch({0: torch_stats(1, 2, 3, 4, 5, 6)}))
    merged = allocator.merge(base_reading("gpu0"))
    assert (merged.alloc_allocated_bytes, merged.alloc_ooms) == (1.0, 6)
    assert merged.temperature_c == 50.0
    untouched = base_reading("gpu1")  # CUDA not initialised there: memory_stats gives {}
    assert allocator.merge(untouched) is untouched
    assert allocator.merge(base_reading("sim0")).alloc_allocated_bytes is None


def test_explicit_device_map_for_cuda_visible_devices():
    allocator = TorchAllocatorCollector(FakeTorch({0: torch_stats(9, 9, 9, 9, 0, 0)}),
                                        devices={"gpu3": 0})
    assert allocator.merge(base_reading("gpu3")).alloc_allocated_bytes == 9.0
    assert allocator.merge(base_reading("gpu0")).alloc_allocated_bytes is None


def test_errors_are_counted_not_raised():
    allocator = TorchAllocatorCollector(FakeTorch(error=RuntimeError("CUDA error: device lost")))
    reading = base_reading()
    assert allocator.merge(reading) is reading
    assert allocator.errors["memory_stats"] == 1


def test_availability():
    assert TorchAllocatorCollector.available(FakeTorch()) is True
    assert TorchAllocatorCollector.available(FakeTorch(cuda_available=False)) is False
    if load_torch() is None:  # this host: torch is not installed, nothing breaks
        assert TorchAllocatorCollector.available() is False
        assert TorchAllocatorCollector().merge(base_reading()).alloc_allocated_bytes is None
