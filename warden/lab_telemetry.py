"""The lab's telemetry: the OTLP trace receiver (its own process) and the engine (a thread).

Why the receiver is a process: at full tracing it decodes thousands of spans a second, and in
the lab process it would share a GIL with the load generator and skew the latencies it records
(DESIGN.md: the receiver and the dashboard are separate processes sharing the store). The
engine stays in the lab process because it follows the fleet: when replicas come and go, its
scrape targets change with them.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from collectors.gpu_twin_source import TwinHttpSource
from collectors.self_metrics import WardenMetrics, serve_metrics
from collectors.triton import TritonMetricsCollector
from serving.fleet import Fleet, Replica, free_port
from warden.alerting.config import AlertingConfig
from warden.alerting.service import AlertingService
from warden.alerting.sli_chains import StoreChainsSli
from warden.db import open_db
from warden.detection import AlertSink, DetectionHook
from warden.engine import Engine, TickHook
from remediation.actuators.local import LocalFleet
from remediation.audit import AuditLog
from remediation.service import RemediationConfig, RemediationService
from remediation.sli import StoreSli
from serving.router_client import RouterAdmin
from warden.records import Alert, AlertStatus
from warden.store import Store

__all__ = ["Telemetry"]

logger = logging.getLogger("warden.telemetry")
RECEIVER_START_TIMEOUT_S = 20.0


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
        self.alerting_config = alerting
        self.alerting: AlertingService | None = None
        self.remediation_config = remediation
        self.remediation: RemediationService | None = None
        self._slo_handled: set[tuple[str, float]] = set()
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
        if self.alerting_config is not None and self.alerting_config.receivers:
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
            self.remediation = RemediationService(
                rc, LocalFleet(fleet, admin), AuditLog.open(self.db_path, clock=time.time),
                StoreSli(Store(self.db_path, readonly=True)), page=self._page)
            self.remediation.start()
            sinks.append(self._to_remediation)
        if self.with_detection:
            self.detection = DetectionHook(self.store, alert_sinks=sinks)
            hooks.insert(0, self.detection)
        self.engine = Engine(self.store, [self.triton, self.gpu], hooks=hooks,
                             interval_s=self.interval_s).start()
        return self.engine

    def _to_alerting(self, transitions: list[Alert], now: float) -> None:
        """Hand the alerting pipeline what changed plus what still fires (it deduplicates)."""
        assert self.alerting is not None and self.detection is not None
        firing = self.detection.firing()
        seen = {a.fingerprint for a in firing}
        self.alerting.submit(firing + [a for a in transitions if a.fingerprint not in seen], now)
        self.alerting.tick(now)

    def _to_remediation(self, transitions: list[Alert], now: float) -> None:
        """Each alert that starts firing runs its runbooks (in the service's workers)."""
        assert self.remediation is not None
        for alert in transitions:
            if alert.status is AlertStatus.FIRING:
                self.remediation.handle(alert)

    def _slo_to_remediation(self, alerts: list[Alert], now: float) -> None:
        """SLO burn alerts (re-sent while they fire) start their runbooks once per firing."""
        if self.remediation is None:
            return
        for alert in alerts:
            once = (alert.fingerprint, alert.starts_at)
            if alert.status is AlertStatus.FIRING and once not in self._slo_handled:
                self._slo_handled.add(once)
                self.remediation.handle(alert)

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
