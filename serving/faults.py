"""Faults a replica applies to its own model code: slow it, jitter it, make it fail.

They live inside the replica process because that is where a real slowdown happens (a noisy
neighbour, a hot GPU, a bad deploy): the router and Triton see the effect, not a simulation of
it. Chaos experiments and benchmarks set them through the replica's control endpoint.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["InjectedModelError", "ModelFaults", "ModelFaultState"]


class InjectedModelError(RuntimeError):
    """Raised by model code when an error fault fires; Triton turns it into a request error."""


@dataclass(frozen=True)
class ModelFaults:
    """What is currently injected. The default instance means no fault.

    Attributes:
        latency_factor: multiplies the model's own execution time (5.0 = five times slower).
        extra_latency_ms: added to every execution.
        jitter_ms: mean of an exponential extra delay, added to an execution with probability
            ``jitter_prob``: with a small probability the median barely moves and the tail
            widens, which is what jitter from contention or GC pauses looks like.
        jitter_prob: probability in [0, 1] that an execution gets the jitter delay.
        error_rate: probability in [0, 1] that an execution fails.
    """

    latency_factor: float = 1.0
    extra_latency_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_prob: float = 1.0
    error_rate: float = 0.0

    def validate(self) -> ModelFaults:
        if not (self.latency_factor >= 1.0):
            raise ValueError(f"latency_factor must be >= 1, got {self.latency_factor}")
        for name in ("extra_latency_ms", "jitter_ms"):
            if not (getattr(self, name) >= 0.0):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("error_rate", "jitter_prob"):
            if not (0.0 <= getattr(self, name) <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        return self


class ModelFaultState:
    """Thread-safe holder of the replica's faults; read on every execution, set rarely."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._faults = ModelFaults()
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    @property
    def faults(self) -> ModelFaults:
        return self._faults

    def update(self, changes: dict[str, Any]) -> ModelFaults:
        """Apply a partial update; unknown keys or bad values raise ``ValueError``."""
        unknown = set(changes) - set(asdict(self._faults))
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        with self._lock:
            try:
                new = replace(self._faults, **{k: float(v) for k, v in changes.items()})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"bad fault value: {exc}") from exc
            self._faults = new.validate()
            return self._faults

    def clear(self) -> ModelFaults:
        with self._lock:
            self._faults = ModelFaults()
            return self._faults

    def after_execution(self, busy_s: float) -> None:
        """Sleep whatever the faults add to an execution that took ``busy_s``; maybe raise."""
        f = self._faults
        extra = busy_s * (f.latency_factor - 1.0) + f.extra_latency_ms / 1e3
        if f.jitter_ms > 0 and (f.jitter_prob >= 1.0 or self._rng.random() < f.jitter_prob):
            extra += self._rng.expovariate(1.0 / (f.jitter_ms / 1e3))
        if extra > 0:
            time.sleep(extra)
        if f.error_rate > 0 and self._rng.random() < f.error_rate:
            raise InjectedModelError("injected model error")
