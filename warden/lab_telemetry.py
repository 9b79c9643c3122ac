"""The lab's telemetry: the OTLP trace receiver (its own process) and the engine (a thread).

Why the receiver is a process: at full tracing it decodes thousands of spans a second, and in
the lab process it would share a GIL with the load generator and skew the latencies it records
(DESIGN.md: the receiver and the dashboard are separate processes sharing the store). The
engine stays in the lab process because it follows the fleet: when replicas come and go, its
scrape targets change with them.

Two hooks raise alerts on each tick: :class:`~warden.detection.DetectionHook` (latency learned
from request chains) and :class:`~warden.signal_hook.SignalHook` (a hung replica, a throttling
GPU, a saturated model, read off the router, the scrapes and the GPU readings). Both hand their
transitions to alerting and remediation; the SLOs' burn-rate alerts reach remediation from the
alerting service. A replica's latency alert starts no runbook while a cause fires or is pending
on its model (:data:`CAUSES_MUTE_SYMPTOMS`): the cause's runbook acts, and two runbooks moving
one fleet fight (measured: under a surge, drift on one replica drained it and doubled the load
on the other).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from prometheus_client import CollectorRegistry

from collectors.gpu_twin_source import TwinHttpSource
from collectors.self_metrics import WardenMetrics, serve_metrics
from collectors.triton import TritonMetricsCollector
from serving.fleet import Fleet, Replica, free_port
from warden.alerting.config import AlertingConfig
from warden.alerting.inhibit import InhibitRule
from warden.alerting.matchers import parse_matcher
from warden.alerting.service import AlertingService
from warden.alerting.sli_chains import StoreChainsSli
from warden.db import open_db
from warden.detection import AlertSink, DetectionHook
from warden.engine import Engine, TickHook
from remediation.actuators.local import LocalFleet
from remediation.audit import AuditLog
from remediation.executor import ExecutionReport
from remediation.service import RemediationConfig, RemediationService
from remediation.sli import StoreSli
from remediation.store_signals import store_signals
from serving.router_client import RouterAdmin
from warden.records import Alert, AlertStatus
from warden.signal_hook import SignalHook
from warden.store import Store

__all__ = ["CAUSES_MUTE_SYMPTOMS", "Telemetry"]

logger = logging.getLogger("warden.telemetry")
RECEIVER_START_TIMEOUT_S = 20.0
ROUTER_STATE_TIMEOUT_S = 1.0  # the signal hook reads it every tick: a stuck router must not stall

CAUSES_MUTE_SYMPTOMS: tuple[InhibitRule, ...] = (
    InhibitRule(source=(parse_matcher('alertname=~"ReplicaHung|GpuThrottling|ModelSaturated"'),),
                target=(parse_matcher('alertname=~"ReplicaP99Drift|ReplicaLatencyJitter"'),),
                equal=("model",)),
    InhibitRule(source=(parse_matcher("alertname=ReplicaHung"),),
                target=(parse_matcher("alertname=ModelSaturated"),), equal=("model",)),
)
"""For remediation, while a cause fires (or is pending) on a model, its symptoms start no
runbook of their own:

* a replica's latency alert, when the replica itself hangs or throttles, or a peer does and
  this replica took its load, or the model is saturated (every replica queues, each a little
  differently, and one standing out from its peers for a while looks like drift: draining it
  adds to the rest);
* the model's saturation, when a replica hangs: its peers carry its load until the restart
  gives its capacity back, and a replica scaled out meanwhile only competes with the restart.
