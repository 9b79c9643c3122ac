"""The devices model code can run on, behind the ``serving.models.Device`` protocol.

``TwinDevice`` puts the simulated GPU twin (``serving.gpu_twin``) under the model: its busy time
drives the twin's utilisation and temperature, and the twin's clock stretches the execution, so
a cooling failure really slows the model. ``CpuDevice`` (in ``serving.models``) is the honest
answer when no GPU and no twin is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from collectors.gpu_record import span_attributes
from serving.gpu_twin import GpuTwin

__all__ = ["TwinDevice"]


class TwinDevice:
    """Adapts :class:`GpuTwin` to the model executor's ``Device`` protocol."""

    def __init__(self, twin: GpuTwin) -> None:
        self.twin = twin
        self.name = twin.device

    @contextmanager
    def executing(self, batch_size: int, nbytes: int) -> Iterator[None]:
        with self.twin.executing(batch_size, nbytes):
            yield

    def span_attributes(self) -> dict[str, Any]:
        return span_attributes(self.twin.reading())
