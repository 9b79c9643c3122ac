"""Load-balancing policies, pluggable by name.

Every policy gets the list of *available* replicas (healthy, not ejected, weight > 0; the pool
filters) and returns one. Weights matter in all of them:

* ``round_robin``: smooth weighted round robin (nginx): shares exactly proportional to weight,
  interleaved rather than bursty.
* ``least_outstanding``: power of two choices. The first candidate is drawn with probability
  proportional to weight, the second likewise among the rest; the lower ``outstanding / weight``
  wins and a tie goes to the first draw, so an idle fleet still gets traffic in proportion to
  weight, and a loaded fleet steers away from replicas that pile up requests.
* ``peak_ewma``: same two choices, cost ``ewma_latency * (outstanding + 1) / weight`` (Finagle's
  and Linkerd's Peak EWMA). The estimate jumps to any higher observation at once and decays towards
  later, lower ones (and towards zero while unobserved) with the time constant ``ewma_decay_s``.

Why two choices rather than a full scan: a full scan herds every request onto the same momentary
minimum; two random choices spread load and are O(1). With two replicas it is a full scan anyway.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from serving.router.replicas import Clock, ReplicaState

__all__ = [
    "POLICIES",
    "LeastOutstanding",
    "PeakEwma",
    "Policy",
    "RoundRobin",
    "make_policy",
]


class Policy(Protocol):
    """Choose one replica among available ones (never empty)."""

    name: str

    def choose(self, replicas: Sequence[ReplicaState]) -> ReplicaState:
        """Return the replica for the next request."""
        ...


class RoundRobin:
    """Smooth weighted round robin; current weights are kept per replica name."""

    name = "round_robin"

    def __init__(self, rng: random.Random, clock: Clock, decay_s: float) -> None:
        self._current: dict[str, float] = {}

    def choose(self, replicas: Sequence[ReplicaState]) -> ReplicaState:
        current = self._current
        if len(current) > 4 * len(replicas) + 16:  # forget replicas long gone
            names = {r.name for r in replicas}
            self._current = current = {k: v for k, v in current.items() if k in names}
        total = 0.0
        best: ReplicaState | None = None
        best_value = 0.0
        for r in replicas:
            value = current.get(r.name, 0.0) + r.weight
            current[r.name] = value
            total += r.weight
            if best is None or value > best_value:
                best, best_value = r, value
        assert best is not None
        current[best.name] = best_value - total
        return best


def _two_weighted(rng: random.Random,
                  replicas: Sequence[ReplicaState]) -> tuple[ReplicaState, ReplicaState]:
    """Draw two distinct replicas, each with probability proportional to weight."""
    total = 0.0
    for r in replicas:
        total += r.weight
    first = _draw(rng, replicas, total, None)
    second = _draw(rng, replicas, total - first.weight, first)
    return first, second


def _draw(rng: random.Random, replicas: Sequence[ReplicaState], total: float,
          skip: ReplicaState | None) -> ReplicaState:
    x = rng.random() * total
    last = None
    for r in replicas:
        if r is skip:
            continue
        x -= r.weight
        last = r
        if x < 0:
            return r
    assert last is not None
    return last  # float rounding at the end of the range


class LeastOutstanding:
    """Two weighted random choices, the one with fewer outstanding requests per unit weight."""

    name = "least_outstanding"

    def __init__(self, rng: random.Random, clock: Clock, decay_s: float) -> None:
        self._rng = rng

    def choose(self, replicas: Sequence[ReplicaState]) -> ReplicaState:
        if len(replicas) == 1:
            return replicas[0]
        a, b = _two_weighted(self._rng, replicas)
        return b if b.outstanding / b.weight < a.outstanding / a.weight else a


class PeakEwma:
    """Two weighted random choices, the one with the lower peak-EWMA cost."""

    name = "peak_ewma"

    def __init__(self, rng: random.Random, clock: Clock, decay_s: float) -> None:
        self._rng = rng
        self._clock = clock
        self._decay_s = decay_s

    def cost(self, r: ReplicaState, now: float) -> float:
        """Latency estimate times (outstanding + 1), per unit weight."""
        return r.ewma(now, self._decay_s) * (r.outstanding + 1) / r.weight

    def choose(self, replicas: Sequence[ReplicaState]) -> ReplicaState:
        if len(replicas) == 1:
            return replicas[0]
        a, b = _two_weighted(self._rng, replicas)
        now = self._clock()
        return b if self.cost(b, now) < self.cost(a, now) else a


PolicyFactory = Callable[[random.Random, Clock, float], Policy]

#: Policy registry by name, as config and the admin API name them.
POLICIES: dict[str, PolicyFactory] = {
    LeastOutstanding.name: LeastOutstanding,
    PeakEwma.name: PeakEwma,
    RoundRobin.name: RoundRobin,
}


def make_policy(name: str, rng: random.Random, clock: Clock, decay_s: float) -> Policy:
    """Build a policy by name; ``ValueError`` naming the choices if unknown."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}") from None
    return factory(rng, clock, decay_s)
