"""Router configuration, validated once at load so bad values fail early with the key named.

Why pydantic: the fleet and the CLI build this from YAML (``warden.yaml``'s ``router`` section)
and from code alike; one model gives both the same checks and the same clear errors.
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "POLICY_NAMES",
    "EjectionConfig",
    "ReplicaSpec",
    "RouterConfig",
    "check_fraction",
    "check_replica_name",
    "check_url",
    "check_weight",
]

#: Names accepted for ``RouterConfig.policy``; kept here (not imported from policies) so the config
#: module has no dependency on the hot-path code.
POLICY_NAMES: tuple[str, ...] = ("least_outstanding", "peak_ewma", "round_robin")

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_URL_RE = re.compile(r"^https?://[^/\s]+$")


def check_replica_name(name: object) -> str:
    """Return ``name`` if it is a usable replica name (it becomes a Prometheus label), else raise."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"replica name must match {_NAME_RE.pattern}, got {name!r}")
    return name


def check_url(url: object) -> str:
    """Return the base URL without a trailing slash; only scheme://host[:port] is accepted."""
    if not isinstance(url, str):
        raise ValueError(f"url must be a string, got {url!r}")
    url = url.rstrip("/")
    if not _URL_RE.match(url):
        raise ValueError(f"url must look like http://host:port, got {url!r}")
    return url


def check_weight(weight: object) -> float:
    """Return a finite weight >= 0; booleans are refused although Python counts them as ints."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ValueError(f"weight must be a number, got {weight!r}")
    value = float(weight)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"weight must be finite and >= 0, got {weight!r}")
    return value


def check_fraction(fraction: object) -> float:
    """Return a fraction in [0, 1]; booleans and NaN are refused."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"fraction must be a number, got {fraction!r}")
    value = float(fraction)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    return value


class ReplicaSpec(BaseModel):
    """One upstream Triton replica: a name (the ``replica`` label), its HTTP base URL, a weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    weight: float = 1.0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_replica_name(v)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_url(v)

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: float) -> float:
        return check_weight(v)


class EjectionConfig(BaseModel):
    """Passive outlier ejection, after Envoy's ``consecutive_5xx`` detector.

    A replica is ejected after ``consecutive_failures`` connection failures, timeouts or 5xx in a
    row; it stays out for ``base_ejection_s * n`` (n = how many times it has been ejected, capped by
    ``max_ejection_s``) and comes back only once that time passed and an active check passed.
    At most ``max_ejection_percent`` of the replicas are ejected at once (but always one may be),
    so a fault that fails every replica (a bad model push) does not turn into "no replica at all";
    active health checks can still take every replica out.
    """

    model_config = ConfigDict(extra="forbid")

    consecutive_failures: int = Field(default=5, ge=1)
    base_ejection_s: float = Field(default=30.0, gt=0)
    max_ejection_s: float = Field(default=300.0, gt=0)
    max_ejection_percent: float = Field(default=50.0, ge=0, le=100)

    @model_validator(mode="after")
    def _order(self) -> EjectionConfig:
        if self.max_ejection_s < self.base_ejection_s:
            raise ValueError("ejection.max_ejection_s must be >= ejection.base_ejection_s")
        return self


class RouterConfig(BaseModel):
    """Everything the router needs; defaults serve a local lab."""

    model_config = ConfigDict(extra="forbid")

    replicas: list[ReplicaSpec] = Field(default_factory=list)
    policy: str = "peak_ewma"
    #: Seconds between active ``GET /v2/health/ready`` checks; 0 turns active checks off.
    health_interval_s: float = Field(default=2.0, ge=0)
    health_timeout_s: float = Field(default=1.0, gt=0)
    #: Failed checks in a row before a replica is marked unhealthy / passed checks to be healthy.
    unhealthy_threshold: int = Field(default=2, ge=1)
    healthy_threshold: int = Field(default=1, ge=1)
    #: Models (Triton names, e.g. ``synth``, ``synth_lite``) that must each answer
    #: ``/v2/models/{m}/ready`` for a replica to pass its health check.
    ready_models: list[str] = Field(default_factory=list)
    ejection: EjectionConfig = Field(default_factory=EjectionConfig)
    #: Whole-request upstream timeout (connect + send + response) and the connect part alone.
    timeout_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=1.0, gt=0)
    #: Extra attempts on other replicas after a connection failure (never after a response).
    max_retries: int = Field(default=2, ge=0)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    #: JSON infer bodies (or the JSON header of a binary-tensor body) up to this size are parsed
    #: and a malformed one answered 400 by the router: Triton answers malformed JSON with a 500,
    #: which would count towards ejecting a healthy replica. Larger ones pass unchecked; 0: never.
    validate_json_max_bytes: int = Field(default=64 * 1024, ge=0)
    #: Models that have a ``<model>_lite`` variant, and the fraction of each sent to it.
    lite_models: set[str] = Field(default_factory=set)
    variant_split: dict[str, float] = Field(default_factory=dict)
    #: Peak-EWMA decay time constant and the estimate given to a replica never measured.
    ewma_decay_s: float = Field(default=10.0, gt=0)
    ewma_default_rtt_s: float = Field(default=0.0, ge=0)
    #: Seed for the policies' and the variant split's random choices (None: OS entropy).
    seed: int | None = None
    #: Share of traced requests (chosen by trace id, the same rule in every process) whose
    #: trace context goes on to the replica, so Triton, PyTriton and the model code trace them
    #: too (full chains). The rest carry no ``traceparent`` past the router: Triton traces every
    #: request that has one, whatever its sampled flag. 1.0: every traced request goes deep.
    trace_deep_ratio: float = Field(default=1.0, ge=0, le=1)

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if v not in POLICY_NAMES:
            raise ValueError(f"policy must be one of {list(POLICY_NAMES)}, got {v!r}")
        return v

    @field_validator("variant_split")
    @classmethod
    def _split(cls, v: dict[str, float]) -> dict[str, float]:
        return {model: check_fraction(f) for model, f in v.items()}

    @model_validator(mode="after")
    def _consistent(self) -> RouterConfig:
        names = [r.name for r in self.replicas]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"replicas: duplicate names {dupes}")
        unknown = sorted(set(self.variant_split) - self.lite_models)
        if unknown:
            raise ValueError(f"variant_split: models without a lite variant {unknown}")
        return self
