"""``warden.yaml``: one file, validated at load, with defaults that run the lab with no file.

Every part reads its own section. Unknown keys are errors that name the key, because a typo in
a guard's limit silently ignored is how remediation does something nobody allowed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.fleet import FleetConfig
from serving.loadgen import LoadProfile
from remediation.service import RemediationConfig
from warden.alerting.config import AlertingConfig
from warden.environment import WARDEN_CONFIG, WARDEN_HOME

__all__ = ["ConfigError", "LabConfig", "WardenConfig", "load_config"]


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabConfig(_Strict):
    """What ``warden up`` starts."""

    replicas: int = Field(2, ge=1, le=16)
    router_port: int = Field(8700, ge=0, le=65535)
    router_policy: str = "peak_ewma"
    traffic: LoadProfile = Field(default_factory=lambda: LoadProfile(kind="diurnal", rate=40,
                                                                      period_s=600))
    traffic_models: dict[str, float] = Field(default_factory=lambda: {"synth": 3.0, "mlp": 1.0})
    tracing: bool = True
    #: Share of traced requests the router sends on with their trace context, so Triton,
    #: PyTriton and the model code trace them too (full chains, with GPU readings); every
    #: request still gets its client and router spans, hence a chain with its latency, model
    #: and replica. See benchmarks/telemetry_overhead.py for what each costs.
    trace_deep_ratio: float = Field(1 / 16, ge=0, le=1)
    dashboard: bool = True
    dashboard_port: int = Field(8501, ge=0, le=65535)


class WardenConfig(_Strict):
    home: Path = Field(default_factory=lambda: Path(os.environ.get(WARDEN_HOME, ".warden")))
    lab: LabConfig = Field(default_factory=LabConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    remediation: RemediationConfig = Field(default_factory=RemediationConfig)

    @property
    def db_path(self) -> Path:
        return self.home / "warden.db"

    @property
    def lab_state_path(self) -> Path:
        return self.home / "lab.json"


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{key}: {e['msg']}")
    return "; ".join(parts)


def load_config(path: str | Path | None = None, **overrides: Any) -> WardenConfig:
    """Load ``path`` (or ``$WARDEN_CONFIG``, or nothing) into a validated :class:`WardenConfig`."""
    path = path or os.environ.get(WARDEN_CONFIG)
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: top level must be a mapping, got "
                              f"{type(loaded).__name__}")
        data = loaded
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return WardenConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {path or '(defaults)'}: {_describe(exc)}") from exc
