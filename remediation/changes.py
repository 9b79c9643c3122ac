"""What an action asks the fleet to become (:class:`Change`) and what the fleet is (:class:`FleetState`).

Why a plain value between planning and applying: the guards must see the concrete change
(``scale synth to 5``, ``weights {r1: 0}``, ``synth lite 40%``) against the real state before
anything moves, the audit must record it, and a rollback is just the inverse change computed
from the state the plan was made against. Actions plan; only :class:`remediation.applier.Applier`
applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Change", "ChangeKind", "FleetState", "ModelState"]

ChangeKind = Literal["scale", "weights", "variant", "restart"]


@dataclass(frozen=True)
class ModelState:
    """One model's serving state as the actuator reports it."""

    replicas: int
    healthy: int
    weights: Mapping[str, float] = field(default_factory=dict)
    healthy_replicas: tuple[str, ...] = ()
    lite_fraction: float = 0.0


@dataclass(frozen=True)
class FleetState:
    """Everything reconciliation and the guards need to know, read in one go."""

    models: Mapping[str, ModelState]
    cold_start_s: float = float("nan")

    def model(self, name: str) -> ModelState:
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"actuator knows no model {name!r}; has {sorted(self.models)}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "cold_start_s": self.cold_start_s,
            "models": {m: {"replicas": s.replicas, "healthy": s.healthy,
                           "weights": dict(s.weights), "lite_fraction": s.lite_fraction}
                       for m, s in self.models.items()},
        }


@dataclass(frozen=True)
class Change:
    """One concrete change to the fleet.

    ``kind`` and ``args``:
        * ``scale``: ``{"replicas": n}`` on ``model``
        * ``weights``: ``{"weights": {replica: w}}`` on ``model`` (replicas not named keep theirs)
        * ``variant``: ``{"variant": "lite", "fraction": f}`` on ``model``
        * ``restart``: ``{"replica": name}``

    ``target`` is what cooldowns are keyed on (``model`` or ``model/replica``). ``reduces_capacity``
    marks changes that missing data must never trigger (scale in, restoring from lite, giving a
    replica weight back).
    """

    kind: ChangeKind
    model: str
    args: Mapping[str, Any]
    target: str = ""
    inverse: Change | None = None
    reduces_capacity: bool = False

    def __post_init__(self) -> None:
        if not self.target:
            object.__setattr__(self, "target", self.model)

    def describe(self) -> str:
        if self.kind == "scale":
            return f"scale {self.model} to {self.args['replicas']}"
        if self.kind == "weights":
            return f"weights {self.model} {dict(self.args['weights'])}"
        if self.kind == "variant":
            return f"{self.model} {self.args['variant']} {self.args['fraction']:.0%}"
        return f"restart {self.args['replica']}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "target": self.target,
                "args": _plain(self.args), "reduces_capacity": self.reduces_capacity}

    def satisfied_by(self, state: FleetState) -> bool | None:
        """Whether ``state`` already shows this change (``None``: cannot tell, e.g. a restart).

        Reconciliation after a crash uses it: an ``applying`` record whose change the fleet
        already shows is marked applied, never applied again.
        """
        if self.model not in state.models:
            return None
        m = state.models[self.model]
        if self.kind == "scale":
            return m.replicas == int(self.args["replicas"])
        if self.kind == "weights":
            return all(abs(m.weights.get(r, float("nan")) - float(w)) < 1e-9
                       for r, w in self.args["weights"].items())
        if self.kind == "variant":
            return abs(m.lite_fraction - float(self.args["fraction"])) < 1e-9
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
