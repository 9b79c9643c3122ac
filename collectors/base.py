"""The collector plug-in point.

A pull collector is anything with ``collect(now)``; the engine calls it once per tick and writes
what comes back. Push receivers (the OTLP receiver) write the store directly instead. A
``typing.Protocol`` rather than a base class, as client_python's ``Collector``: a collector owes
the engine one method, not an inheritance chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from warden.records import GpuReading, Sample

__all__ = ["Collector"]


@runtime_checkable
class Collector(Protocol):
    """Produces samples and GPU readings for the instant ``now`` (Unix seconds).

    Implementations never raise for bad input from their targets: they count it (in
    :class:`collectors.self_metrics.WardenMetrics`) and return what they could read.
    """

    def collect(self, now: float) -> Iterable[Sample | GpuReading]: ...
