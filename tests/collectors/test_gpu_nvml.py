"""NvmlCollector against FakeNvml (this host has no GPU), and the real pynvml's failure path."""

from __future__ import annotations

import pytest
from gpu_fakes import (
    GIB,
    FakeGpu,
    FakeNvml,
    FakeTorch,
    NVMLError_GpuIsLost,
    NVMLError_LibraryNotFound,
    NVMLError_Unknown,
    torch_stats,
)

from collectors.gpu import NvmlGpuCollector, make_gpu_collector
from collectors.gpu_twin_source import TwinCollector
from collectors.nvml import NvmlCollector, NvmlUnavailable
from warden.records import GpuReading, Sample


def split(items):
    readings = [i for i in items if isinstance(i, GpuReading)]
    samples = {(s.series, s.labels): s.value for s in items if isinstance(s, Sample)}
    return readings, samples


def test_reads_every_field_in_warden_units():
    nvml = FakeNvml([FakeGpu(reasons=0x24, ecc_uncorrected=2), FakeGpu(temperature=40)])
    items = NvmlCollector(nvml, replica="r0").collect(now=1000.0)
    (r0, r1), samples = split(items)
    assert r0 == GpuReading(
        ts=1000.0, device="gpu0", simulated=False, temperature_c=61.0, power_w=412.345,
        power_limit_w=700.0, sm_clock_mhz=1755.0, sm_clock_max_mhz=1980.0, mem_clock_mhz=2619.0,
        utilization=0.87, memory_used_bytes=31.0 * GIB, memory_total_bytes=80.0 * GIB,
        throttle_reasons=("SW_POWER_CAP", "SW_THERMAL_SLOWDOWN"), xid_errors=0, ecc_errors=2,
        replica="r0")
    assert (r1.device, r1.temperature_c) == ("gpu1", 40.0)
    assert r0.alloc_allocated_bytes is None  # no allocator read unless asked
    key = ("gpu_process_memory_bytes", (("device", "gpu0"), ("pid", "4242"), ("replica", "r0")))
    assert samples[key] == 30 * GIB


def test_not_supported_gives_defaults_without_counting_errors():
    gpu = FakeGpu(unsupported={"nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetPowerUsage",
                               "nvmlDeviceGetComputeRunningProcesses"}, events_supported=False)
    nvml = FakeNvml([gpu])
    collector = NvmlCollector(nvml)
    (r,), samples = split(collector.collect(now=1.0))
    assert (r.ecc_errors, r.power_w, r.temperature_c) == (0, 0.0, 61.0)
    assert not any(series == "gpu_process_memory_bytes" for series, _ in samples)
    assert collector.errors == {}
    assert nvml.wait_timeouts == []  # no event set registered, so none waited on


def test_other_nvml_errors_are_counted_and_collection_goes_on():
    gpu = FakeGpu(failing={"nvmlDeviceGetTemperature": NVMLError_GpuIsLost(),
                           "nvmlDeviceGetMemoryInfo": NVMLError_Unknown(),
                           "nvmlDeviceGetUtilizationRates": RuntimeError("binding broke")})
    collector = NvmlCollector(FakeNvml([gpu]))
    for _ in range(2):
        (r,), samples = split(collector.collect(now=1.0))
    assert (r.temperature_c, r.memory_total_bytes, r.utilization) == (0.0, 0.0, 0.0)
    assert r.sm_clock_mhz == 1755.0  # the rest still read
    assert collector.errors == {"nvmlDeviceGetTemperature": 2, "nvmlDeviceGetMemoryInfo": 2,
                                "nvmlDeviceGetUtilizationRates": 2}
    errors_key = ("warden_gpu_collector_errors_total", (("collector", "nvml"), ("replica", "")))
    assert samples[errors_key] == 6.0


def test_xid_events_are_drained_without_blocking_and_counted():
    nvml = FakeNvml([FakeGpu(), FakeGpu()])
    collector = NvmlCollector(nvml)
    collector.start()
    nvml.push_xid(1, 13)
    nvml.push_xid(1, 79)
    (r0, r1), samples = split(collector.collect(now=1.0))
    assert (r0.xid_errors, r1.xid_errors) == (0, 2)
    assert samples[("gpu_xid_last_code", (("device", "gpu1"), ("replica", "")))] == 79.0
    assert set(nvml.wait_timeouts) == {0}
    (_, r1), _ = split(collector.collect(now=2.0))
    assert r1.xid_errors == 2  # a running count, not re-counted


