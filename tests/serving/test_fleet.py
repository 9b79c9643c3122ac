"""The fleet on real Triton processes: answers, variants, faults, kill, restart, clean stop."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from serving.fleet import Fleet, FleetConfig, Replica, _group_alive
from serving.onnx_mlp import IN_FEATURES, reference_forward

pytestmark = pytest.mark.slow


def _infer(url: str, model: str, x: np.ndarray, out: str) -> np.ndarray:
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp]).as_numpy(out)


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_every_replica_serves_both_variants_with_the_right_numbers(fleet: Fleet) -> None:
    x = np.random.default_rng(0).standard_normal((8, IN_FEATURES), dtype=np.float32)
    ref = reference_forward(x)
    for replica in fleet.replicas:
        full = _infer(replica.url, "mlp", x, "probs")
        lite = _infer(replica.url, "mlp_lite", x, "probs")
        assert np.allclose(full, ref, atol=1e-4)
        assert np.max(np.abs(lite - ref)) <= 0.1
        xs = np.arange(8, dtype=np.float32).reshape(2, 4) / 3
        assert np.array_equal(_infer(replica.url, "synth", xs, "y"), 2 * xs + 1)
        assert np.allclose(_infer(replica.url, "synth_lite", xs, "y"), 2 * xs + 1, rtol=1e-3)


def test_fault_endpoint_validates_and_slows_the_model(fleet: Fleet) -> None:
    replica = fleet.replicas[0]
    code, body = _post(f"{replica.control_url}/faults", b'{"latency_factor": -3}')
    assert code == 400 and "latency_factor" in body["error"]
    code, body = _post(f"{replica.control_url}/faults", b"not json")
    assert code == 400
    xs = np.ones((1, 4), dtype=np.float32)

    def median_ms() -> float:
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            _infer(replica.url, "synth", xs, "y")
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e3)

    before = median_ms()
    code, _ = _post(f"{replica.control_url}/faults", b'{"extra_latency_ms": 40}')
    assert code == 200
    try:
        assert median_ms() >= before + 30
    finally:
        urllib.request.urlopen(urllib.request.Request(
            f"{replica.control_url}/faults", method="DELETE"), timeout=5).read()


def test_killed_replica_restarts_on_the_same_ports(fleet: Fleet) -> None:
    replica = fleet.replicas[1]
    old_pid, url = replica.pid, replica.url
    fleet.kill(replica.name)
    assert not fleet.is_ready(replica)
    fleet.restart(replica.name)
    assert replica.pid != old_pid and replica.url == url and replica.restarts >= 1
    assert fleet.is_ready(replica)


def test_hung_replica_answers_nothing_until_resumed(fleet: Fleet) -> None:
    replica = fleet.replicas[0]
    fleet.hang(replica.name)
    try:
        with pytest.raises((urllib.error.URLError, TimeoutError, OSError)):
            urllib.request.urlopen(f"{replica.url}/v2/health/ready", timeout=0.5)
    finally:
        fleet.resume(replica.name)
    assert fleet.is_ready(replica)


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    fleet = Fleet(FleetConfig(models=["synth"]), tmp_path)
    (replica,) = fleet.start(1)
    pgid = replica.pid
    assert pgid is not None and _group_alive(pgid)
    children = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid]
    assert len(children) >= 3  # replica, tritonserver, backend stubs
    fleet.stop_all()
    assert not _group_alive(pgid)
    assert fleet.replicas == []


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_model_runs_on_the_twin_whose_faults_reach_requests(fleet: Fleet) -> None:
    replica = fleet.replicas[0]
    xs = np.ones((1, 4), dtype=np.float32)
    for _ in range(20):
        _infer(replica.url, "synth", xs, "y")
    reading = _get(f"{replica.control_url}/gpu")
    assert reading["simulated"] is True and reading["device"] == f"sim-{replica.name}"
    assert reading["utilization"] > 0
    code, body = _post(f"{replica.control_url}/gpu/faults", b'{"power_cap_w": -5}')
    assert code == 400
    code, _ = _post(f"{replica.control_url}/gpu/faults", b'{"xid": 79}')
    assert code == 200
    try:
        with pytest.raises(Exception, match="XID 79"):
            _infer(replica.url, "synth", xs, "y")
    finally:
        urllib.request.urlopen(urllib.request.Request(
            f"{replica.control_url}/gpu/faults", method="DELETE"), timeout=5).read()
    assert np.array_equal(_infer(replica.url, "synth", xs, "y"), 2 * xs + 1)
    assert _get(f"{replica.control_url}/gpu")["xid_errors"] >= 1


def test_scale_out_and_in_follows_membership_and_reaps_removed(tmp_path: Path) -> None:
    seen: list[list[str]] = []
    fleet = Fleet(FleetConfig(models=["synth"]), tmp_path,
                  on_change=lambda rs: seen.append(sorted(r.name for r in rs)))
    try:
        fleet.scale(1)
        (first,) = fleet.replicas
        fleet.scale(2)
        assert sorted(r.name for r in fleet.replicas) == ["r0", "r1"]
        newest = fleet.get("r1")
        assert fleet.is_ready(newest) and newest.cold_start_s > 0
        pgid = newest.pid
        fleet.scale(1)
        assert [r.name for r in fleet.replicas] == ["r0"]
        assert pgid is not None and not _group_alive(pgid)
        # the removed replica's start still counts as a cold start of this deployment
        assert list(fleet.recent_cold_starts) == [first.cold_start_s, newest.cold_start_s]
        assert fleet.is_ready(first)
        assert seen == [["r0"], ["r0", "r1"], ["r0"]]
        with pytest.raises(ValueError):
            fleet.scale(-1)
    finally:
        fleet.stop_all()
    assert fleet.alive_groups() == []


def test_replica_control_client_sets_reads_and_clears_faults(fleet: Fleet) -> None:
    from serving.replica_control import ReplicaControl, ReplicaControlError

    control = ReplicaControl(fleet.replicas[0].control_url)
    try:
        assert control.set_faults(jitter_ms=30, jitter_prob=0.2)["jitter_ms"] == 30.0
        assert control.faults()["jitter_prob"] == 0.2
        with pytest.raises(ReplicaControlError, match="400"):
            control.set_faults(error_rate=2.0)
        assert control.faults()["jitter_ms"] == 30.0  # a refused update changes nothing
    finally:
        assert control.clear_faults()["jitter_ms"] == 0.0
    with pytest.raises(ReplicaControlError, match="unreachable"):
        ReplicaControl("http://127.0.0.1:9", timeout_s=1).faults()


def test_fleet_keeps_only_the_recent_cold_starts(tmp_path: Path, monkeypatch) -> None:
    """The first, slow start ages out after RECENT_COLD_STARTS newer ones (readiness stubbed:
    what is measured here is the bookkeeping, not Triton)."""
    fleet = Fleet(FleetConfig(models=["synth"]), tmp_path)
    monkeypatch.setattr(fleet, "is_ready", lambda replica, timeout=1.0: True)
    alive = subprocess.Popen(["sleep", "30"])
    try:
        for i in range(Fleet.RECENT_COLD_STARTS + 1):
            took = 20.0 if i == 0 else 5.0
            fleet._wait_ready(Replica(f"r{i}", 1, 2, 3, 4, process=alive,
                                      started_at=time.monotonic() - took))
        assert len(fleet.recent_cold_starts) == Fleet.RECENT_COLD_STARTS
        assert 5.0 <= max(fleet.recent_cold_starts) < 6.0  # r0's 20 s start aged out
    finally:
        alive.kill()
        alive.wait()
