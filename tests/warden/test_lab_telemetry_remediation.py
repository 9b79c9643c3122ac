"""How the lab's telemetry hands alerts to remediation: SLO pages, and symptoms whose cause fires.

A stand-in remediation service records what it is handed and answers with the outcome the test
sets (it returns a finished future, as the real one's worker would in the end).
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from remediation.executor import ExecutionReport
from warden.lab_telemetry import Telemetry
from warden.records import Alert, AlertStatus, freeze_labels

T0 = 1_800_000_000.0


class Remediation:
    def __init__(self) -> None:
        self.handled: list[Alert] = []
        self.outcome = "precondition_unmet"

    def handle(self, alert: Alert) -> Future:
        self.handled.append(alert)
        done: Future = Future()
        done.set_result([ExecutionReport("rb", "x", alert.fingerprint, T0,
                                         outcome=self.outcome)])
        return done


class Signals:
    def __init__(self, firing: list[Alert], pending: list[Alert]) -> None:
        self._firing, self._pending = firing, pending

    def firing(self) -> list[Alert]:
        return list(self._firing)

    def pending(self) -> list[Alert]:
        return list(self._pending)


def alert(name: str, starts_at: float = T0, status: AlertStatus = AlertStatus.FIRING,
          **labels: str) -> Alert:
    return Alert(freeze_labels({"alertname": name, **labels}), (), starts_at, None, status)


def telemetry(tmp_path: Path) -> tuple[Telemetry, Remediation]:
    t = Telemetry(tmp_path / "w.db", tmp_path)
    rem = Remediation()
    t.remediation = rem  # type: ignore[assignment]
    return t, rem


def test_an_slo_page_is_handled_again_while_its_preconditions_do_not_hold(tmp_path):
    t, rem = telemetry(tmp_path)
    page = alert("SloBudgetBurn", model="synth", severity="page")
    t._slo_to_remediation([page], T0)
    t._slo_to_remediation([page], T0 + 1)  # the busy fraction had not caught up yet
    rem.outcome = "verified"
    t._slo_to_remediation([page], T0 + 2)  # now it runs, and is verified
    t._slo_to_remediation([page], T0 + 3)
    t._slo_to_remediation([page], T0 + 4)
    assert len(rem.handled) == 3
    again = alert("SloBudgetBurn", starts_at=T0 + 60, model="synth", severity="page")
    t._slo_to_remediation([again, alert("SloBudgetBurn", status=AlertStatus.RESOLVED,
                                        model="synth", severity="page")], T0 + 60)
    assert len(rem.handled) == 4  # a new firing is a new occurrence; a resolved one runs none


def test_a_symptom_runs_no_runbook_while_its_cause_fires_or_is_pending(tmp_path):
    t, rem = telemetry(tmp_path)
    drift = alert("ReplicaP99Drift", model="synth", replica="r0")
    t.signals = Signals([], [alert("ModelSaturated", status=AlertStatus.PENDING,
                                   model="synth")])  # type: ignore[assignment]
    t._to_remediation([drift], T0)
    assert rem.handled == []
    t.signals = Signals([alert("ReplicaHung", model="synth", replica="r1")],
                        [])  # type: ignore[assignment]
    saturated = alert("ModelSaturated", model="synth")
    t._to_remediation([drift, saturated], T0)
    assert rem.handled == []  # the peer of a hung replica, and a model short of it
    t.signals = Signals([alert("GpuThrottling", model="mlp", replica="r0")],
                        [])  # type: ignore[assignment]
    t._to_remediation([drift, saturated], T0)
    assert [a.name for a in rem.handled] == ["ReplicaP99Drift", "ModelSaturated"]
