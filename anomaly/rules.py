"""From detector scores to alerts: thresholds, ``for`` durations and hysteresis.

A score crossing ``fire_at`` makes the alert *pending*; it *fires* only if the score stays at or
above ``clear_below`` for ``for_s`` (so a single spike never pages), and it *resolves* only after
the score has stayed below ``clear_below`` for ``clear_for_s`` (so an alert hovering around the
threshold does not flap). The two thresholds are the hysteresis band. Prometheus' alerting
rules behave the same way (``for:`` and ``keep_firing_for:``).

Each rule applies to one detector; each key (a label set such as model and replica) has its own
state. :meth:`RuleEvaluator.observe` returns the transitions as ``Alert`` records in
Alertmanager's shape; :meth:`RuleEvaluator.firing` lists what fires now, for periodic re-sending,
and :meth:`RuleEvaluator.pending` what is over its threshold but not yet for ``for_s``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from warden.records import Alert, AlertStatus, Labels, freeze_labels

__all__ = ["AlertRule", "RuleEvaluator", "RuleState", "DEFAULT_RULES"]


@dataclass(frozen=True)
class AlertRule:
    alertname: str
    detector: str
    fire_at: float = 0.5
    clear_below: float = 0.3
    for_s: float = 2.0
    clear_for_s: float = 10.0
    severity: str = "warning"
    summary: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.clear_below <= self.fire_at <= 1.0:
            raise ValueError(f"rule {self.alertname}: need 0 <= clear_below <= fire_at <= 1, got "
                             f"clear_below={self.clear_below}, fire_at={self.fire_at}")
        if self.for_s < 0 or self.clear_for_s < 0:
            raise ValueError(f"rule {self.alertname}: for_s and clear_for_s must be >= 0")


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule("ReplicaP99Drift", "p99_drift", severity="critical", for_s=2.0,
              summary="P99 latency drifted above its learned baseline"),
    AlertRule("ReplicaLatencyJitter", "variance", severity="warning", for_s=3.0,
              summary="latency variance (jitter) widened against its baseline"),
)


@dataclass
class RuleState:
    status: AlertStatus | None = None
    pending_since: float | None = None
    below_since: float | None = None
    starts_at: float = 0.0
    peak_score: float = 0.0
    annotations: dict[str, str] = field(default_factory=dict)


def _stringify(evidence: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in evidence.items():
        out[k] = v if isinstance(v, str) else json.dumps(v, default=str, separators=(",", ":"))
    return out


class RuleEvaluator:
    """Keeps one :class:`RuleState` per (rule, key) and turns scores into alert transitions."""

    def __init__(self, rules: tuple[AlertRule, ...] = DEFAULT_RULES) -> None:
        self.rules = {r.detector: r for r in rules}
        self.states: dict[tuple[str, Labels], RuleState] = {}

    def _labels(self, rule: AlertRule, key: Labels) -> Labels:
        return freeze_labels({**dict(key), "alertname": rule.alertname,
                              "severity": rule.severity, "detector": rule.detector})

    def _alert(self, rule: AlertRule, key: Labels, st: RuleState, status: AlertStatus,
               ends_at: float | None) -> Alert:
        ann = {"summary": rule.summary, **st.annotations, "peak_score": f"{st.peak_score:.3f}"}
        return Alert(labels=self._labels(rule, key), annotations=freeze_labels(ann),
                     starts_at=st.starts_at, ends_at=ends_at, status=status)

    def observe(self, detector: str, key: Mapping[str, str] | Labels, ts: float, score: float,
                evidence: Mapping[str, Any] | None = None) -> list[Alert]:
        """Feed one score; returns alerts that changed state (became firing or resolved)."""
        rule = self.rules.get(detector)
        if rule is None:
            return []
        k = freeze_labels(key)
        st = self.states.setdefault((detector, k), RuleState())
        if score >= rule.clear_below and evidence:
            st.annotations = _stringify(evidence)
        out: list[Alert] = []
        if st.status is None:
            if score >= rule.fire_at:
                st.status, st.pending_since, st.peak_score = AlertStatus.PENDING, ts, score
        if st.status is AlertStatus.PENDING:
            st.peak_score = max(st.peak_score, score)
            if score < rule.clear_below:
                self.states[(detector, k)] = RuleState()
            elif st.pending_since is not None and ts - st.pending_since >= rule.for_s:
                st.status, st.starts_at, st.below_since = AlertStatus.FIRING, ts, None
                out.append(self._alert(rule, k, st, AlertStatus.FIRING, None))
        elif st.status is AlertStatus.FIRING:
            st.peak_score = max(st.peak_score, score)
            if score >= rule.clear_below:
                st.below_since = None
            elif st.below_since is None:
                st.below_since = ts
            elif ts - st.below_since >= rule.clear_for_s:
                out.append(self._alert(rule, k, st, AlertStatus.RESOLVED, ts))
                self.states[(detector, k)] = RuleState()
        return out

    def firing(self) -> list[Alert]:
        """Every alert firing now, for re-sending to the alerting pipeline each tick."""
        return [self._alert(self.rules[d], k, st, AlertStatus.FIRING, None)
                for (d, k), st in self.states.items() if st.status is AlertStatus.FIRING]

    def pending(self) -> list[Alert]:
        """Every alert pending now (over its threshold, its ``for`` not yet elapsed)."""
        return [self._alert(self.rules[d], k, st, AlertStatus.PENDING, None)
                for (d, k), st in self.states.items() if st.status is AlertStatus.PENDING]
