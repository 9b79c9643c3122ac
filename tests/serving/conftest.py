"""Fixtures shared by the serving tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from otlp_sink import Received


@pytest.fixture
def received() -> Iterator[Received]:
    """A real OTLP receiver on loopback, stopped after the test."""
    r = Received()
    yield r
    r.receiver.stop()
