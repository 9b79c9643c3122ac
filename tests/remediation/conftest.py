"""Fixtures for remediation tests: a fake clock (sleep advances it), an audit in a temp DB."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediation.audit import AuditLog


class FakeClock:
    """Time that moves only when told; ``sleep`` advances it, so deadlines cost nothing."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def audit(tmp_path: Path, clock: FakeClock) -> AuditLog:
    return AuditLog.open(tmp_path / "warden.db", clock=clock)
