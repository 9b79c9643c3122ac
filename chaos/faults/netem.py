"""Network delay and loss with ``tc netem`` on an interface inside a network namespace.

For fleets whose replicas run in their own namespaces (containers, pods: ``netns`` names one,
``dev`` its interface): ``ip netns exec NS tc qdisc replace dev DEV root netem ...`` and, on
revert, ``tc qdisc del dev DEV root`` (a missing qdisc is fine: idempotent).

:meth:`NetworkDelay.available` checks, without side effects that outlive it, that ``ip`` and
``tc`` exist, that we are root, that the namespace exists, and that the kernel has the netem
qdisc (it creates a scratch namespace with a veth pair, tries ``netem``, and removes both).
Measured on the lab machine: namespaces and veth work, the kernel lacks ``sch_netem``
("Specified qdisc kind is unknown"), so the fault skips there with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

from chaos.errors import ActivityFailed, FaultUnavailable
from chaos.faults.base import Fault
from chaos.target import Target

__all__ = ["NetworkDelay", "netem_support"]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)


def netem_support() -> str | None:
    """``None`` when netem can be used in a namespace here, else why not."""
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "needs root for network namespaces and tc"
    tag = uuid.uuid4().hex[:6]
    ns, veth = f"wchaos{tag}", f"wc{tag}"
    try:
        r = _run("ip", "netns", "add", ns)
        if r.returncode:
            return f"`ip netns add` failed: {r.stderr.strip()}"
        r = _run("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        if r.returncode:
            return f"cannot create a veth pair: {r.stderr.strip()}"
        r = _run("tc", "qdisc", "add", "dev", veth, "root", "netem", "delay", "1ms")
        if r.returncode:
            return f"kernel lacks the netem qdisc (sch_netem): {r.stderr.strip()}"
        return None
    finally:
        _run("ip", "link", "del", veth)
        _run("ip", "netns", "del", ns)


class NetworkDelay(Fault):
    """Add ``delay_ms`` (+- ``jitter_ms``) and ``loss_pct`` on ``dev`` inside ``netns``."""

    def __init__(self, target: Target, *, netns: str, dev: str = "eth0", delay_ms: float = 100.0,
                 jitter_ms: float = 0.0, loss_pct: float = 0.0) -> None:
        super().__init__(target)
        if delay_ms < 0 or jitter_ms < 0 or not 0 <= loss_pct <= 100:
            raise ValueError("delay_ms, jitter_ms >= 0 and loss_pct in [0, 100]")
        self.netns, self.dev = netns, dev
        self.delay_ms, self.jitter_ms, self.loss_pct = delay_ms, jitter_ms, loss_pct

    def available(self) -> str | None:
        reason = netem_support()
        if reason:
            return reason
        if self.netns not in _run("ip", "netns", "list").stdout.split():
            return f"network namespace {self.netns!r} does not exist"
        return None

    def _tc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", self.netns, "tc", "qdisc", *args)

    def inject(self) -> None:
        reason = self.available()
        if reason:
            raise FaultUnavailable(reason)
        spec = ["delay", f"{self.delay_ms}ms"] + ([f"{self.jitter_ms}ms"] if self.jitter_ms else [])
        spec += ["loss", f"{self.loss_pct}%"] if self.loss_pct else []
        r = self._tc("replace", "dev", self.dev, "root", "netem", *spec)
        if r.returncode:
            raise ActivityFailed(f"tc netem on {self.netns}/{self.dev}: {r.stderr.strip()}")

    def revert(self) -> None:
        r = self._tc("del", "dev", self.dev, "root")
        if r.returncode and "No such file" not in r.stderr and "Cannot find" not in r.stderr \
                and "Cannot delete qdisc with handle of zero" not in r.stderr:
            raise ActivityFailed(f"removing netem on {self.netns}/{self.dev}: {r.stderr.strip()}")

    def describe(self) -> str:
        return f"netem {self.delay_ms} ms / {self.loss_pct}% loss on {self.netns}/{self.dev}"
