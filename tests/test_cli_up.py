"""``warden up`` as a user runs it: starts, answers ``fleet status``, and Ctrl-C leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from serving.fleet import _group_alive

pytestmark = pytest.mark.slow


def _warden(*args: str, env: dict[str, str], **kw) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "warden.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_up_status_and_ctrl_c_leave_no_process(tmp_path: Path) -> None:
    env = {**os.environ, "WARDEN_HOME": str(tmp_path)}
    up = _warden("up", "--replicas", "1", "--router-port", "0", "--dashboard-port", "0",
                 env=env)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert up.stdout is not None
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert any("Ctrl-C" in l for l in lines), "".join(lines)[-3000:]
        info = json.loads((tmp_path / "lab.json").read_text())
        pgids = [r["pid"] for r in info["replicas"].values()]
        assert pgids and all(_group_alive(p) for p in pgids)
        dash = next(l.split()[1] for l in lines if l.startswith("dashboard"))
        with urllib.request.urlopen(f"{dash}/_stcore/health", timeout=5) as resp:
            assert resp.status == 200
        time.sleep(2)
        status = subprocess.run([sys.executable, "-m", "warden.cli", "fleet", "status"],
                                env=env, text=True, capture_output=True, timeout=30)
        assert status.returncode == 0, status.stderr
        row = next(l for l in status.stdout.splitlines() if l.startswith("r0"))
        assert " yes " in row and "True" in row
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, out[-3000:]
    assert "every replica's process group is gone" in out
    assert "traffic summary" in out
    assert not any(_group_alive(p) for p in pgids)
    assert not (tmp_path / "lab.json").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{dash}/_stcore/health", timeout=2)
    assert subprocess.run([sys.executable, "-m", "warden.cli", "fleet", "status"], env=env,
                          capture_output=True, timeout=30).returncode == 2
