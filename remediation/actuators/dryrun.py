""":class:`DryRun`: an actuator that changes nothing real and records what it would have done.

Why it keeps a state: a dry run of a runbook plans step two against the fleet as step one would
have left it, so ``warden runbooks dry-run`` prints the same plan a live run would make. Tests of
the guards and the executor use it as the fleet model (it is named what it is: a dry run).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from remediation.changes import FleetState, ModelState

__all__ = ["DryRun"]


@dataclass
class _Model:
    replicas: list[str]
    healthy: set[str]
    weights: dict[str, float]
    lite_fraction: float = 0.0


@dataclass
class DryRun:
    """A recorded, simulated fleet. ``calls`` lists every call as ``(method, args)``.

    Build it from a real actuator's :meth:`state` (``DryRun.from_state``) or from scratch
    (``DryRun.simple({"synth": 2})``).
    """

    models: dict[str, _Model] = field(default_factory=dict)
    cold_start_s: float = 5.0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    name: str = "dry-run"
    fail_next: Exception | None = None
    _next: int = 0

    @classmethod
    def simple(cls, replicas: Mapping[str, int], *, cold_start_s: float = 5.0) -> DryRun:
        dry = cls(cold_start_s=cold_start_s)
        for model, n in replicas.items():
            names = [f"r{i}" for i in range(n)]
            dry.models[model] = _Model(names, set(names), {r: 1.0 for r in names})
            dry._next = max(dry._next, n)
        return dry

    @classmethod
    def from_state(cls, state: FleetState) -> DryRun:
        dry = cls(cold_start_s=state.cold_start_s)
        for model, s in state.models.items():
            names = sorted(s.weights) or [f"r{i}" for i in range(s.replicas)]
            healthy = set(s.healthy_replicas) if s.healthy_replicas else set(names[: s.healthy])
            dry.models[model] = _Model(names, healthy, {r: s.weights.get(r, 1.0) for r in names},
                                       s.lite_fraction)
            dry._next = max(dry._next, len(names))
        return dry

    def _record(self, method: str, **args: Any) -> None:
        self.calls.append((method, copy.deepcopy(args)))
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def _model(self, model: str) -> _Model:
        if model not in self.models:
            raise KeyError(f"dry run knows no model {model!r}")
        return self.models[model]

    # -- Actuator -------------------------------------------------------------------------------

    def replicas(self, model: str) -> int:
        return len(self._model(model).replicas)

    def scale(self, model: str, n: int) -> None:
        self._record("scale", model=model, n=n)
        m = self._model(model)
        while len(m.replicas) < n:
            name = f"r{self._next}"
            self._next += 1
            m.replicas.append(name)
            m.healthy.add(name)
            m.weights[name] = 1.0
        while len(m.replicas) > n:
            gone = m.replicas.pop()
            m.healthy.discard(gone)
            m.weights.pop(gone, None)

    def set_weights(self, model: str, weights: Mapping[str, float]) -> None:
        self._record("set_weights", model=model, weights=dict(weights))
        m = self._model(model)
        unknown = set(weights) - set(m.replicas)
        if unknown:
            raise KeyError(f"unknown replicas {sorted(unknown)}")
        m.weights.update({r: float(w) for r, w in weights.items()})

    def set_variant(self, model: str, variant: str, fraction: float) -> None:
        self._record("set_variant", model=model, variant=variant, fraction=fraction)
        self._model(model).lite_fraction = float(fraction)

    def restart(self, replica: str) -> None:
        self._record("restart", replica=replica)
        for m in self.models.values():
            if replica in m.replicas:
                m.healthy.add(replica)

    def state(self) -> FleetState:
        return FleetState(
            models={name: ModelState(replicas=len(m.replicas), healthy=len(m.healthy),
                                     weights=dict(m.weights),
                                     healthy_replicas=tuple(sorted(m.healthy)),
                                     lite_fraction=m.lite_fraction)
                    for name, m in self.models.items()},
            cold_start_s=self.cold_start_s,
        )

    # -- test helpers ---------------------------------------------------------------------------

    def mark_unhealthy(self, replica: str) -> None:
        for m in self.models.values():
            m.healthy.discard(replica)

    def applied(self, method: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        return [c for c in self.calls if method is None or c[0] == method]
