"""Shared fixtures: a real Triton fleet, started once per test session and always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.fleet import Fleet, FleetConfig

pytest_plugins = ["chaos.pytest_plugin"]


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two real replicas serving ``synth`` and ``mlp`` (both variants each).

    Tests that kill, hang or fault a replica must put it back as they found it, because the
    fleet is shared to keep the suite within CI's time.
    """
    run_dir = Path(tmp_path_factory.mktemp("fleet"))
    with Fleet(FleetConfig(models=["synth", "mlp"]), run_dir) as f:
        f.start(2)
        yield f
