"""The NVML and allocator collectors on a real NVIDIA GPU; skipped where there is none.

CI has no GPU, so these run on a lent GPU machine (see README, "GPU proof"): they pin what the
fakes in test_gpu_nvml.py only assume — that a real driver answers every field in Warden's units,
that the caching allocator's counters move with a real CUDA workload, and that an OOM is counted.
"""

from __future__ import annotations

import pytest

from collectors.allocator import TorchAllocatorCollector, load_torch
from collectors.gpu import NvmlGpuCollector, make_gpu_collector
from collectors.nvml import NvmlCollector, NvmlUnavailable, load_pynvml
from warden.records import GpuReading

GIB = float(1 << 30)


def real_pynvml():
    try:
        pynvml = load_pynvml()
    except NvmlUnavailable as exc:
        pytest.skip(f"no NVML here: {exc}")
    if NvmlCollector.init_error(pynvml) is not None:
        pytest.skip("no NVIDIA GPU here (NVML init failed)")
    return pynvml


def readings(collector) -> list[GpuReading]:
    return [item for item in collector.collect() if isinstance(item, GpuReading)]


def test_real_nvml_reads_each_device_in_warden_units():
    collector = make_gpu_collector(nvml=real_pynvml(), prefer="nvml")
    try:
        assert isinstance(collector, NvmlGpuCollector) and collector.simulated is False
        found = readings(collector)
        assert found, "NVML found no device"
        for r in found:
            assert r.simulated is False and r.device.startswith("gpu")
            assert 5.0 < r.temperature_c < 110.0
            assert 0.0 < r.power_w <= r.power_limit_w * 1.5
            assert 0.0 < r.sm_clock_mhz <= r.sm_clock_max_mhz
            assert 0.0 < r.memory_used_bytes < r.memory_total_bytes
            assert r.memory_total_bytes > 1 * GIB
            assert 0.0 <= r.utilization <= 1.0
    finally:
        collector.close()


def test_allocator_counters_follow_a_real_cuda_workload_and_count_an_oom():
    pynvml = real_pynvml()
    torch = load_torch()
    if torch is None or not TorchAllocatorCollector.available(torch):
        pytest.skip("torch with CUDA is not importable here")
    nvml = NvmlCollector(pynvml)
    nvml.start()
    collector = NvmlGpuCollector(nvml, TorchAllocatorCollector(torch))
    try:
        block = torch.ones(1 << 28, dtype=torch.float32, device="cuda:0")  # 1 GiB
        (before,) = [r for r in readings(collector) if r.device == "gpu0"]
        assert before.alloc_allocated_bytes is not None
        assert before.alloc_allocated_bytes >= 1 * GIB
        assert before.alloc_reserved_bytes >= before.alloc_allocated_bytes
        ooms = before.alloc_ooms
        free, _ = torch.cuda.mem_get_info(0)
        with pytest.raises(torch.cuda.OutOfMemoryError):
            torch.empty(int(free) + (4 << 30), dtype=torch.uint8, device="cuda:0")
        (after,) = [r for r in readings(collector) if r.device == "gpu0"]
        assert after.alloc_ooms == ooms + 1
        del block
        torch.cuda.empty_cache()
        (freed,) = [r for r in readings(collector) if r.device == "gpu0"]
        assert freed.alloc_allocated_bytes < before.alloc_allocated_bytes
    finally:
        collector.close()
