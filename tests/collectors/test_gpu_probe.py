"""benchmarks/gpu_probe.py on this GPU-less host: a clear message, exit 0, and the twin table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from collectors.nvml import NvmlCollector

PROBE = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_probe.py"


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("gpu_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _no_gpu_here():
    if NvmlCollector.available():
        pytest.skip("this host has an NVIDIA GPU: run benchmarks/gpu_probe.py by hand")


def test_without_gpu_says_so_and_exits_zero(probe, capsys):
    assert probe.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no NVIDIA GPU: NVML init failed (")
    assert "t_s" not in out  # no table without --twin


def test_twin_table_shows_a_cooling_failure_arc(probe, capsys):
    assert probe.main(["--twin", "--quick"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line[:6].strip().replace(".", "").isdigit()]
    assert len(rows) == 19 and all(r[1] == "sim0" and r[2] == "yes" for r in rows)
    temps = [float(r[3]) for r in rows]
    clocks = [float(r[6]) for r in rows]
    exec_ms = [float(r[16]) for r in rows if r[16] != "-"]
    assert max(temps) > 87 and max(temps) == max(temps[6:13])  # hottest while the fault is on
    assert min(clocks[1:]) < 1000 and clocks[-1] == 1695
    assert max(exec_ms) > 2 * exec_ms[1]  # the same 4 ms of work took over twice as long
