"""Actions: typed planners a runbook names, and the registry that checks runbooks against them.

An action is a function ``def scale_out(ctx: ActionContext, params: ScaleOutParams) ->
list[Change]`` (Robusta's shape: the typed signature is the contract). It only *plans*: it reads
``ctx.state`` and returns the concrete changes with their inverses; the applier runs them through
the guards and the actuator. The registry validates a runbook's ``params`` against the pydantic
model at load and binds them with ``inspect.signature(fn).bind`` (chaostoolkit's
``validate_python_activity``), so a typo fails ``warden runbooks validate``, not a 3 a.m. page.

``shed``: the router has no priority classes, so shedding low-priority load is modelled as
sending the low-priority *share* of a model's traffic (``fraction``) to the lite variant; the
degrade cap in the guards bounds it like any degrade.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediation.changes import Change, FleetState
from remediation.errors import ActionFailed, RunbookError

__all__ = [
    "ActionContext",
    "ActionFn",
    "ActionRegistry",
    "BoundAction",
    "DegradeParams",
    "RerouteParams",
    "RestartParams",
    "RestoreParams",
    "ScaleInParams",
    "ScaleOutParams",
    "ScaleToParams",
    "ShedParams",
    "builtin_registry",
]


@dataclass
class ActionContext:
    """What a planner may look at: the alert's labels, the fleet's state, the runbook's vars."""

    labels: Mapping[str, str]
    state: FleetState
    vars: Mapping[str, Any] = field(default_factory=dict)

    def model(self, explicit: str | None) -> str:
        model = explicit or self.labels.get("model", "")
        if not model:
            raise ActionFailed("no model: set params.model or alert label 'model'")
        return model

    def replica(self, explicit: str | None) -> str:
        replica = explicit or self.labels.get("replica", "")
        if not replica:
            raise ActionFailed("no replica: set params.replica or alert label 'replica'")
        return replica


ActionFn = Callable[[ActionContext, Any], list[Change]]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScaleOutParams(_Params):
    model: str | None = None
    step: int = Field(1, ge=1, le=16)


class ScaleInParams(_Params):
    model: str | None = None
    step: int = Field(1, ge=1, le=16)


class ScaleToParams(_Params):
    model: str | None = None
    replicas: int = Field(..., ge=0)


class DegradeParams(_Params):
    model: str | None = None
    fraction: float = Field(..., gt=0.0, le=1.0)


class RestoreParams(_Params):
    model: str | None = None
    fraction: float = Field(0.0, ge=0.0, lt=1.0)


class ShedParams(_Params):
    model: str | None = None
    fraction: float = Field(0.5, gt=0.0, le=1.0,
                            description="the low-priority share of traffic sent to lite")


class RerouteParams(_Params):
    model: str | None = None
    replica: str | None = None
    weight: float = Field(0.0, ge=0.0, description="new weight; 0 drains the replica")


class RestartParams(_Params):
    replica: str | None = None
    model: str | None = None


# -- built-in planners ------------------------------------------------------------------------

def scale_out(ctx: ActionContext, params: ScaleOutParams) -> list[Change]:
    model = ctx.model(params.model)
    cur = ctx.state.model(model).replicas
    return [Change("scale", model, {"replicas": cur + params.step},
                   inverse=Change("scale", model, {"replicas": cur}, reduces_capacity=True))]


def scale_in(ctx: ActionContext, params: ScaleInParams) -> list[Change]:
    model = ctx.model(params.model)
    cur = ctx.state.model(model).replicas
    return [Change("scale", model, {"replicas": max(cur - params.step, 0)},
                   reduces_capacity=True, inverse=Change("scale", model, {"replicas": cur}))]


def scale_to(ctx: ActionContext, params: ScaleToParams) -> list[Change]:
    model = ctx.model(params.model)
    cur = ctx.state.model(model).replicas
    if params.replicas == cur:
        return []
    return [Change("scale", model, {"replicas": params.replicas},
                   reduces_capacity=params.replicas < cur,
                   inverse=Change("scale", model, {"replicas": cur},
                                  reduces_capacity=params.replicas > cur))]


