"""Probe the GPU collectors: real readings on an NVIDIA host, the twin's table elsewhere.

On a host with an NVIDIA GPU this starts a real CUDA workload (fp16 torch matmuls of varying
shapes, so the caching allocator moves too) when torch with CUDA is importable, else reads NVML
alone, and samples ``NvmlCollector`` + ``TorchAllocatorCollector`` every ``--interval`` seconds
for ``--seconds``, printing one row per device per sample. ``exec_ms`` is the mean wall time of
one workload step in the interval, so a throttling GPU shows up as a slower step.

Without a GPU it says so and exits 0; with ``--twin`` it prints the same table for the simulated
twin under a synthetic load (4 ms of work every 10 ms), in virtual time so a cooling failure's
whole arc (temperature up, clock down, stretch and step time up, recovery) prints at once.

    python benchmarks/gpu_probe.py                    # real GPU, 20 s
    python benchmarks/gpu_probe.py --twin             # twin: healthy, cooling failure, cleared
    python benchmarks/gpu_probe.py --twin --fault power_cap --quick
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.allocator import TorchAllocatorCollector, load_torch  # noqa: E402
from collectors.gpu import NvmlGpuCollector  # noqa: E402
from collectors.nvml import NvmlCollector, NvmlUnavailable, load_pynvml  # noqa: E402
from serving.gpu_twin import GpuTwin, SimulatedGpuError  # noqa: E402
from warden.records import GpuReading  # noqa: E402

GIB = float(1 << 30)
MIB = float(1 << 20)
FAULTS: dict[str, dict[str, Any]] = {
    "cooling": {"cooling_failure": True},
    "power_cap": {"power_cap_w": 75.0},
    "leak": {"memory_leak_mib_per_s": 1024.0},
    "fragmentation": {"fragmentation": True},
    "xid": {"xid": 79},
    "none": {},
}
HEADER = (f"{'t_s':>6} {'dev':<5} {'sim':<3} {'temp_C':>6} {'power_W':>7} {'limit_W':>7} "
          f"{'sm_MHz':>6} {'stretch':>7} {'util':>5} {'used_GiB':>8} {'alloc_GiB':>9} "
          f"{'resv_GiB':>8} {'split_MiB':>9} {'retry':>5} {'oom':>4} {'xid':>3} "
          f"{'exec_ms':>7}  reasons")


def row(t: float, r: GpuReading, exec_ms: float | None) -> str:
    def gib(v: float | None) -> str:
        return "-" if v is None else f"{v / GIB:.2f}"

    idle = "GPU_IDLE" in r.throttle_reasons or not r.sm_clock_mhz  # idle clock: no ratio
    stretch = "-" if idle else f"{r.sm_clock_max_mhz / r.sm_clock_mhz:.2f}"
    split_b = r.alloc_inactive_split_bytes
    split = "-" if split_b is None else f"{split_b / MIB:.1f}"
    return (f"{t:6.1f} {r.device:<5} {'yes' if r.simulated else 'no':<3} {r.temperature_c:6.1f} "
            f"{r.power_w:7.1f} {r.power_limit_w:7.1f} {r.sm_clock_mhz:6.0f} {stretch:>7} "
            f"{r.utilization:5.2f} {r.memory_used_bytes / GIB:8.2f} "
            f"{gib(r.alloc_allocated_bytes):>9} {gib(r.alloc_reserved_bytes):>8} {split:>9} "
            f"{'-' if r.alloc_retries is None else r.alloc_retries:>5} "
            f"{'-' if r.alloc_ooms is None else r.alloc_ooms:>4} {r.xid_errors:>3} "
            f"{'-' if exec_ms is None else f'{exec_ms:.2f}':>7}  {','.join(r.throttle_reasons)}")


# ---------------------------------------------------------------------- real GPU
class MatmulLoad:
    """fp16 matmuls on cuda:0 in a thread, shapes cycling so the allocator sees variety."""

    def __init__(self, torch: Any, size: int) -> None:
        self.torch, self.size = torch, size
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.steps: list[float] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        torch = self.torch
        try:
            a = torch.randn(self.size, self.size, device="cuda:0", dtype=torch.float16)
            i = 0
            while not self.stop.is_set():
                n = self.size // (1 + i % 4)  # 4 shapes: fragmentation and cache growth
                start = time.perf_counter()
                b = torch.randn(n, self.size, device="cuda:0", dtype=torch.float16)
                for _ in range(8):
                    c = b @ a
                torch.cuda.synchronize(0)
                del b, c
                with self.lock:
                    self.steps.append((time.perf_counter() - start) * 1000)
                i += 1
        except BaseException as exc:  # reported by the probe, not swallowed
            self.error = exc

    def take_mean_ms(self) -> float | None:
        with self.lock:
            steps, self.steps = self.steps, []
        return sum(steps) / len(steps) if steps else None


def provoke_oom(torch: Any) -> None:
    """Ask the caching allocator for more than the device has, so ``num_ooms`` moves.

    A plain device allocation (never managed memory, which can hang a GPU when oversubscribed):
    cudaMalloc fails, the allocator flushes its cache, retries, then raises OutOfMemoryError.
    """
    free, _total = torch.cuda.mem_get_info(0)
    try:
        torch.empty(int(free) + (4 << 30), dtype=torch.uint8, device="cuda:0")
    except torch.cuda.OutOfMemoryError as exc:
        print(f"provoked OOM: {str(exc).splitlines()[0][:120]}")


def probe_gpu(args: argparse.Namespace) -> int:
    try:
        pynvml = load_pynvml()
    except NvmlUnavailable as exc:
        print(f"no NVIDIA GPU: {exc}")
        return -1
    why = NvmlCollector.init_error(pynvml)
    if why is not None:
        print(f"no NVIDIA GPU: NVML init failed ({why})")
        return -1
    nvml = NvmlCollector(pynvml)
    nvml.start()
    print("devices:", ", ".join(f"{k}={v}" for k, v in nvml.device_names.items()))
    torch = load_torch()
    load = None
    allocator = None
    if torch is not None and TorchAllocatorCollector.available(torch):
        print(f"workload: torch {torch.__version__} fp16 matmuls {args.size}x{args.size} on cuda:0")
        allocator = TorchAllocatorCollector(torch)
        load = MatmulLoad(torch, args.size)
        load.thread.start()
    else:
        print("note: torch with CUDA is not importable here: NVML readings only, no workload "
              "started (allocator columns '-')")
    collector = NvmlGpuCollector(nvml, allocator)
    print(HEADER)
    t0 = time.monotonic()
    try:
        while (t := time.monotonic() - t0) < args.seconds:
            exec_ms = load.take_mean_ms() if load else None
            for item in collector.collect():
                if isinstance(item, GpuReading):
                    print(row(t, item, exec_ms), flush=True)
            if load and load.error:
                print(f"workload failed: {load.error!r}")
                break
            time.sleep(args.interval)
        if load and args.oom:
            load.stop.set()
            load.thread.join(10)
            provoke_oom(torch)
            for item in collector.collect():
                if isinstance(item, GpuReading):
                    print(row(time.monotonic() - t0, item, None), "  <- after OOM", flush=True)
    finally:
        if load:
            load.stop.set()
            load.thread.join(10)
        collector.close()
    if nvml.errors:
        print("NVML errors counted:", dict(nvml.errors))
    return 0


# ---------------------------------------------------------------------- twin
class VirtualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def probe_twin(args: argparse.Namespace) -> int:
    clock = VirtualClock()
    twin = GpuTwin("sim0", clock=clock, wall_clock=clock, sleep=clock.sleep)
    phase_s = 30.0 if args.quick else 90.0
    every = args.interval if args.interval_given else phase_s / 6
    fault = FAULTS[args.fault]
    print(f"twin sim0 (A10-like), virtual time; synthetic load 4 ms work / 6 ms idle; "
          f"fault {fault or 'none'} at t={phase_s:.0f} s, cleared at t={2 * phase_s:.0f} s")
    print(HEADER)
    next_row, steps, failures, phase = 0.0, [], 0, 0
    while clock.t < 3 * phase_s:
        if phase == 0 and clock.t >= phase_s:
            twin.apply_faults(fault)
            phase = 1
        if phase == 1 and clock.t >= 2 * phase_s:
            twin.clear_faults()
            phase = 2
        start = clock.t
        try:
            with twin.executing(batch_size=8, input_bytes=8 * 4096):
                clock.t += 0.004  # the model's real work, in virtual time
            steps.append((clock.t - start) * 1000)
        except SimulatedGpuError:
            failures += 1
        clock.t += 0.006
        if clock.t >= next_row:
            exec_ms = sum(steps) / len(steps) if steps else None
            print(row(clock.t, twin.reading(clock.t), exec_ms)
                  + (f" failed={failures}" if failures else ""))
            next_row += every
            steps, failures = [], 0
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--twin", action="store_true",
                        help="without a GPU, print the table for the simulated twin")
    parser.add_argument("--fault", choices=sorted(FAULTS), default="cooling",
                        help="twin fault injected in the middle phase (default cooling)")
    parser.add_argument("--seconds", type=float, default=20.0, help="GPU sampling duration")
    parser.add_argument("--interval", type=float, default=None,
                        help="seconds between rows (GPU 0.5; twin a sixth of a phase, virtual)")
    parser.add_argument("--size", type=int, default=8192, help="matmul size on a real GPU")
    parser.add_argument("--quick", action="store_true", help="short run (GPU 5 s, twin 90 s)")
    parser.add_argument("--oom", action="store_true",
                        help="real GPU: end with an over-sized allocation so the OOM count moves")
    args = parser.parse_args(argv)
    args.interval_given = args.interval is not None
    if args.interval is None:
        args.interval = 0.5
    if args.quick:
        args.seconds = min(args.seconds, 5.0)
    status = probe_gpu(args)
    if status == -1:  # no GPU here
        return probe_twin(args) if args.twin else 0
    return status


if __name__ == "__main__":
    sys.exit(main())
