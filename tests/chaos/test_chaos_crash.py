"""Faults are always reverted: the runner killed with SIGKILL mid-experiment, and SIGTERM.

The lab lives in this (pytest) process; the runner is a separate process given the lab as a
target file, exactly as ``warden chaos run --target`` runs against a fleet it does not own.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from chaos.faults.cpu import MARKER
from chaos.ledger import Ledger, revert_leftovers
from chaos.probes import faults_cleared, gpu_fault_state, model_ready

ROOT = Path(__file__).parents[2]
pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def _experiment(tmp_path, method, watch_s=60):
    exp = {"title": "crash me", "method": method,
           "steady_state_hypothesis": {"probes": [
               {"provider": "chaos.probes:faults_cleared", "arguments": {"replica": "r0"},
                "tolerance": True}]},
           "watch": {"duration_s": watch_s, "poll_s": 0.2},
           "expectations": {"hypothesis_during": "any"}}
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                   "")])}
    return subprocess.Popen([sys.executable, "-m", "chaos.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.mark.timeout(150)
def test_sigkill_of_the_runner_then_cleanup_restores_the_lab(tmp_path, chaos_target):
    target_file = chaos_target.write(tmp_path / "target.json")
    ledger_path = tmp_path / "faults.ledger"
    r0 = chaos_target.replica("r0")
    exp = _experiment(tmp_path, [
        {"type": "fault", "provider": "chaos.faults.model:ModelLatency",
         "arguments": {"replica": "r0", "latency_factor": 3}},
        {"type": "fault", "provider": "chaos.faults.gpu:CoolingFailure",
         "arguments": {"replica": "r0", "factor": 2}},
        {"type": "fault", "provider": "chaos.faults.cpu:CpuContention",
         "arguments": {"replica": "r0", "workers": 1}},
        {"type": "fault", "provider": "chaos.faults.replica:KillReplica",
         "arguments": {"replica": "r1"}},
    ])
    proc = _cli("run", str(exp), "--target", str(target_file), "--journal-dir",
                str(tmp_path / "j"), "--ledger", str(ledger_path))
    try:
        ledger = Ledger(ledger_path)
        _wait_for(lambda: len(ledger.outstanding()) == 4
                  and not chaos_target.is_running("r1"), 40, "four faults injected")
        # the faults are really in
        assert httpx.get(f"{r0.control_url}/faults").json()["latency_factor"] == 3
        assert "cooling_failure" in gpu_fault_state(chaos_target, replica="r0")
        cpu_pids = next(e for e in ledger.outstanding()
                        if e["provider"].endswith("CpuContention"))["state"]["pids"]
        assert cpu_pids and all(_alive(p) for p in cpu_pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the runner had no chance to clean up: the faults are still there
    assert not faults_cleared(chaos_target, replica="r0")
    assert not chaos_target.is_running("r1")
    _wait_for(lambda: not any(_alive(p) for p in cpu_pids), 5, "CPU workers to die with it")

    # 1. a separate cleanup process, from the URLs: reverts what URLs can, says what it cannot
    out = _cli("revert", "--ledger", str(ledger_path), "--target", str(target_file))
    text, _ = out.communicate(timeout=60)
    assert out.returncode == 1, text
    assert "reverted chaos.faults.model:ModelLatency" in text
    assert "reverted chaos.faults.gpu:CoolingFailure" in text
    assert "NOT reverted chaos.faults.replica:KillReplica" in text
    assert "only the process that owns the fleet can" in text
    assert faults_cleared(chaos_target, replica="r0")
    assert "cooling_failure" not in gpu_fault_state(chaos_target, replica="r0")

    # 2. the next runner in the lab's own process reverts the rest at start
    result = revert_leftovers(Ledger(ledger_path), chaos_target)
    assert result.ok and any("KillReplica" in r for r in result.reverted)
    assert Ledger(ledger_path).outstanding() == []
    for name in chaos_target.replicas:
        assert chaos_target.is_running(name)
        assert model_ready(chaos_target, replica=name, model="synth")
        assert faults_cleared(chaos_target, replica=name)
    assert not any(MARKER.encode() in Path(f"/proc/{p}/cmdline").read_bytes()
                   for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                   if Path(f"/proc/{p}/cmdline").exists())


@pytest.mark.timeout(60)
def test_sigterm_to_the_runner_reverts_before_it_exits(tmp_path, chaos_target):
    target_file = chaos_target.write(tmp_path / "target.json")
    exp = _experiment(tmp_path, [
        {"type": "fault", "provider": "chaos.faults.model:ModelLatency",
         "arguments": {"replica": "r0", "latency_factor": 4}},
        {"type": "fault", "provider": "chaos.faults.gpu:XidError",
         "arguments": {"replica": "r0", "code": 79}}])
    ledger_path = tmp_path / "faults.ledger"
    proc = _cli("run", str(exp), "--target", str(target_file), "--journal-dir",
                str(tmp_path / "j"), "--ledger", str(ledger_path))
    try:
        _wait_for(lambda: gpu_fault_state(chaos_target, replica="r0").get("device_lost"), 30,
                  "faults injected")
        proc.send_signal(signal.SIGTERM)
        text, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, text
    assert faults_cleared(chaos_target, replica="r0")
    assert not gpu_fault_state(chaos_target, replica="r0").get("device_lost")
    assert Ledger(ledger_path).outstanding() == []
    journal = json.loads(next((tmp_path / "j").glob("*.json")).read_text())
    assert journal["verdict"] == "interrupted"
    assert [f["reverted_at"] is not None for f in journal["faults"]] == [True, True]
