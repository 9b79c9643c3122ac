"""Replica faults: a crash (SIGKILL of the whole process group) and a hang (SIGSTOP).

Kill reverts by restarting the replica on its ports, which only the fleet's owner can do (see
:class:`chaos.target.UrlTarget`); hang reverts with SIGCONT, which any process on the machine can
send. Both are idempotent: killing a dead replica or resuming a running one changes nothing.
"""

from __future__ import annotations

from chaos.faults.base import Fault
from chaos.target import Target

__all__ = ["HangReplica", "KillReplica"]


class KillReplica(Fault):
    """SIGKILL one replica (Triton, its stubs and all): what an OOM-killed pod looks like."""

    def __init__(self, target: Target, *, replica: str) -> None:
        super().__init__(target)
        self.replica = replica
        target.replica(replica)  # unknown replica: fail at validation, not mid-run

    def inject(self) -> None:
        if self.target.is_running(self.replica):
            self.target.kill(self.replica)

    def revert(self) -> None:
        if not self.target.is_running(self.replica):
            self.target.restart(self.replica)

    def describe(self) -> str:
        return f"kill replica {self.replica}"


class HangReplica(Fault):
    """SIGSTOP one replica: it keeps its sockets and answers nothing, like a wedged process."""

    def __init__(self, target: Target, *, replica: str) -> None:
        super().__init__(target)
        self.replica = replica
        target.replica(replica)

    def inject(self) -> None:
        self.target.hang(self.replica)

    def revert(self) -> None:
        self.target.resume(self.replica)

    def describe(self) -> str:
        return f"hang replica {self.replica} (SIGSTOP)"
