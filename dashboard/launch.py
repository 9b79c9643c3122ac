"""Start the dashboard as its own process: ``streamlit run dashboard/app.py -- --db PATH``.

Why a subprocess: Streamlit owns its event loop, signal handlers and script runner threads, so
it cannot share the engine's process; the lab (``warden up``) and ``warden dashboard`` both start
it through :func:`start_dashboard`, headless, on loopback, without usage statistics, and with
the file watcher off (nothing to hot-reload in production, and it costs CPU on a busy box).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

__all__ = [
    "APP_PATH",
    "DashboardStartError",
    "dashboard_env",
    "start_dashboard",
    "stop_dashboard",
    "streamlit_command",
    "wait_ready",
]

APP_PATH = Path(__file__).resolve().parent / "app.py"
_ROOT = APP_PATH.parent.parent
READY_TIMEOUT_S = 30.0


class DashboardStartError(RuntimeError):
    """Streamlit exited or did not answer its health check in time."""


def streamlit_command(db: str | Path, *, port: int, address: str = "127.0.0.1",
                      home: str | Path | None = None, python: str = sys.executable) -> list[str]:
    """The ``streamlit run`` command line for the dashboard over ``db``."""
    cmd = [
        python, "-m", "streamlit", "run", str(APP_PATH),
        "--server.headless", "true",
        "--server.address", address,
        "--server.port", str(port),
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--theme.base", "light",
        "--", "--db", str(db),
    ]
    if home is not None:
        cmd += ["--home", str(home)]
    return cmd


def dashboard_env() -> dict[str, str]:
    env = dict(os.environ)
    # `streamlit run` imports the app as a script; the repository root must be importable.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def start_dashboard(db: str | Path, *, port: int, address: str = "127.0.0.1",
                    home: str | Path | None = None, log: IO[bytes] | None = None
                    ) -> subprocess.Popen[bytes]:
    """Start Streamlit in the background; call :func:`wait_ready`, then :func:`stop_dashboard`."""
    return subprocess.Popen(
        streamlit_command(db, port=port, address=address, home=home), env=dashboard_env(),
        stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        start_new_session=True)


def wait_ready(proc: subprocess.Popen[bytes], url: str, *,
               timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll Streamlit's ``/_stcore/health`` until it answers ``ok``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DashboardStartError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise DashboardStartError(f"dashboard at {url} not ready after {timeout_s:g} s")


def stop_dashboard(proc: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    """Terminate Streamlit (SIGTERM, then SIGKILL after ``timeout_s``)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)
