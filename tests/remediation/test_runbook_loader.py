"""Runbook loading: built-ins validate, and each kind of mistake names its file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediation.actions import ActionContext, ActionRegistry, ScaleOutParams, builtin_registry
from remediation.changes import Change
from remediation.errors import RunbookError
from remediation.runbook import load_runbooks
from warden.records import Alert, AlertStatus, freeze_labels

GOOD = """
name: my-runbook
trigger: {alertname: Slow, matchers: ['severity=~"warn.*"', 'team!=ml']}
vars: {slo: 0.2}
steps:
  - {name: out, action: scale_out, params: {step: 2}}
verify: {sli: p99_latency_seconds, op: "<", value: $slo, deadline_s: 5}
"""


def write(tmp_path: Path, text: str, name: str = "rb.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def load(tmp_path: Path, text: str):
    return load_runbooks(builtin_registry(), [write(tmp_path, text)], builtin=False)


def alert(**labels: str) -> Alert:
    return Alert(freeze_labels(labels), (), 0.0, None, AlertStatus.FIRING)


def test_builtin_runbooks_load_and_cover_the_issue():
    names = {r.name for r in load_runbooks(builtin_registry()).runbooks}
    assert {"saturation", "replica-p99-drift", "gpu-throttling", "hung-replica",
            "budget-burn-overload"} <= names


def test_trigger_matching_with_all_operators(tmp_path):
    rb = load(tmp_path, GOOD).runbooks[0]
    assert rb.matches(alert(alertname="Slow", severity="warning", team="web"))
    assert not rb.matches(alert(alertname="Slow", severity="warning", team="ml"))
    assert not rb.matches(alert(alertname="Slow", severity="critical"))
    assert not rb.matches(alert(alertname="Other", severity="warning"))
    resolved = Alert(freeze_labels({"alertname": "Slow", "severity": "warn"}), (), 0, 1,
                     AlertStatus.RESOLVED)
    assert not rb.matches(resolved)


@pytest.mark.parametrize("text, needle", [
    ("name: x\ntrigger: {alertname: A\n", "not valid YAML"),
    (GOOD.replace("scale_out", "scale_sideways"), "unknown action 'scale_sideways'"),
    (GOOD.replace("step: 2", "step: -1"), "steps[0].params: bad params for scale_out: step"),
    (GOOD.replace("step: 2", "stpe: 2"), "stpe: Extra inputs are not permitted"),
    (GOOD.replace("severity=~", "severity~="), "trigger.matchers"),
    (GOOD.replace("value: $slo", "value: $nope"), "unknown var '$nope'"),
    (GOOD.replace("deadline_s: 5", "deadline_s: 5, colour: red"), "verify.colour"),
    ("- 1\n- 2\n", "must be a mapping"),
    (GOOD + "on_verified:\n  - {name: back, action: scale_in, if_applied: up}\n",
     "on_verified[0].if_applied: no step 'up' runs before it; steps: ['out']"),
    (GOOD.replace("params: {step: 2}}", "params: {step: 2}, if_applied: out}"),
     "steps[0].if_applied: no step 'out' runs before it"),
])
def test_bad_runbooks_name_file_and_key(tmp_path, text, needle):
    with pytest.raises(RunbookError) as exc:
        load(tmp_path, text)
    assert needle in str(exc.value)
    assert "rb.yaml" in str(exc.value)


def test_unknown_matcher_operator_lists_the_operators(tmp_path):
    with pytest.raises(RunbookError, match="operators are =, !=, =~, !~"):
        load(tmp_path, GOOD.replace("severity=~", "severity~="))


def test_user_runbook_replaces_builtin_but_not_another_user_one(tmp_path):
    text = GOOD.replace("my-runbook", "saturation")
    rs = load_runbooks(builtin_registry(), [write(tmp_path, text)])
    assert rs.get("saturation").source == "rb.yaml"
    with pytest.raises(RunbookError, match="already defined"):
        load_runbooks(builtin_registry(), [write(tmp_path, GOOD, "a.yaml"),
                                           write(tmp_path, GOOD, "b.yaml")], builtin=False)


def test_registry_checks_action_signatures():
    reg = ActionRegistry()
    with pytest.raises(TypeError, match="pydantic"):
        reg.register(lambda ctx, params: [])

    def noisy(ctx: ActionContext, params: ScaleOutParams) -> list[Change]:
        return []

    reg.register(noisy, "noisy")
    bound = reg.bind("noisy", {"step": 3}, where="f.yaml: x")
    assert bound.params.step == 3