def test_old_driver_falls_back_to_throttle_reasons():
    nvml = FakeNvml([FakeGpu(reasons=0x48)], event_reasons_function=False)
    collector = NvmlCollector(nvml)
    (r,), _ = split(collector.collect(now=1.0))
    assert r.throttle_reasons == ("HW_SLOWDOWN", "HW_THERMAL_SLOWDOWN")
    assert collector.errors == {}


def test_processes_with_hidden_memory_are_skipped():
    nvml = FakeNvml([FakeGpu(processes=[(1, None), (2, 5 * GIB)])])
    _, samples = split(NvmlCollector(nvml).collect(now=1.0))
    pids = {dict(labels)["pid"] for series, labels in samples
            if series == "gpu_process_memory_bytes"}
    assert pids == {"2"}


def test_init_failure_and_availability():
    broken = FakeNvml(init_error=NVMLError_LibraryNotFound())
    assert NvmlCollector.available(broken) is False
    assert "NVMLError_LibraryNotFound" in NvmlCollector.init_error(broken)
    with pytest.raises(NvmlUnavailable, match="NVML init failed"):
        NvmlCollector(broken).collect(now=1.0)
    nogpu = FakeNvml([])
    assert NvmlCollector.init_error(nogpu) == "NVML initialised but reports no devices"
    good = FakeNvml()
    assert NvmlCollector.available(good) is True
    assert good.inits == good.shutdowns == 1  # the probe leaves NVML as it found it


def test_close_frees_event_sets_and_shuts_down():
    nvml = FakeNvml([FakeGpu(), FakeGpu()])
    collector = NvmlCollector(nvml)
    collector.collect(now=1.0)
    assert collector.device_names == {"gpu0": "NVIDIA H100 80GB HBM3",
                                      "gpu1": "NVIDIA H100 80GB HBM3"}
    collector.close()
    collector.close()
    assert sorted(nvml.freed) == sorted(nvml.event_sets) and len(nvml.freed) == 2
    assert nvml.inits == nvml.shutdowns == 1


def test_factory_picks_nvml_and_merges_allocator_stats():
    torch = FakeTorch({0: torch_stats(10 * GIB, 12 * GIB, 11 * GIB, 512 << 20, 3, 1)})
    collector = make_gpu_collector(nvml=FakeNvml([FakeGpu(), FakeGpu()]), torch=torch)
    assert isinstance(collector, NvmlGpuCollector) and collector.simulated is False
    (r0, r1), _ = split(collector.collect(now=5.0))
    assert (r0.alloc_allocated_bytes, r0.alloc_reserved_bytes, r0.alloc_active_bytes,
            r0.alloc_inactive_split_bytes, r0.alloc_retries, r0.alloc_ooms) == (
        10.0 * GIB, 12.0 * GIB, 11.0 * GIB, float(512 << 20), 3, 1)
    assert r1.alloc_allocated_bytes is None  # torch never touched gpu1
    collector.close()


def test_real_pynvml_here_has_no_gpu_and_factory_falls_back_to_twin():
    import pynvml

    if NvmlCollector.init_error(pynvml) is None:
        pytest.skip("this host has an NVIDIA GPU: test_gpu_real.py covers it")
    assert NvmlCollector.available(pynvml) is False
    assert NvmlCollector.init_error(pynvml)  # a reason, for the probe to print
    collector = make_gpu_collector(nvml=pynvml)
    assert isinstance(collector, TwinCollector) and collector.simulated is True
    (reading,) = collector.collect(now=1.0)
    assert reading.simulated is True and reading.device == "sim0"
    with pytest.raises(NvmlUnavailable):
        make_gpu_collector(nvml=pynvml, prefer="nvml")
    with pytest.raises(ValueError, match="prefer"):
        make_gpu_collector(prefer="gpu")
