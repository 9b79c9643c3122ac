"""The runbook executor: trigger -> preconditions -> guarded steps -> verify -> rollback -> page.

Why blocking and clock-injected: verification polls an SLI until a deadline, and tests drive it
with a fake clock whose ``sleep`` advances time, so a 30 s deadline takes microseconds. The engine
runs :meth:`RunbookExecutor.handle` off its tick thread.

Idempotency: an execution is keyed by (runbook, alert fingerprint, alert start), each change by
(execution, step, index). The same alert delivered twice (or again after a crash) finds its keys
in the audit and applies nothing; a flapping alert starts new executions, which the guards'
cooldowns and hourly cap bound.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from remediation.actions import ActionContext
from remediation.applier import Applier, Outcome
from remediation.changes import Change
from remediation.errors import ActionFailed
from remediation.runbook import Condition, LoadedRunbook, LoadedStep, RunbookSet, fill
from remediation.sli import SliSource
from warden.records import Alert, AlertStatus, freeze_labels, stable_key

__all__ = ["ExecutionReport", "RunbookExecutor", "StepResult"]

logger = logging.getLogger("warden.remediation")


@dataclass(frozen=True)
class StepResult:
    step: str
    status: str  # applied | failed | refused | duplicate | dry_run | skipped | noop
    detail: str = ""
    change: Change | None = None


@dataclass
class ExecutionReport:
    """What one execution did; ``outcome`` is the headline:

    ``verified``, ``verify_failed``, ``applied`` (no verification defined), ``failed``,
    ``refused``, ``duplicate``, ``precondition_unmet``, ``busy``, ``dry_run``.
    """

    runbook: str
    execution: str
    alert: str
    started: float
    outcome: str = ""
    finished: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    preconditions: list[dict[str, Any]] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
    rolled_back: list[StepResult] = field(default_factory=list)
    paged: bool = False

    def to_json(self) -> dict[str, Any]:
        def step(s: StepResult) -> dict[str, Any]:
            return {"step": s.step, "status": s.status, "detail": s.detail,
                    "change": s.change.to_json() if s.change else None}
        return {"runbook": self.runbook, "execution": self.execution, "alert": self.alert,
                "outcome": self.outcome, "started": self.started, "finished": self.finished,
                "preconditions": self.preconditions, "steps": [step(s) for s in self.steps],
                "verify": self.verify, "rolled_back": [step(s) for s in self.rolled_back],
                "paged": self.paged}


class RunbookExecutor:
    """Runs matching runbooks for firing alerts through one :class:`Applier`.

    Args:
        runbooks: the loaded set.
        applier: guards + audit + actuator.
        sli: where preconditions and verifications read SLIs.
        clock / sleep: injected time (tests pass a fake clock whose sleep advances it).
        page: called with an :class:`Alert` carrying what was done, the evidence and the outcome;
            the engine wires it to the alerting service.
        vars: overrides for runbook ``vars`` (e.g. the SLO from config).
        data_fresh: whether metrics are flowing; when ``False`` capacity is never reduced.
    """

    def __init__(self, runbooks: RunbookSet, applier: Applier, sli: SliSource, *,
                 clock: Callable[[], float], sleep: Callable[[float], None],
                 page: Callable[[Alert], None] | None = None,
                 vars: Mapping[str, Any] | None = None,
                 data_fresh: Callable[[], bool] = lambda: True) -> None:
        self.runbooks = runbooks
        self.applier = applier
        self.sli = sli
        self.clock = clock
        self.sleep = sleep
        self.page = page
        self.vars = dict(vars or {})
        self.data_fresh = data_fresh
        self._busy: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def handle(self, alert: Alert) -> list[ExecutionReport]:
        """Run every runbook the alert triggers (firing alerts only)."""
        if alert.status != AlertStatus.FIRING:
            return []
        return [self.execute(rb, alert) for rb in self.runbooks.match(alert)]

    # -- one execution ----------------------------------------------------------------------------

    def _facts(self, labels: Mapping[str, str]) -> dict[str, float]:
        state = self.applier.actuator.state()
        facts = {"cold_start_seconds": state.cold_start_s}
        m = state.models.get(labels.get("model", ""))
        if m is not None:
            facts.update(replicas=float(m.replicas), healthy_replicas=float(m.healthy),
                         lite_fraction=m.lite_fraction)
        return facts

    def _read(self, cond: Condition, labels: Mapping[str, str],
              window_s: float | None = None) -> float | None:
        facts = self._facts(labels)
        if cond.sli in facts:
            return facts[cond.sli]
        try:
            return self.sli.read(cond.sli, fill(cond.labels, labels),
                                 cond.window_s if window_s is None else window_s, self.clock())
        except Exception:
            logger.exception("SLI %s unreadable", cond.sli)
            return None

    def execute(self, rb: LoadedRunbook, alert: Alert) -> ExecutionReport:
        labels = dict(alert.labels)
        execution = stable_key(rb.name, alert.fingerprint, alert.starts_at)
        report = ExecutionReport(rb.name, execution, alert.fingerprint, self.clock())
        busy_key = (rb.name, alert.fingerprint)
        with self._lock:
            if busy_key in self._busy:
                report.outcome = "busy"
                return report
            self._busy.add(busy_key)
        try:
            self._run(rb, alert, labels, execution, report)
        finally:
            with self._lock:
                self._busy.discard(busy_key)
            report.finished = self.clock()
        logger.info("runbook %s on %s: %s", rb.name, alert.name, report.outcome)
        return report

    def _run(self, rb: LoadedRunbook, alert: Alert, labels: dict[str, str], execution: str,
             report: ExecutionReport) -> None:
        vars = rb.vars(self.vars)
        if self.applier.audit.has(execution, "verify"):
            report.outcome = "duplicate"  # this alert occurrence was handled to the end
            return
        for cond in rb.spec.preconditions:
            value = self._read(cond, labels)
            ok = cond.holds(value, vars)
            report.preconditions.append({"sli": cond.sli, "value": value, "op": cond.op,
                                         "threshold": cond.threshold(vars), "holds": ok})
            if not ok:
                report.outcome = "precondition_unmet"
                return
        applied: list[Change] = []
        outcome = self._steps(rb, rb.steps, labels, vars, execution, "step", report.steps,
                              applied, alert)
        statuses = {s.status for s in report.steps}
        if outcome in ("failed", "refused"):
            # A failed change is undone; a refusal at a bound is not: what was applied before
            # it (e.g. degrade before a scale-out refused at max_replicas) is what still helps.
            report.outcome = outcome
            if outcome == "failed":
                self._rollback(rb, applied, labels, vars, execution, report, alert)
            self._escalate(rb, alert, report, outcome)
            return
        if not applied:
            # nothing moved: a dry run, a routine refusal (cooldown, rate limit: no page, the
            # guards did their job) or a redelivered alert; all-noop goes on to verification
            for status in ("dry_run", "refused", "duplicate"):
                if status in statuses:
                    report.outcome = status
                    return
        if rb.spec.verify is None:
            report.outcome = "applied"
            return
        if self._verify(rb, labels, vars, execution, report, applied):
            report.outcome = "verified"
            self._steps(rb, rb.on_verified, labels, vars, execution, "on_verified",
                        report.steps, [], alert)
            if "verified" in rb.spec.escalate.outcomes:
                self._escalate(rb, alert, report, "verified")
            return
        report.outcome = "verify_failed"
        self._rollback(rb, applied, labels, vars, execution, report, alert)
        self._escalate(rb, alert, report, "verify_failed")

    def _steps(self, rb: LoadedRunbook, steps: Sequence[LoadedStep], labels: Mapping[str, str],
               vars: Mapping[str, Any], execution: str, phase: str, out: list[StepResult],
               applied: list[Change], alert: Alert, *, rollback: bool = False,
               earlier: Sequence[StepResult] = ()) -> str:
        """Plan and apply ``steps`` in order; stop at the first failure or escalating refusal.

        ``earlier``: results of this execution's steps that ``if_applied`` may name besides
        ``out`` (the main steps, for rollback steps)."""
        for step in steps:
            name = step.spec.name
            needs = step.spec.if_applied
            if needs is not None and not any(r.step == needs and r.status == "applied"
                                             for r in (*earlier, *out)):
                out.append(StepResult(name, "skipped", f"if_applied: step {needs} applied "
                                      "nothing in this execution"))
                continue
            if step.spec.when is not None:
                value = self._read(step.spec.when, labels)
                if not step.spec.when.holds(value, vars):
                    out.append(StepResult(name, "skipped", f"when: {step.spec.when.sli}="
                                          f"{value} not {step.spec.when.op} "
                                          f"{step.spec.when.threshold(vars)}"))
                    continue
            try:
                ctx = ActionContext(labels, self.applier.actuator.state(), vars)
                changes = step.action.plan(ctx)
            except (ActionFailed, Exception) as exc:
                out.append(StepResult(name, "failed", f"plan: {exc}"))
                return "failed"
            if not changes:
                out.append(StepResult(name, "noop", "fleet already in the wanted state"))
            for i, change in enumerate(changes):
                key = stable_key(execution, phase, name, i)
                res = self.applier.apply(
                    change, runbook=rb.name, step=name, key=key, execution=execution,
                    evidence={"alert": alert.name, "labels": labels}, rollback=rollback,
                    data_fresh=self.data_fresh())
                out.append(StepResult(name, res.status, res.reason, res.change))
                if res.status == "applied":
                    applied.append(res.change)
                elif res.status == "failed" or (res.status == "refused" and res.escalate):
                    return res.status
        return "ok"

    def _verify(self, rb: LoadedRunbook, labels: Mapping[str, str], vars: Mapping[str, Any],
                execution: str, report: ExecutionReport, applied: list[Change]) -> bool:
        spec = rb.spec.verify
        assert spec is not None
        t0 = self.clock()
        value: float | None = None
        ok = False
        while True:
            window = spec.window_after(self.clock() - t0)
            if window is not None:
                value = self._read(spec, labels, window)
                if spec.holds(value, vars):
                    ok = True
                    break
            if self.clock() - t0 >= spec.deadline_s:
                break
            self.sleep(spec.poll_s)
        elapsed = self.clock() - t0
        report.verify = {"sli": spec.sli, "value": value, "op": spec.op,
                         "threshold": spec.threshold(vars), "ok": ok, "elapsed_s": elapsed}
        marker = applied[-1] if applied else Change("scale", labels.get("model", ""), {})
        self.applier.audit.record(
            runbook=rb.name, step="verify", change=marker, key=execution, phase="verify",
            status="verified" if ok else "failed", evidence=report.verify,
            result=(f"{spec.sli}={value} {spec.op} {spec.threshold(vars)} after {elapsed:.1f}s"
                    if ok else f"{spec.sli}={value} not {spec.op} {spec.threshold(vars)} "
                    f"within {spec.deadline_s:.0f}s"), execution=execution, ignore=True)
        return ok

    def _rollback(self, rb: LoadedRunbook, applied: list[Change], labels: Mapping[str, str],
                  vars: Mapping[str, Any], execution: str, report: ExecutionReport,
                  alert: Alert) -> None:
        if rb.rollback_steps is not None:
            self._steps(rb, rb.rollback_steps, labels, vars, execution, "rollback",
                        report.rolled_back, [], alert, rollback=True, earlier=report.steps)
            return
        if rb.spec.rollback == "none":
            return
        for i, change in enumerate(reversed(applied)):
            if change.inverse is None:
                report.rolled_back.append(StepResult("rollback", "skipped",
                                                     f"no inverse for {change.describe()}"))
                continue
            res = self.applier.apply(change.inverse, runbook=rb.name, step="rollback",
                                     key=stable_key(execution, "rollback", i),
                                     execution=execution, rollback=True,
                                     data_fresh=self.data_fresh(),
                                     evidence={"undoes": change.to_json()})
            report.rolled_back.append(StepResult("rollback", res.status, res.reason, res.change))

    def _escalate(self, rb: LoadedRunbook, alert: Alert, report: ExecutionReport,
                  why: str) -> None:
        if why not in rb.spec.escalate.outcomes or self.page is None:
            return
        labels = {**dict(alert.labels), "alertname": ("WardenRemediationVerified"
                                                     if why == "verified"
                                                     else "WardenRemediationFailed"),
                  "runbook": rb.name, "severity": rb.spec.escalate.severity,
                  "trigger": alert.name}
        done = [f"{s.step}: {s.status} {s.detail}".strip() for s in report.steps]
        annotations = {
            "summary": f"runbook {rb.name} for {alert.name}: {why}",
            "description": "; ".join(done) or "no action taken",
            "outcome": why,
            "evidence": json.dumps({"preconditions": report.preconditions,
                                    "verify": report.verify}, default=str),
            "actions": json.dumps(report.to_json()["steps"], default=str),
            "rolled_back": json.dumps(report.to_json()["rolled_back"], default=str),
        }
        page_alert = Alert(labels=freeze_labels(labels), annotations=freeze_labels(annotations),
                           starts_at=self.clock(), ends_at=None, status=AlertStatus.FIRING)
        try:
            self.page(page_alert)
            report.paged = True
        except Exception:
            logger.exception("paging on-call failed for runbook %s", rb.name)
