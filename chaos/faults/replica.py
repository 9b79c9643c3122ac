"""Replica faults: a crash (SIGKILL of the whole process group) and a hang (SIGSTOP).

Kill reverts by restarting the replica on its ports, which only the fleet's owner can do (see
:class:`chaos.target.UrlTarget`); hang reverts with SIGCONT, which any process on the machine can
send. Both are idempotent: killing a dead replica or resuming a running one changes nothing.

A resumed replica does not always live: once in a CI run, Triton 2.51 aborted on SIGCONT after
an 8 s stop under traffic (``terminate called after throwing an instance of
'boost::interprocess::lock_exception'``, from the Python backend's shared-memory IPC with its
stub). So the hang's revert watches the replica for a few seconds; if it died, it restarts it,
so that later experiments find the lab whole, and fails the revert with
:class:`ReplicaDiedOnResume`, which the journal records as the experiment's reason.
"""

from __future__ import annotations

import time

from chaos.errors import ActivityFailed
from chaos.faults.base import Fault
from chaos.target import Target

__all__ = ["DIED_ON_RESUME", "HangReplica", "KillReplica", "ReplicaDiedOnResume"]

DIED_ON_RESUME = "died when resumed"  # in the revert's message, hence the journal's reason
RESUME_WATCH_S = 4.0  # the abort came 0.8 s after SIGCONT; the replica process exits after it


class ReplicaDiedOnResume(ActivityFailed):
    """The replica's processes exited after SIGCONT (it was restarted where the target can)."""


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
        deadline = time.monotonic() + RESUME_WATCH_S
        while time.monotonic() < deadline:
            if not self.target.is_running(self.replica):
                self.target.restart(self.replica)
                raise ReplicaDiedOnResume(
                    f"{self.replica} {DIED_ON_RESUME} (SIGCONT); restarted it")
            time.sleep(0.2)

    def describe(self) -> str:
        return f"hang replica {self.replica} (SIGSTOP)"
