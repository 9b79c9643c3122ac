"""CPU contention on a replica: busy-loop processes pinned to the replica's CPUs.

Real and measurable: the workers compete with the replica's Triton and model threads for the
same cores (its own affinity, read from ``/proc``), so its compute really slows and its P99
moves; nothing is simulated. Each worker asks the kernel to SIGKILL it when the process that
started it dies (``PR_SET_PDEATHSIG``), so a crashed runner cannot leave them burning; their pids
go to the ledger too, and a cleanup kills only processes that carry this fault's marker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from chaos.faults.base import Fault
from chaos.target import Target

__all__ = ["CpuContention"]

MARKER = "warden-chaos-cpu-burn"
_BUSY = ("import ctypes, os, signal, sys\n"
         "ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL)\n"
         "cpus = [int(c) for c in sys.argv[1].split(',') if c]\n"
         "cpus and os.sched_setaffinity(0, cpus)\n"
         "while True:\n    pass\n")


def _is_ours(pid: int) -> bool:
    try:
        return MARKER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class CpuContention(Fault):
    """``workers`` busy loops on the replica's CPUs for as long as the fault lasts."""

    def __init__(self, target: Target, *, replica: str, workers: int = 2) -> None:
        super().__init__(target)
        if not 1 <= workers <= 64:
            raise ValueError(f"workers must be in [1, 64], got {workers}")
        self.replica = replica
        self.workers = workers
        self._pids: list[int] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        target.replica(replica)

    def available(self) -> str | None:
        if self.target.replica(self.replica).pid is None:
            return f"replica {self.replica}: no pid known, so its CPUs are unknown on this host"
        return None

    def _cpus(self) -> list[int]:
        pid = self.target.replica(self.replica).pid
        try:
            return sorted(os.sched_getaffinity(pid)) if pid else []
        except OSError:
            return []

    def inject(self) -> None:
        if any(p.poll() is None for p in self._procs):
            return
        cpus = ",".join(map(str, self._cpus()))
        self._procs = [subprocess.Popen([sys.executable, "-c", _BUSY, cpus, MARKER],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                       for _ in range(self.workers)]
        self._pids = [p.pid for p in self._procs]

    def revert(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
        for pid in self._pids:  # pids from the ledger (another process's workers)
            if _is_ours(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._procs, self._pids = [], []

    def state(self) -> dict[str, Any]:
        return {"pids": list(self._pids)}

    def restore(self, state: dict[str, Any]) -> None:
        self._pids = [int(p) for p in state.get("pids", [])]

    def describe(self) -> str:
        return f"CPU contention on {self.replica}: {self.workers} busy workers"
