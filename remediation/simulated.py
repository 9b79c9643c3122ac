""":class:`SimulatedFleet`: a queueing model of a fleet, for autoscaler tests and benchmarks.

Named for what it is: no Triton runs here. It exists because comparing autoscaling policies on a
compressed diurnal day needs the *same* traffic replayed against each policy, with cold starts
that really delay capacity, in seconds rather than hours. Each replica serves ``capacity_rps``;
a replica ordered at ``t`` serves from ``t + cold_start_s``. Per step, utilisation is
``load / (ready * capacity)``; latency follows an M/M/1-like ``service / (1 - rho)`` per replica
(capped), and P99 is ``p99_factor`` times that. It implements the :class:`Actuator` Protocol, so
the real :class:`~remediation.applier.Applier` and guards drive it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from remediation.changes import FleetState, ModelState

__all__ = ["SimulatedFleet"]


@dataclass
class SimulatedFleet:
    model: str = "synth"
    replicas_: int = 2
    capacity_rps: float = 50.0
    cold_start_s: float = 30.0
    service_s: float = 0.02
    p99_factor: float = 4.6  # exponential service: p99 = ln(100) * mean
    max_latency_s: float = 5.0
    lite_fraction: float = 0.0
    lite_cost: float = 0.3
    name: str = "simulated"
    now: float = 0.0
    _pending: list[float] = field(default_factory=list)  # ready times of starting replicas
    scale_calls: int = 0

    # -- simulation -------------------------------------------------------------------------------

    def ready(self) -> int:
        started = sum(1 for t in self._pending if t <= self.now)
        return self.replicas_ - len(self._pending) + started

    def advance(self, now: float) -> None:
        self.now = now
        self._pending = [t for t in self._pending if t > now]

    def utilization(self, load_rps: float) -> float:
        cost = (1 - self.lite_fraction) + self.lite_fraction * self.lite_cost
        return load_rps * cost / (max(self.ready(), 1) * self.capacity_rps)

    def p99_s(self, load_rps: float) -> float:
        rho = self.utilization(load_rps)
        if rho >= 0.999:
            return self.max_latency_s
        return min(self.p99_factor * self.service_s / (1 - rho), self.max_latency_s)

    # -- Actuator ---------------------------------------------------------------------------------

    def replicas(self, model: str) -> int:
        return self.replicas_

    def scale(self, model: str, n: int) -> None:
        self.scale_calls += 1
        if n > self.replicas_:
            self._pending += [self.now + self.cold_start_s] * (n - self.replicas_)
        else:
            drop = self.replicas_ - n
            keep = sorted(self._pending)
            self._pending = keep[: max(len(keep) - drop, 0)]
        self.replicas_ = n

    def set_weights(self, model: str, weights: Mapping[str, float]) -> None:
        raise NotImplementedError("the simulated fleet models capacity, not replicas' weights")

    def set_variant(self, model: str, variant: str, fraction: float) -> None:
        self.lite_fraction = fraction

    def restart(self, replica: str) -> None:
        raise NotImplementedError("the simulated fleet has no replica processes")

    def state(self) -> FleetState:
        names = tuple(f"r{i}" for i in range(self.replicas_))
        ready = self.ready()
        return FleetState(models={self.model: ModelState(
            replicas=self.replicas_, healthy=ready, weights={n: 1.0 for n in names},
            healthy_replicas=names[:ready], lite_fraction=self.lite_fraction)},
            cold_start_s=self.cold_start_s)


def diurnal(t: float, *, base: float, peak: float, period_s: float) -> float:
    """A smooth day: ``base`` at night, ``peak`` at midday, period ``period_s``."""
    return base + (peak - base) * 0.5 * (1 - math.cos(2 * math.pi * t / period_s))
