"""The records every part of Warden exchanges.

Plain frozen dataclasses, so they are cheap, hashable where their fields allow, and carry no
behaviour that would couple one part to another. Collectors produce ``Sample``, ``Span``,
``RequestChain`` and ``GpuReading``; detectors produce ``Anomaly``; rules produce ``Alert``;
remediation writes ``ActionRecord``; chaos writes ``ExperimentResult``. The store persists them all.

Conventions:
    * Timestamps are Unix seconds as ``float`` (wall clock, UTC).
    * Durations are seconds as ``float`` unless a field name ends in ``_ns``.
    * Labels are ``Mapping[str, str]``; use :func:`freeze_labels` to make them hashable.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Labels = tuple[tuple[str, str], ...]

__all__ = [
    "ActionRecord",
    "ActionStatus",
    "Alert",
    "AlertStatus",
    "Anomaly",
    "ExperimentResult",
    "GpuReading",
    "Labels",
    "RequestChain",
    "Sample",
    "Span",
    "Stage",
    "alert_fingerprint",
    "freeze_labels",
]


def freeze_labels(labels: Mapping[str, str] | Labels | None) -> Labels:
    """Return labels as a sorted tuple of pairs: hashable, and equal for equal label sets."""
    if not labels:
        return ()
    items = labels.items() if isinstance(labels, Mapping) else labels
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of one time series, e.g. ``triton_queue_seconds_rate{replica="r0"}``."""

    series: str
    labels: Labels
    ts: float
    value: float


@dataclass(frozen=True, slots=True)
class Span:
    """One OpenTelemetry span as received, flattened to what Warden joins on.

    ``attributes`` keeps OTLP attribute values as plain Python values; ``events`` is a tuple of
    ``(name, time_unix_ns)`` pairs (Triton marks QUEUE_START, COMPUTE_INPUT_END and friends so).
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[tuple[str, int], ...] = ()
    status_error: bool = False

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


class Stage(str, enum.Enum):
    """The stages of one request's chain, outermost first."""

    CLIENT = "client"
    ROUTER = "router"
    TRITON_HTTP = "triton_http"
    QUEUE = "queue"
    COMPUTE_INPUT = "compute_input"
    COMPUTE_INFER = "compute_infer"
    COMPUTE_OUTPUT = "compute_output"
    MODEL_CODE = "model_code"


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One device's state at one instant, from NVML or from the simulated twin.

    ``simulated`` is never dropped on the way to a user: a twin reading must not be mistaken for
    hardware. Allocator fields are ``None`` where no CUDA caching allocator runs.
    """

    ts: float
    device: str
    simulated: bool
    temperature_c: float
    power_w: float
    power_limit_w: float
    sm_clock_mhz: float
    sm_clock_max_mhz: float
    mem_clock_mhz: float
    utilization: float
    memory_used_bytes: float
    memory_total_bytes: float
    throttle_reasons: tuple[str, ...] = ()
    xid_errors: int = 0
    ecc_errors: int = 0
    alloc_allocated_bytes: float | None = None
    alloc_reserved_bytes: float | None = None
    alloc_active_bytes: float | None = None
    alloc_inactive_split_bytes: float | None = None
    alloc_retries: int | None = None
    alloc_ooms: int | None = None
    replica: str = ""


@dataclass(frozen=True, slots=True)
class RequestChain:
    """One request, client to GPU, with the time spent in each stage.

    ``stages`` maps :class:`Stage` values to seconds; a stage missing from the map was not seen.
    ``latency_s`` is the outermost observed duration (the client's when present).
    """

    trace_id: str
    ts: float
    model: str
    variant: str
    replica: str
    latency_s: float
    stages: Mapping[str, float]
    error: bool = False
    gpu: GpuReading | None = None
    span_count: int = 0


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A detector's verdict on one series at one time, with the evidence behind it."""

    ts: float
    detector: str
    series: str
    labels: Labels
    score: float
    baseline: float
    observed: float
    evidence: Mapping[str, Any] = field(default_factory=dict)


class AlertStatus(str, enum.Enum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def alert_fingerprint(labels: Mapping[str, str] | Labels) -> str:
    """Alertmanager's fingerprint: FNV-1a 64 over sorted label names and values, hex, 16 chars.

    Alertmanager (prometheus/common ``model.LabelsToSignature``) hashes each name, a 0xff
    separator, the value and another 0xff separator, names sorted.
    """
    h = 0xCBF29CE484222325
    for name, value in freeze_labels(labels):
        for part in (name.encode(), b"\xff", value.encode(), b"\xff"):
            for byte in part:
                h ^= byte
                h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert in Alertmanager's shape. ``ends_at`` is ``None`` while it fires."""

    labels: Labels
    annotations: Labels
    starts_at: float
    ends_at: float | None
    status: AlertStatus
    generator_url: str = ""

    @property
    def name(self) -> str:
        return dict(self.labels).get("alertname", "")

    @property
    def fingerprint(self) -> str:
        return alert_fingerprint(self.labels)


class ActionStatus(str, enum.Enum):
    PLANNED = "planned"
    APPLYING = "applying"
    APPLIED = "applied"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One remediation step as audited: written before it runs and again after."""

    ts: float
    runbook: str
    step: str
    target: str
    params: Mapping[str, Any]
    idempotency_key: str
    status: ActionStatus
    evidence: Mapping[str, Any] = field(default_factory=dict)
    result: str = ""


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    """The outcome of one chaos experiment, as its journal summarises it."""

    ts: float
    title: str
    verdict: str
    time_to_detect_s: float | None
    time_to_recover_s: float | None
    slo_violation_s: float
    journal_path: str = ""


def stable_key(*parts: object) -> str:
    """A short stable hash of ``parts``, for idempotency keys that survive restarts."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]