def _variant(ctx: ActionContext, model: str, fraction: float) -> list[Change]:
    prev = ctx.state.model(model).lite_fraction
    if abs(prev - fraction) < 1e-9:
        return []
    return [Change("variant", model, {"variant": "lite", "fraction": fraction},
                   target=f"{model}/variant", reduces_capacity=fraction < prev,
                   inverse=Change("variant", model, {"variant": "lite", "fraction": prev},
                                  target=f"{model}/variant", reduces_capacity=prev < fraction))]


def degrade(ctx: ActionContext, params: DegradeParams) -> list[Change]:
    return _variant(ctx, ctx.model(params.model), params.fraction)


def restore(ctx: ActionContext, params: RestoreParams) -> list[Change]:
    return _variant(ctx, ctx.model(params.model), params.fraction)


def shed(ctx: ActionContext, params: ShedParams) -> list[Change]:
    return _variant(ctx, ctx.model(params.model), params.fraction)


def reroute(ctx: ActionContext, params: RerouteParams) -> list[Change]:
    model, replica = ctx.model(params.model), ctx.replica(params.replica)
    weights = ctx.state.model(model).weights
    if replica not in weights:
        raise ActionFailed(f"replica {replica!r} is not serving {model}; has {sorted(weights)}")
    prev = weights[replica]
    if abs(prev - params.weight) < 1e-9:
        return []
    return [Change("weights", model, {"weights": {replica: params.weight}},
                   target=f"{model}/{replica}", reduces_capacity=params.weight > prev,
                   inverse=Change("weights", model, {"weights": {replica: prev}},
                                  target=f"{model}/{replica}"))]


def restart(ctx: ActionContext, params: RestartParams) -> list[Change]:
    replica = ctx.replica(params.replica)
    model = params.model or ctx.labels.get("model", "") or next(iter(ctx.state.models), "")
    return [Change("restart", model, {"replica": replica}, target=f"{model}/{replica}")]


# -- registry ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoundAction:
    """An action with its params validated and bound; call it with a context to plan."""

    name: str
    fn: ActionFn
    params: BaseModel

    def plan(self, ctx: ActionContext) -> list[Change]:
        try:
            return list(self.fn(ctx, self.params))
        except ActionFailed:
            raise
        except Exception as exc:
            raise ActionFailed(f"action {self.name} failed to plan: {exc}") from exc


class ActionRegistry:
    """Actions by name; :meth:`bind` checks runbook params against each action's signature."""

    def __init__(self) -> None:
        self._actions: dict[str, tuple[ActionFn, type[BaseModel]]] = {}

    def register(self, fn: ActionFn, name: str | None = None) -> ActionFn:
        """Add ``fn``; its second parameter must be annotated with a pydantic model."""
        sig = inspect.signature(fn, eval_str=True)
        params = list(sig.parameters.values())
        if len(params) != 2:
            raise TypeError(f"action {fn.__name__} must take (ctx, params), takes {len(params)}")
        model = params[1].annotation
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise TypeError(f"action {fn.__name__}: params must be annotated with a pydantic model")
        self._actions[name or fn.__name__] = (fn, model)
        return fn

    def names(self) -> list[str]:
        return sorted(self._actions)

    def params_model(self, name: str) -> type[BaseModel]:
        return self._actions[name][1]

    def bind(self, name: str, args: Mapping[str, Any] | None, *, where: str) -> BoundAction:
        """Validate ``args`` for action ``name``; errors name ``where`` (file and key)."""
        if name not in self._actions:
            raise RunbookError(f"{where}: unknown action {name!r}; known: {self.names()}")
        fn, model = self._actions[name]
        try:
            params = model.model_validate(dict(args or {}))
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}"
                for e in exc.errors())
            raise RunbookError(f"{where}.params: bad params for {name}: {detail}") from None
        try:
            inspect.signature(fn).bind(None, params)
        except TypeError as exc:
            raise RunbookError(f"{where}: {name} cannot be called so: {exc}") from None
        return BoundAction(name, fn, params)


def builtin_registry() -> ActionRegistry:
    """A fresh registry with the built-in actions (nothing global: callers may add their own)."""
    reg = ActionRegistry()
    for fn in (scale_out, scale_in, scale_to, degrade, restore, shed, reroute, restart):
        reg.register(fn)
    return reg
