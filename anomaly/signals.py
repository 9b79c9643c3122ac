"""Signal rules: alerts read straight off what the fleet reports, not learned from latency.

The latency detectors (P99 drift, variance) say *that* a replica got slow. Some faults say what
they are on their own, in signals every fleet already exports, and deserve an alert named after
the cause, because each has its own runbook:

* **ReplicaHung** ``{model, replica}``: the replica stopped answering. Two observers agree: the
  router's active health checks fail (it marks the replica unhealthy after consecutive misses)
  *and* Warden's own scrape of the replica's ``/metrics`` fails, while a peer passes both. A
  replica that answers with errors is not hung (its scrape works), and when every replica goes
  silent at once the host or the network is the problem, not one replica.
* **GpuThrottling** ``{model, replica, device}``: the replica's GPU slows its clock for heat or
  power: NVML's clocks-event reasons (the twin reports the same names) name a thermal or power
  slowdown. ``SW_POWER_CAP`` alone counts only with the SM clock actually down
  (``clock_ratio_below``): a busy card at its power limit trims a few percent, which is normal.
* **ModelSaturated** ``{model}``: every replica serving the model is busy (device utilisation
  at or over ``util_at``) *and* requests wait in Triton's queue (mean queue time at or over
  ``queue_at_s``). The minimum over the serving replicas decides: one hot replica among idle peers
  is a replica problem that routing fixes, not a capacity problem that scaling fixes.

Each rule turns one observation into a score in [0, 1] with evidence; :mod:`anomaly.rules`
(the ``for`` duration and hysteresis of :data:`SIGNAL_RULES`) turns scores into alerts, so a
one-tick blip never pages and an alert hovering at its threshold does not flap. The engine hook
that gathers the observations is :class:`warden.signal_hook.SignalHook`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from anomaly.rules import AlertRule
from warden.records import GpuReading

__all__ = [
    "SIGNAL_RULES",
    "HungRule",
    "ReplicaLoad",
    "ReplicaStatus",
    "SaturationRule",
    "Score",
    "ThrottleRule",
]

SIGNAL_RULES: tuple[AlertRule, ...] = (
    # The router needs two failed checks 2 s apart before it marks a replica unhealthy, so a
    # replica is silent for ~3 s before the score moves; 2 s more rules out a stalled host.
    AlertRule("ReplicaHung", "replica_hung", fire_at=0.5, clear_below=0.5, for_s=2.0,
              clear_for_s=10.0, severity="critical",
              summary="replica stopped answering: health checks and metrics scrapes fail "
                      "while its peers answer"),
    AlertRule("GpuThrottling", "gpu_throttling", fire_at=0.5, clear_below=0.5, for_s=2.0,
              clear_for_s=10.0, severity="warning",
              summary="GPU clock throttled (thermal or power slowdown)"),
    # Hysteresis in units of the thresholds: fires at 1x both, clears below 0.7x either.
    AlertRule("ModelSaturated", "model_saturated", fire_at=0.5, clear_below=0.35, for_s=3.0,
              clear_for_s=10.0, severity="warning",
              summary="every replica of the model is busy and requests queue"),
)

THERMAL_OR_HW_REASONS = frozenset({"SW_THERMAL_SLOWDOWN", "HW_THERMAL_SLOWDOWN", "HW_SLOWDOWN",
                                   "HW_POWER_BRAKE_SLOWDOWN"})
POWER_CAP_REASON = "SW_POWER_CAP"


class Score(NamedTuple):
    """A rule's verdict on one observation: ``value`` in [0, 1] and why."""

    value: float
    evidence: dict[str, Any]


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica as the router and Warden's scraper saw it this tick.

    ``healthy``/``ejected``/``weight``/``outstanding``: the router's admin state (active health
    checks, passive ejection). ``scraped``: whether Warden's last scrape of its ``/metrics``
    answered (``None``: not scraped yet). ``last_chain_age_s``: seconds since its newest request
    chain started, evidence only (chains land seconds late).
    """

    name: str
    healthy: bool
    ejected: bool = False
    weight: float = 1.0
    outstanding: int = 0
    scraped: bool | None = None
    last_chain_age_s: float | None = None

    @property
    def answering(self) -> bool:
        return self.healthy and self.scraped is not False


@dataclass(frozen=True)
class ReplicaLoad:
    """How busy one replica is for one model over the last window.

    ``utilization``: busy fraction of the device (or of Triton's executor for the model);
    ``queue_s``: mean time a request waited in Triton's queue; ``pending``: requests queued or
    running at the last scrape. ``None``: no data in the window.
    """

    replica: str
    utilization: float | None
    queue_s: float | None
    pending: float | None = None


class HungRule:
    """Scores each replica 1.0 while it answers neither the router nor Warden and a peer does."""

    def score(self, replicas: Sequence[ReplicaStatus]) -> dict[str, Score]:
        out = {}
        for r in replicas:
            peers = [p for p in replicas if p.name != r.name]
            answering_peers = [p.name for p in peers if p.answering]
            silent = not r.healthy and r.scraped is False
            alone_or_peer_ok = not peers or bool(answering_peers)
            evidence: dict[str, Any] = {
                "router_healthy": r.healthy, "router_ejected": r.ejected,
                "metrics_scrape": {True: "ok", False: "failed", None: "none"}[r.scraped],
                "outstanding": r.outstanding, "answering_peers": ",".join(answering_peers)}
            if r.last_chain_age_s is not None:
                evidence["last_chain_age_s"] = round(r.last_chain_age_s, 1)
            out[r.name] = Score(1.0 if silent and alone_or_peer_ok else 0.0, evidence)
        return out


class ThrottleRule:
    """Scores a GPU reading 1.0 while its clock is slowed by heat or power.

    Args:
        clock_ratio_below: with only ``SW_POWER_CAP`` set, the SM clock must be under this
            fraction of its maximum to count (a card at its power limit trims a little).
    """

    def __init__(self, *, clock_ratio_below: float = 0.85) -> None:
        if not 0.0 < clock_ratio_below <= 1.0:
            raise ValueError(f"clock_ratio_below must be in (0, 1], got {clock_ratio_below}")
        self.clock_ratio_below = clock_ratio_below

    def score(self, reading: GpuReading) -> Score:
        reasons = set(reading.throttle_reasons)
        ratio = (reading.sm_clock_mhz / reading.sm_clock_max_mhz
                 if reading.sm_clock_max_mhz > 0 else 1.0)
        idle = "GPU_IDLE" in reasons
        throttled = bool(reasons & THERMAL_OR_HW_REASONS) or (
            POWER_CAP_REASON in reasons and not idle and ratio < self.clock_ratio_below)
        evidence = {"throttle_reasons": ",".join(sorted(reasons)) or "none",
                    "temperature_c": round(reading.temperature_c, 1),
                    "sm_clock_mhz": round(reading.sm_clock_mhz, 1),
                    "sm_clock_max_mhz": round(reading.sm_clock_max_mhz, 1),
                    "power_w": round(reading.power_w, 1),
                    "power_limit_w": round(reading.power_limit_w, 1),
                    "utilization": round(reading.utilization, 3),
                    "simulated": reading.simulated}
        return Score(1.0 if throttled else 0.0, evidence)


class SaturationRule:
    """Scores a model by its least saturated serving replica.

    For each replica ``s = min(utilization / util_at, queue_s / queue_at_s)``; the model's
    ``s`` is the minimum over its replicas, and the score is ``min(1, s / 2)``: 0.5 (fire) when
    every replica reaches both thresholds. Replicas without data this window are left out; with
    none left the score is 0.

    Args:
        util_at: device (or executor) busy fraction that counts as saturated.
        queue_at_s: mean Triton queue time that counts as saturated.
    """

    def __init__(self, *, util_at: float = 0.85, queue_at_s: float = 0.05) -> None:
        if not 0.0 < util_at <= 1.0:
            raise ValueError(f"util_at must be in (0, 1], got {util_at}")
        if not (queue_at_s > 0 and math.isfinite(queue_at_s)):
            raise ValueError(f"queue_at_s must be a finite number > 0, got {queue_at_s}")
        self.util_at, self.queue_at_s = util_at, queue_at_s

    def score(self, loads: Sequence[ReplicaLoad]) -> Score:
        per = {}
        for load in loads:
            if load.utilization is None or load.queue_s is None:
                continue
            per[load.replica] = min(load.utilization / self.util_at,
                                    load.queue_s / self.queue_at_s)
        if not per:
            return Score(0.0, {"replicas": "none with data"})
        s = min(per.values())
        known = [x for x in loads if x.replica in per]
        evidence: dict[str, Any] = {
            "replicas": ",".join(sorted(per)),
            "least_saturated": min(per, key=per.__getitem__),
            "utilization": {x.replica: round(x.utilization or 0.0, 3) for x in known},
            "queue_ms": {x.replica: round((x.queue_s or 0.0) * 1e3, 1) for x in known},
            "util_at": self.util_at, "queue_at_ms": round(self.queue_at_s * 1e3, 1)}
        pending = {x.replica: x.pending for x in known if x.pending is not None}
        if pending:
            evidence["pending_requests"] = pending
        return Score(min(1.0, max(0.0, s / 2.0)), evidence)
