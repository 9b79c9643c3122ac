"""Runbooks in YAML: the model, the loader, and trigger matching.

A runbook file holds one runbook (a mapping) or several (a list). Shape::

    name: replica-p99-drift
    trigger: {alertname: ReplicaP99Drift, matchers: ['severity=~"warning|critical"']}
    vars: {slo_p99_s: 0.25}                       # referenced as "$slo_p99_s"
    preconditions:                                # all must hold (missing data: not met)
      - {sli: p99_latency_seconds, labels: {replica: "{replica}"}, op: ">", value: $slo_p99_s}
    steps:
      - {name: shift-weight, action: reroute, params: {weight: 0}}
      - {name: degrade, action: degrade, params: {fraction: 0.5},
         when: {sli: cold_start_seconds, op: ">", value: $slo_budget_s}}
    verify: {sli: p99_latency_seconds, labels: {model: "{model}"}, op: "<",
             value: $slo_p99_s, window_s: 10, deadline_s: 30, poll_s: 1}
    on_verified:                                  # steps run once the SLI is back
      - {name: restore, action: restore, if_applied: degrade}   # only what this run degraded
    rollback: auto            # auto (inverse of each applied change) | none | [steps]
    escalate: {outcomes: [verify_failed, failed, refused], severity: critical}

Label templates (``"{model}"``) are filled from the alert's labels. Errors name the file and the
key (``saturation.yaml: steps[1].params.fraction: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remediation.actions import ActionRegistry, BoundAction
from remediation.errors import RunbookError
from warden.alerting.matchers import Matcher, MatcherError, matches_all, parse_matcher
from warden.records import Alert, AlertStatus

__all__ = [
    "BUILTIN_DIR",
    "Condition",
    "LoadedRunbook",
    "LoadedStep",
    "RunbookSet",
    "RunbookSpec",
    "Verify",
    "fill",
    "load_runbook_file",
    "load_runbooks",
]

BUILTIN_DIR = Path(__file__).parent / "runbooks"
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Trigger(_Strict):
    alertname: str
    matchers: list[str] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, v: list[str]) -> list[str]:
        for i, text in enumerate(v):
            try:
                parse_matcher(text)
            except MatcherError as exc:
                raise ValueError(f"matchers[{i}] {text!r}: {exc}; operators are =, !=, =~, !~"
                                 ) from None
        return v


class Condition(_Strict):
    """``sli`` (a store SLI or a context fact such as ``cold_start_seconds``) ``op`` ``value``."""

    sli: str
    labels: dict[str, str] = Field(default_factory=dict)
    op: Literal[">", ">=", "<", "<="]
    value: float | str
    window_s: float = Field(30.0, gt=0)

    @field_validator("value")
    @classmethod
    def _var_or_number(cls, v: float | str) -> float | str:
        if isinstance(v, str) and not v.startswith("$"):
            raise ValueError("must be a number or a $var")
        return v

    def threshold(self, vars: Mapping[str, Any]) -> float:
        if isinstance(self.value, str):
            return float(vars[self.value[1:]])
        return float(self.value)

    def holds(self, observed: float | None, vars: Mapping[str, Any]) -> bool:
        """Whether ``observed op threshold``; missing data (``None``/NaN) never holds."""
        if observed is None or observed != observed:
            return False
        return bool(_OPS[self.op](float(observed), self.threshold(vars)))


class Verify(Condition):
    """The SLI judged over traffic served *after* the change only.

    Why: a window reaching back before the change still holds the requests that raised the
    alert, so "P99 over the last 5 s" stays red for 5 s after a reroute that worked at once.
    The window is ``[max(now - window_s, change), now)``, judged once ``min_window_s`` of
    post-change traffic exists (a P99 over a handful of requests is close to their maximum, so
    a short window errs on the strict side, never the lenient one).
    """

    deadline_s: float = Field(30.0, gt=0)
    poll_s: float = Field(1.0, gt=0)
    min_window_s: float = Field(2.0, gt=0)

    def window_after(self, elapsed_s: float) -> float | None:
        """The window to read ``elapsed_s`` after the change, or ``None`` while too little."""
        if elapsed_s < min(self.min_window_s, self.window_s):
            return None
        return min(self.window_s, elapsed_s)


class StepSpec(_Strict):
    name: str
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    when: Condition | None = None
    #: run only if this execution's step of that name applied a change: undo what *this*
    #: runbook did, not what another runbook did to the same model meanwhile
    if_applied: str | None = None


class Escalate(_Strict):
    # Not ``on``: YAML 1.1 reads a bare ``on:`` key as the boolean True.
    outcomes: list[Literal["verify_failed", "failed", "refused", "verified"]] = Field(
        default_factory=lambda: ["verify_failed", "failed", "refused"])
    severity: str = "critical"


class RunbookSpec(_Strict):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    trigger: Trigger
    vars: dict[str, float | str] = Field(default_factory=dict)
    preconditions: list[Condition] = Field(default_factory=list)
    steps: list[StepSpec] = Field(..., min_length=1)
    verify: Verify | None = None
    on_verified: list[StepSpec] = Field(default_factory=list)
    rollback: Literal["auto", "none"] | list[StepSpec] = "auto"
    escalate: Escalate = Field(default_factory=Escalate)


@dataclass(frozen=True)
class LoadedStep:
    spec: StepSpec
    action: BoundAction


@dataclass(frozen=True)
class LoadedRunbook:
    """A validated runbook with every step bound to its action."""

    spec: RunbookSpec
    source: str
    matchers: tuple[Matcher, ...]
    steps: tuple[LoadedStep, ...]
    on_verified: tuple[LoadedStep, ...]
    rollback_steps: tuple[LoadedStep, ...] | None

    @property
    def name(self) -> str:
        return self.spec.name

    def matches(self, alert: Alert) -> bool:
        labels = dict(alert.labels)
        return (alert.status == AlertStatus.FIRING
                and labels.get("alertname") == self.spec.trigger.alertname
                and matches_all(self.matchers, labels))

    def vars(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.spec.vars)
        out.update(overrides or {})
        return out


def fill(template: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, str]:
    """Fill ``{label}`` templates from alert labels; an unknown label fills as empty."""
    return {k: _TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), v) for k, v in template.items()}


def _describe(err: ValidationError, where: str) -> str:
    parts = []
    for e in err.errors():
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        parts.append(f"{where}: {key or '(top level)'}: {e['msg']}")
    return "; ".join(parts)


def _check_vars(spec: RunbookSpec, where: str) -> None:
    conds: list[tuple[str, Condition]] = [(f"preconditions[{i}]", c)
                                          for i, c in enumerate(spec.preconditions)]
    if spec.verify:
        conds.append(("verify", spec.verify))
    steps = [*spec.steps, *spec.on_verified, *(spec.rollback if isinstance(spec.rollback, list)
                                               else [])]
    conds += [(f"step {s.name}.when", s.when) for s in steps if s.when]
    for key, c in conds:
        if isinstance(c.value, str) and c.value[1:] not in spec.vars:
            raise RunbookError(f"{where}: {key}.value: unknown var {c.value!r}; "
                               f"vars: {sorted(spec.vars)}")


def build_runbook(data: Any, registry: ActionRegistry, *, source: str) -> LoadedRunbook:
    """Validate one runbook mapping and bind its steps; raise :class:`RunbookError`."""
    if not isinstance(data, dict):
        raise RunbookError(f"{source}: a runbook must be a mapping, got {type(data).__name__}")
    try:
        spec = RunbookSpec.model_validate(data)
    except ValidationError as exc:
        raise RunbookError(_describe(exc, source)) from None
    where = f"{source}: {spec.name}"
    _check_vars(spec, where)

    def bind(steps: Sequence[StepSpec], key: str) -> tuple[LoadedStep, ...]:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise RunbookError(f"{where}: {key}: step names must be unique, got {names}")
        for i, s in enumerate(steps):
            before = names[:i] if key == "steps" else [x.name for x in spec.steps]
            if s.if_applied is not None and s.if_applied not in before:
                raise RunbookError(f"{where}: {key}[{i}].if_applied: no step {s.if_applied!r} "
                                   f"runs before it; steps: {before}")
        return tuple(LoadedStep(s, registry.bind(s.action, s.params, where=f"{where}: {key}[{i}]"))
                     for i, s in enumerate(steps))

    return LoadedRunbook(
        spec=spec, source=source,
        matchers=tuple(parse_matcher(m) for m in spec.trigger.matchers),
        steps=bind(spec.steps, "steps"),
        on_verified=bind(spec.on_verified, "on_verified"),
        rollback_steps=bind(spec.rollback, "rollback") if isinstance(spec.rollback, list) else None,
    )


def load_runbook_file(path: Path, registry: ActionRegistry) -> list[LoadedRunbook]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RunbookError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RunbookError(f"{path}: not valid YAML: {exc}") from None
    items = loaded if isinstance(loaded, list) else [loaded]
    return [build_runbook(d, registry, source=path.name if len(items) == 1 else
                          f"{path.name}[{i}]") for i, d in enumerate(items)]


@dataclass(frozen=True)
class RunbookSet:
    """All loaded runbooks; :meth:`match` picks those an alert triggers, in load order."""

    runbooks: tuple[LoadedRunbook, ...]

    def match(self, alert: Alert) -> list[LoadedRunbook]:
        return [rb for rb in self.runbooks if rb.matches(alert)]

    def get(self, name: str) -> LoadedRunbook:
        for rb in self.runbooks:
            if rb.name == name:
                return rb
        raise KeyError(f"no runbook {name!r}; have {[r.name for r in self.runbooks]}")


def load_runbooks(
    registry: ActionRegistry, paths: Iterable[Path] = (), *, builtin: bool = True,
) -> RunbookSet:
    """Load the built-in runbooks and the user's (files or directories of ``*.yaml``).

    A user runbook with a built-in's name replaces it; two user runbooks with one name is an error.
    """
    files: list[Path] = sorted(BUILTIN_DIR.glob("*.yaml")) if builtin else []
    builtin_files = set(files)
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
        elif p.exists():
            files.append(p)
        else:
            raise RunbookError(f"{p}: no such runbook file or directory")
    by_name: dict[str, LoadedRunbook] = {}
    for f in files:
        for rb in load_runbook_file(f, registry):
            prev = by_name.get(rb.name)
            if prev is not None and not (BUILTIN_DIR / prev.source.split("[")[0]) in builtin_files:
                raise RunbookError(f"{f.name}: runbook {rb.name!r} already defined in {prev.source}")
            by_name[rb.name] = rb
    return RunbookSet(tuple(by_name.values()))
