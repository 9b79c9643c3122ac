"""Alert rules: pending, firing after ``for``, hysteresis, resolve after ``clear_for``."""

from __future__ import annotations

import pytest

from anomaly.rules import AlertRule, RuleEvaluator
from warden.records import AlertStatus

RULE = AlertRule("Drift", "p99_drift", fire_at=0.5, clear_below=0.3, for_s=2, clear_for_s=5)
KEY = {"model": "synth", "replica": "r1"}


def feed(ev: RuleEvaluator, scores: list[float], start: float = 0.0) -> list[tuple[float, str]]:
    out = []
    for i, s in enumerate(scores):
        for a in ev.observe("p99_drift", KEY, start + i, s, {"grown_stage": "queue"}):
            out.append((start + i, a.status.value))
    return out


def test_single_spike_never_fires() -> None:
    assert feed(RuleEvaluator((RULE,)), [0, 0.9, 0.1, 0, 0.95, 0.2, 0]) == []


def test_sustained_score_fires_after_for_and_carries_labels_and_evidence() -> None:
    ev = RuleEvaluator((RULE,))
    assert feed(ev, [0.6, 0.7, 0.8, 0.8]) == [(2.0, "firing")]
    (alert,) = ev.firing()
    labels = dict(alert.labels)
    assert labels["alertname"] == "Drift" and labels["replica"] == "r1"
    assert dict(alert.annotations)["grown_stage"] == "queue"
    assert alert.starts_at == 2.0 and alert.status is AlertStatus.FIRING


def test_hovering_in_the_band_neither_flaps_nor_resolves() -> None:
    ev = RuleEvaluator((RULE,))
    assert feed(ev, [0.6] * 3 + [0.45, 0.55, 0.35, 0.4] * 10) == [(2.0, "firing")]


def test_resolves_only_after_clear_for() -> None:
    ev = RuleEvaluator((RULE,))
    events = feed(ev, [0.8] * 3 + [0.1] * 4 + [0.6] + [0.1] * 7)
    assert events == [(2.0, "firing"), (13.0, "resolved")]
    assert ev.firing() == []


def test_bad_rule_thresholds_are_rejected() -> None:
    with pytest.raises(ValueError, match="clear_below"):
        AlertRule("X", "d", fire_at=0.3, clear_below=0.5)
