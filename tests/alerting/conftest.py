"""Fixtures for alerting tests; the helpers they use live in ``alerting_helpers``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alerting_helpers import Proc, RecordingServer, start_alertmanager, start_prometheus


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    srv = RecordingServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, object]], Proc]]:
    procs: list[Proc] = []

    def make(config: dict[str, object]) -> Proc:
        p = start_alertmanager(tmp_path / f"am{len(procs)}", config)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def make(config: dict[str, object], rules: dict[str, object]) -> Proc:
        p = start_prometheus(tmp_path / f"prom{len(procs)}", config, rules)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop()
