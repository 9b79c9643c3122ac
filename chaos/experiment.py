"""The experiment file: YAML close to Chaos Toolkit's, plus expectations Warden can check.

Shape (every key but ``title`` and ``method`` has a default)::

    title: slow replica is routed around
    requires: [detection, remediation]     # skipped, with the reason, where these do not run
    long: false                             # long experiments are marked so CI can budget them
    steady_state_hypothesis:
      title: the fleet answers fast
      probes:
        - name: r0 answers
          provider: chaos.probes:replica_ready
          arguments: {replica: r0}
          tolerance: true
    method:
      - type: fault
        name: slow r0
        provider: chaos.faults.model:ModelLatency
        arguments: {replica: r0, latency_factor: 10}
        pauses: {after: 1}
    rollbacks: []                           # extra actions; injected faults revert regardless
    sli: {model: synth, via: router, threshold_ms: 100, window_s: 1}
    watch: {duration_s: 10, poll_s: 0.5}
    expectations:
      hypothesis_during: holds              # holds | breaks | any
      alerts: [ReplicaLatencyHigh]
      actions: [reroute]                    # runbook, or runbook:step
      max_time_to_detect_s: 10
      max_time_to_recover_s: 30
      max_slo_violation_s: 20

:func:`load_experiment` turns YAML errors and validation errors into one
:class:`~chaos.errors.ExperimentError` naming the file and the dotted key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chaos.errors import ExperimentError
from chaos.tolerance import validate_tolerance

__all__ = [
    "ActionExpectation",
    "Activity",
    "AlertExpectation",
    "Expectations",
    "Experiment",
    "Hypothesis",
    "Probe",
    "SliSpec",
    "WatchSpec",
    "load_experiment",
    "parse_experiment",
]

_PROVIDER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
Capability = Literal["detection", "remediation"]


def _check_provider(v: str) -> str:
    if not _PROVIDER.match(v):
        raise ValueError(f"provider must be 'module:name', got {v!r}")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pauses(_Strict):
    before: float = Field(0.0, ge=0, le=600)
    after: float = Field(0.0, ge=0, le=600)


class Activity(_Strict):
    """One step: a fault to inject, an action to run, or a probe to read."""

    type: Literal["fault", "action", "probe"]
    name: str = ""
    provider: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    pauses: Pauses = Field(default_factory=Pauses)

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        return _check_provider(v)

    @model_validator(mode="after")
    def _name(self) -> Activity:
        if not self.name:
            self.name = self.provider.rsplit(":", 1)[1]
        return self


class Probe(_Strict):
    """A probe and the tolerance its value must meet for the steady state to hold."""

    name: str = ""
    provider: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    tolerance: Any

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        return _check_provider(v)

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, v: Any) -> Any:
        validate_tolerance(v)
        return v

    @model_validator(mode="after")
    def _name(self) -> Probe:
        if not self.name:
            self.name = self.provider.rsplit(":", 1)[1]
        return self


class Hypothesis(_Strict):
    """``retries`` re-checks a failed steady state before and after (never during the fault),
    ``retry_delay_s`` apart: one blip on a shared machine should not abort an experiment, and
    the journal keeps every attempt."""

    title: str = "steady state"
    probes: list[Probe] = Field(default_factory=list)
    retries: int = Field(1, ge=0, le=10)
    retry_delay_s: float = Field(1.0, ge=0, le=60)


class SliSpec(_Strict):
    """The service-level indicator sampled during the whole run (client latency, errors).

    ``via`` is ``router`` or a replica name; each window sends ``requests`` sequential requests
    and violates when its P99 exceeds ``threshold_ms`` or its error ratio ``max_error_ratio``.
    ``source: store`` reads the windows from the store's traced request chains instead (the
    lab's own traffic, as the engine sees it; ``via`` then filters by replica unless ``router``).
    """

    source: Literal["probe", "store"] = "probe"
    model: str = "synth"
    via: str = "router"
    threshold_ms: float = Field(100.0, gt=0)
    max_error_ratio: float = Field(0.0, ge=0, le=1)
    window_s: float = Field(1.0, gt=0, le=60)
    requests: int = Field(5, ge=1, le=1000)
    timeout_s: float = Field(2.0, gt=0, le=60)
    recover_windows: int = Field(2, ge=1, le=100)


class WatchSpec(_Strict):
    duration_s: float = Field(10.0, ge=0, le=3600)
    poll_s: float = Field(0.5, gt=0, le=60)
    stop_when_met: bool = Field(True, description="end the watch once every expectation is seen")


class AlertExpectation(_Strict):
    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)


class ActionExpectation(_Strict):
    runbook: str
    step: str | None = None
    status: str | None = Field(None, description="e.g. verified; None accepts any status")


class Expectations(_Strict):
    hypothesis_during: Literal["holds", "breaks", "any"] = "holds"
    hypothesis_after: Literal["holds", "any"] = "holds"
    alerts: list[AlertExpectation] = Field(default_factory=list)
    actions: list[ActionExpectation] = Field(default_factory=list)
    max_time_to_detect_s: float | None = Field(None, gt=0)
    max_time_to_recover_s: float | None = Field(None, gt=0)
    max_slo_violation_s: float | None = Field(None, ge=0)
    min_slo_violation_s: float | None = Field(
        None, ge=0, description="proves a fault bites: at least this many seconds in violation")

    @field_validator("alerts", mode="before")
    @classmethod
    def _alerts(cls, v: Any) -> Any:
        return [{"alertname": a} if isinstance(a, str) else a for a in (v or [])]

    @field_validator("actions", mode="before")
    @classmethod
    def _actions(cls, v: Any) -> Any:
        out = []
        for a in v or []:
            if isinstance(a, str):
                runbook, _, step = a.partition(":")
                a = {"runbook": runbook, "step": step or None}
            out.append(a)
        return out


class Experiment(_Strict):
    title: str = Field(min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    requires: list[Capability] = Field(default_factory=list)
    long: bool = False
    steady_state_hypothesis: Hypothesis = Field(default_factory=Hypothesis)
    method: list[Activity] = Field(min_length=1)
    rollbacks: list[Activity] = Field(default_factory=list)
    sli: SliSpec | None = None
    watch: WatchSpec = Field(default_factory=WatchSpec)
    expectations: Expectations = Field(default_factory=Expectations)
    source: str = Field("", exclude=True, description="the file it came from")

    @property
    def slug(self) -> str:
        base = Path(self.source).stem if self.source else self.title
        return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "experiment"


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{key}: {e['msg']}")
    return "; ".join(parts)


def parse_experiment(data: Any, source: str = "<memory>") -> Experiment:
    if not isinstance(data, dict):
        raise ExperimentError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        raise ExperimentError(f"{source}: {_describe(exc)}") from exc
    exp.source = source
    return exp


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate one experiment file; every problem is an ``ExperimentError``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ExperimentError(f"cannot read experiment {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ExperimentError(f"experiment {path} is not valid YAML: {exc}") from exc
    return parse_experiment(data, str(path))
