"""The remediation service the engine wires in: config, start-up reconciliation, alerts, ticks.

Why a facade: the engine should need four calls (``start``, ``handle``, ``tick``, ``stop``) and one
config section, not the eight classes behind them. ``warden.yaml``::

    remediation:
      enabled: true
      actuator: local            # local | kubernetes | dry-run
      runbooks: [my-runbooks/]   # user runbooks, added to (or replacing) the built-ins
      vars: {slo_p99_s: 0.25}    # override runbook vars, e.g. the SLO
      guards: {max_replicas: 6, cooldown_s: 60, dry_run: false, kill_switch_file: .warden/STOP}
      autoscaler: {models: [synth], predictive: true, season_s: 600}
      kubernetes: {namespace: warden, models: {...}}   # when actuator is kubernetes

``handle(alert)`` runs in a worker thread (verification polls for up to the runbook's deadline),
one execution at a time per (runbook, alert); ``tick()`` runs the autoscalers on the engine's
tick. Both go through the one :class:`Applier`, so the guards and the audit hold for all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from remediation.actions import ActionRegistry, builtin_registry
from remediation.actuators.base import Actuator
from remediation.applier import Applier
from remediation.audit import AuditLog, reconcile
from remediation.autoscaler import Autoscaler, AutoscalerConfig, Signals
from remediation.executor import ExecutionReport, RunbookExecutor
from remediation.guards import GuardConfig, Guards
from remediation.runbook import load_runbooks
from remediation.sli import SliSource
from warden.records import Alert

__all__ = ["AutoscalingSection", "RemediationConfig", "RemediationService"]

logger = logging.getLogger("warden.remediation")


class AutoscalingSection(AutoscalerConfig):
    models: list[str] = Field(default_factory=list, description="models to autoscale")


class RemediationConfig(BaseModel):
    """The ``remediation`` section of ``warden.yaml`` (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    actuator: Literal["local", "kubernetes", "dry-run"] = "local"
    runbooks: list[Path] = Field(default_factory=list)
    builtin_runbooks: bool = True
    vars: dict[str, float] = Field(default_factory=dict)
    guards: GuardConfig = Field(default_factory=GuardConfig)
    autoscaler: AutoscalingSection = Field(default_factory=AutoscalingSection)
    kubernetes: dict[str, Any] | None = None
    workers: int = Field(2, ge=1, le=8)


class RemediationService:
    """Owns the applier, executor and autoscalers for one engine.

    Args:
        config: the section.
        actuator: built by the caller (LocalFleet from the lab, Kubernetes, DryRun).
        audit: the audit log (``AuditLog.open(config.db_path, clock=...)``).
        sli: SLIs for preconditions and verification (``StoreSli(store)``).
        signals: ``(model, now) -> Signals`` for the autoscaler.
        page: hands an escalation alert to the alerting service.
        clock / sleep: injected time.
        registry: actions (built-ins by default; add your own before passing it).
    """

    def __init__(self, config: RemediationConfig, actuator: Actuator, audit: AuditLog,
                 sli: SliSource, *, signals: Callable[[str, float], Signals] | None = None,
                 page: Callable[[Alert], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 data_fresh: Callable[[], bool] = lambda: True,
                 registry: ActionRegistry | None = None) -> None:
        self.config = config
        self.audit = audit
        self.guards = Guards(config.guards, clock=clock)
        self.applier = Applier(actuator, self.guards, audit, clock=clock)
        self.runbooks = load_runbooks(registry or builtin_registry(), config.runbooks,
                                      builtin=config.builtin_runbooks)
        self.executor = RunbookExecutor(self.runbooks, self.applier, sli, clock=clock,
                                        sleep=sleep, page=page, vars=config.vars,
                                        data_fresh=data_fresh)
        self.autoscalers = [
            Autoscaler(m, config.autoscaler, self.applier,
                       (lambda now, m=m: signals(m, now)), clock=clock)  # type: ignore[misc]
            for m in (config.autoscaler.models if signals else [])]
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="remediation")
        self._lock = threading.Lock()
        self._scaling: threading.Thread | None = None
        self.reports: list[ExecutionReport] = []

    def start(self) -> list[tuple[Any, str]]:
        """Reconcile actions a previous engine died in the middle of; returns what it closed."""
        closed = reconcile(self.audit, self.applier.actuator.state)
        for row, status in closed:
            logger.warning("reconciled %s/%s (%s) after restart: %s", row.runbook, row.step,
                           row.idempotency_key, status)
        return closed

    def handle(self, alert: Alert) -> Future[list[ExecutionReport]] | None:
        """Run the alert's runbooks in a worker; ``None`` when disabled or nothing matches."""
        if not self.config.enabled or not self.runbooks.match(alert):
            return None

        def run() -> list[ExecutionReport]:
            reports = self.executor.handle(alert)
            with self._lock:
                self.reports.extend(reports)
            return reports

        return self._pool.submit(run)

    def tick(self) -> None:
        """One autoscaler pass; never raises (a hot loop must not die)."""
        if not self.config.enabled:
            return
        for a in self.autoscalers:
            try:
                a.tick()
            except Exception:
                logger.exception("autoscaler for %s failed", a.model)

    def tick_in_background(self, now: float | None = None) -> bool:
        """Engine hook: start an autoscaler pass in its own thread unless one still runs.

        Why: a scale-out blocks until the new replicas are ready (a cold start, seconds to
        minutes), and the engine's tick must not wait for it: detection and alerting go on.
        Returns whether a pass was started.
        """
        if not self.autoscalers or not self.config.enabled:
            return False
        with self._lock:
            if self._scaling is not None and self._scaling.is_alive():
                return False
            self._scaling = threading.Thread(target=self.tick, name="autoscaler", daemon=True)
            self._scaling.start()
        return True

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._scaling is not None:
            self._scaling.join(timeout=60)
