"""A crash-safe ledger of injected faults, so a fault outlives no runner.

Before a fault is injected, the runner appends an ``inject`` line (provider, arguments, target
description) to a JSON-lines file and fsyncs it; after inject, a ``state`` line (pids and the
like); after revert, a ``revert`` line. A runner killed with SIGKILL leaves ``inject`` lines with
no ``revert``: :func:`revert_leftovers` (run by ``warden chaos revert --ledger`` or by the next
runner at start) rebuilds those faults against a target and reverts them, newest first. Reverts
are idempotent, so a fault that was half-injected, or already undone, is safe to revert again.
A torn last line (the crash hit mid-write) is skipped, not fatal.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.activity import build_fault
from chaos.errors import ChaosError
from chaos.target import Target

__all__ = ["Ledger", "LeftoverResult", "revert_leftovers"]

logger = logging.getLogger("warden.chaos")


class Ledger:
    """Append-only JSON lines; each write is flushed and fsynced before the action it guards."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def injecting(self, provider: str, arguments: dict[str, Any], target: Target,
                  experiment: str = "") -> str:
        fid = uuid.uuid4().hex[:12]
        self._append({"op": "inject", "id": fid, "ts": time.time(), "provider": provider,
                      "arguments": arguments, "target": target.describe(),
                      "experiment": experiment, "pid": os.getpid()})
        return fid

    def state(self, fid: str, state: dict[str, Any]) -> None:
        if state:
            self._append({"op": "state", "id": fid, "state": state})

    def reverted(self, fid: str, error: str = "") -> None:
        self._append({"op": "revert", "id": fid, "ts": time.time(), "error": error})

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("ledger %s: skipping a torn line", self.path)
        return out

    def outstanding(self) -> list[dict[str, Any]]:
        """Inject entries with no successful revert, oldest first, with their last state."""
        injected: dict[str, dict[str, Any]] = {}
        for e in self.entries():
            fid = e.get("id")
            if e.get("op") == "inject":
                injected[fid] = dict(e, state={})
            elif e.get("op") == "state" and fid in injected:
                injected[fid]["state"] = e.get("state", {})
            elif e.get("op") == "revert" and not e.get("error"):
                injected.pop(fid, None)
        return list(injected.values())


@dataclass
class LeftoverResult:
    reverted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def revert_leftovers(ledger: Ledger, target: Target) -> LeftoverResult:
    """Revert every outstanding fault of ``ledger`` on ``target``, newest first."""
    result = LeftoverResult()
    for entry in reversed(ledger.outstanding()):
        label = f"{entry.get('provider')} {entry.get('arguments')}"
        try:
            fault = build_fault(entry["provider"], entry.get("arguments", {}), target,
                                f"ledger {ledger.path} entry {entry.get('id')}")
            fault.restore(entry.get("state", {}))
            fault.revert()
        except (ChaosError, OSError) as exc:
            ledger.reverted(entry["id"], error=str(exc))
            result.failed.append(f"{label}: {exc}")
            logger.error("could not revert leftover %s: %s", label, exc)
            continue
        ledger.reverted(entry["id"])
        result.reverted.append(label)
        logger.warning("reverted leftover fault %s", label)
    return result