"""


def _preconditions_unmet(done: Future[list[ExecutionReport]] | None) -> bool:
    """Whether every runbook an alert started has ended on unmet preconditions."""
    if done is None or not done.done() or done.exception() is not None:
        return False
    reports = done.result()
    return bool(reports) and all(r.outcome == "precondition_unmet" for r in reports)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Telemetry:
    """Receiver process + store + engine with the Triton and GPU collectors.

    ``start_receiver()`` comes first (replicas need its URL when they start); ``start_engine``
    once the fleet is up; ``follow(replicas)`` on every fleet change.
    """

    def __init__(self, db_path: Path, home: Path, *, interval_s: float = 1.0,
                 hooks: Sequence[TickHook] = (), alert_sinks: Sequence[AlertSink] = (),
                 detection: bool = True, alerting: AlertingConfig | None = None,
                 remediation: RemediationConfig | None = None) -> None:
        self.db_path, self.home = db_path, home
        self.interval_s = interval_s
        self.hooks = list(hooks)
        self.alert_sinks = list(alert_sinks)
        self.with_detection = detection
        self.detection: DetectionHook | None = None
        self.signals: SignalHook | None = None
        self._router_admin: RouterAdmin | None = None
        self.alerting_config = alerting
        self.alerting: AlertingService | None = None
        self.remediation_config = remediation
        self.remediation: RemediationService | None = None
        self._slo_handled: dict[tuple[str, float], Future[list[ExecutionReport]] | None] = {}
        self.registry = CollectorRegistry()
        self.metrics = WardenMetrics(self.registry)
        self.receiver: subprocess.Popen[bytes] | None = None
        self.otlp_url = ""
        self.metrics_url = ""
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.triton: TritonMetricsCollector | None = None
        self.gpu: TwinHttpSource | None = None

    def start_receiver(self) -> str:
        port = free_port()
        log = open(self.home / "traces.log", "ab")
        self.receiver = subprocess.Popen(
            [sys.executable, "-m", "warden.cli", "traces", "serve", "--db", str(self.db_path),
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (str(Path(__file__).resolve().parent.parent),
                            os.environ.get("PYTHONPATH", "")) if p)},
        )
        log.close()
        deadline = time.monotonic() + RECEIVER_START_TIMEOUT_S
        while not _listening(port):
            if self.receiver.poll() is not None or time.monotonic() > deadline:
                tail = (self.home / "traces.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"trace receiver did not start:\n{tail}")
            time.sleep(0.1)
        self.otlp_url = f"http://127.0.0.1:{port}/v1/traces"
        logger.info("trace receiver on %s", self.otlp_url)
        return self.otlp_url

    def start_engine(self, replicas: list[Replica], *, fleet: Fleet | None = None,
                     admin: RouterAdmin | None = None) -> Engine:
        self.store = Store(self.db_path)
        self.metrics.track_store_size(self.store.size_bytes)
        self.metrics_url = f"http://127.0.0.1:{serve_metrics(self.registry)}/metrics"
        self.triton = TritonMetricsCollector({}, metrics=self.metrics)
        self.gpu = TwinHttpSource({})
        self.follow(replicas)
        hooks = list(self.hooks)
        sinks = list(self.alert_sinks)
        ac = self.alerting_config
        if ac is not None and (ac.receivers or ac.slos):  # SLO alerts reach remediation too
            self.alerting = AlertingService(self.alerting_config, open_db(self.db_path),
                                            registry=self.registry,
                                            sli_source=StoreChainsSli(self.store),
                                            slo_sinks=[self._slo_to_remediation])
            self.alerting.start()
            sinks.append(self._to_alerting)
            if not self.with_detection:  # else _to_alerting ticks it (and its SLOs) each tick
                hooks.append(self.alerting.tick)
        rc = self.remediation_config
        if rc is not None and rc.enabled and fleet is not None and admin is not None:
            reader = Store(self.db_path, readonly=True)
            self.remediation = RemediationService(
                rc, LocalFleet(fleet, admin), AuditLog.open(self.db_path, clock=time.time),
                StoreSli(reader), page=self._page,
                signals=lambda model, now: store_signals(reader, model, now))
            self.remediation.start()
            sinks.append(self._to_remediation)
            hooks.append(self.remediation.tick_in_background)
        if self.with_detection:
            self.detection = DetectionHook(self.store, alert_sinks=sinks)
            router = None
            if admin is not None:
                self._router_admin = RouterAdmin(admin.url, timeout_s=ROUTER_STATE_TIMEOUT_S)
                router = self._router_replicas
            self.signals = SignalHook(
                self.store, models=lambda: list(fleet.config.models) if fleet else [],
                router=router, alert_sinks=sinks)
            hooks[0:0] = [self.signals, self.detection]  # causes first: they mute symptoms
        self.engine = Engine(self.store, [self.triton, self.gpu], hooks=hooks,
                             interval_s=self.interval_s).start()
        return self.engine

    def _router_replicas(self) -> list[dict]:
        assert self._router_admin is not None
        return list(self._router_admin.state().get("replicas", []))

    def firing(self, *, slo: bool = False) -> list[Alert]:
        """What detection and the signal rules have firing now (with ``slo``: the SLO burn
        alerts too)."""
        out: list[Alert] = []
        for hook in (self.detection, self.signals):
            if hook is not None:
                out += hook.firing()
        if slo and self.alerting is not None and self.alerting.slo is not None:
            out += self.alerting.slo.firing()
        return out

    def _causes(self) -> list[Alert]:
        """Signal alerts firing or pending: a cause explains a symptom before its ``for``
        elapses (saturation needs 3 s of queueing; a drift alert can come first)."""
        if self.signals is None:
            return []
        pending = [dataclasses.replace(a, status=AlertStatus.FIRING)
                   for a in self.signals.pending()]
        return self.signals.firing() + pending

    def _to_alerting(self, transitions: list[Alert], now: float) -> None:
        """Hand the alerting pipeline what changed plus what still fires (it deduplicates)."""
        assert self.alerting is not None
        firing = self.firing()
        seen = {a.fingerprint for a in firing}
        self.alerting.submit(firing + [a for a in transitions if a.fingerprint not in seen], now)
        self.alerting.tick(now)

    def _to_remediation(self, transitions: list[Alert], now: float) -> None:
        """Each alert that starts firing runs its runbooks (in the service's workers), unless
        a cause of it fires or is pending (:data:`CAUSES_MUTE_SYMPTOMS`)."""
        assert self.remediation is not None
        for alert in transitions:
            if alert.status is not AlertStatus.FIRING:
                continue
            causes = self._causes()
            cause = next((c for rule in CAUSES_MUTE_SYMPTOMS
                          if (c := rule.mutes(alert, causes)) is not None), None)
            if cause is not None:
                logger.info("%s %s: no runbook, its cause %s fires there", alert.name,
                            dict(alert.labels).get("replica", ""), cause.name)
                continue
            self.remediation.handle(alert)

    def _slo_to_remediation(self, alerts: list[Alert], now: float) -> None:
        """SLO burn alerts (re-sent while they fire) start their runbooks once per firing, or
        again while a runbook's preconditions did not hold yet.

        Why again: a page can come before the overload shows in the SLI a precondition reads
        (the busy fraction lags the first slow requests by a second or two); checked once, the
        runbook would sit out the whole page. A runbook that ran (or was refused, or failed)
        is not started again for the same firing.
        """
        if self.remediation is None:
            return
        for alert in alerts:
            if alert.status is not AlertStatus.FIRING:
                continue
            once = (alert.fingerprint, alert.starts_at)
            if once in self._slo_handled and not _preconditions_unmet(self._slo_handled[once]):
                continue
            self._slo_handled[once] = self.remediation.handle(alert)

    def _page(self, alert: Alert) -> None:
        """Escalations from runbooks go to on-call like any alert (or to the log)."""
        logger.warning("page: %s %s", alert.name, dict(alert.annotations).get("summary", ""))
        if self.alerting is not None:
            self.alerting.submit([alert])

    def follow(self, replicas: list[Replica]) -> None:
        """Point the collectors at the fleet's current replicas."""
        if self.triton is not None:
            self.triton.set_targets({r.name: r.metrics_url for r in replicas})
        if self.gpu is not None:
            self.gpu.set_urls({r.name: f"{r.control_url}/gpu" for r in replicas})

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.detection is not None and self.store is not None:
            self.detection.save_state(time.time())
        if self.remediation is not None:
            self.remediation.stop()
            self.remediation = None
        if self.alerting is not None:
            self.alerting.stop()
            self.alerting = None
        if self.gpu is not None:
            self.gpu.close()
        if self._router_admin is not None:
            self._router_admin.close()
            self._router_admin = None
        if self.store is not None:
            self.store.close()
            self.store = None
        proc = self.receiver
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
