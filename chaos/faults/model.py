"""Model faults: latency and errors injected into a replica's model code (its control ``/faults``).

The slowdown happens inside the replica process, so Triton, the router and the client all see
it, as with a real noisy neighbour or a bad deploy. Revert is ``DELETE /faults`` (idempotent).
"""

from __future__ import annotations

from typing import Any

from chaos.errors import FaultUnavailable
from chaos.faults.base import Fault, http_call
from chaos.target import Target

__all__ = ["ModelErrors", "ModelLatency"]


class _ControlFault(Fault):
    def __init__(self, target: Target, replica: str) -> None:
        super().__init__(target)
        self.replica = replica
        self._control = target.replica(replica).control_url

    def available(self) -> str | None:
        return None if self._control else f"replica {self.replica}: no control_url in target"

    def _post(self, body: dict[str, Any]) -> None:
        if not self._control:
            raise FaultUnavailable(self.available() or "")
        http_call("POST", f"{self._control}/faults", body=body)

    def revert(self) -> None:
        if self._control:
            http_call("DELETE", f"{self._control}/faults")


class ModelLatency(_ControlFault):
    """Make the model slower: ``latency_factor`` x its own time, plus fixed and jittered ms."""

    def __init__(self, target: Target, *, replica: str, latency_factor: float = 5.0,
                 extra_latency_ms: float = 0.0, jitter_ms: float = 0.0) -> None:
        super().__init__(target, replica)
        if latency_factor < 1 or extra_latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency_factor must be >= 1; extra_latency_ms, jitter_ms >= 0")
        self.body = {"latency_factor": latency_factor, "extra_latency_ms": extra_latency_ms,
                     "jitter_ms": jitter_ms}

    def inject(self) -> None:
        self._post(self.body)

    def describe(self) -> str:
        return f"model latency on {self.replica} {self.body}"


class ModelErrors(_ControlFault):
    """Make a fraction of executions fail (Triton returns the error to the client)."""

    def __init__(self, target: Target, *, replica: str, error_rate: float = 0.5) -> None:
        super().__init__(target, replica)
        if not 0 <= error_rate <= 1:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        self.error_rate = error_rate

    def inject(self) -> None:
        self._post({"error_rate": self.error_rate})

    def describe(self) -> str:
        return f"model errors on {self.replica} at rate {self.error_rate}"
